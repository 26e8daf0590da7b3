"""Setting keys in a dotenv file: one binding rewritten in place, every other byte kept; atomic and locked.

Values are written unquoted; which values are accepted, and why, is `render.check_dotenv_value`.

Several bindings of one key: every one of them is rewritten with the new value, so readers that take the
first binding and readers that take the last (python-dotenv, sh, docker, direnv) read the same value, and no
stale token is left in the file. An inline comment on a rewritten line is dropped: docker would read it as
part of the value. An `export ` prefix and the indentation of the line are kept.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vertex_env.errors import SinkError
from vertex_env.sinks.render import ALLOWED_VALUE_CHARS, format_dotenv_line
from vertex_env.system.echo import printable
from vertex_env.system.files import (
    atomic_write,
    cache_dir,
    read_user_file,
    resolve_safely,
    sweep_temp,
    writers_locked,
)

if TYPE_CHECKING:
    from dotenv.parser import Binding

__all__ = [
    "ALLOWED_VALUE_CHARS",
    "Written",
    "format_dotenv_line",
    "tightened_notice",
    "update_dotenv",
    "update_dotenv_text",
    "write_dotenv",
]

_LEADING_SPACE = re.compile(r"\s*", re.UNICODE)  # python-dotenv's _multiline_whitespace
_EXPORT = re.compile(r"(?:export[^\S\r\n]+)?", re.UNICODE)  # python-dotenv's _export
_FIRST_NEWLINE = _ANY_NEWLINE = re.compile(r"\r\n|\n|\r")
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # bytes that are not UTF-8 pass through unchanged
_BOM = "\ufeff"
#: The mode of a file that holds a token.
PRIVATE_MODE = 0o600
#: How long a writer waits for another one (a rewrite takes milliseconds; a daemon must not stall on it).
LOCK_TIMEOUT = 10.0
#: A temp file of ours beside a target, this old, was left by a writer killed between fsync and rename (a write
#: takes milliseconds). Minutes, not seconds: a writer outside our lock (another cache directory, an older
#: vertex-env) stalled on a slow disk keeps its file.
TEMP_STALE_AFTER = 300.0
#: The largest dotenv file rewritten (a token file is a few KiB; more is not a dotenv file of ours).
DOTENV_LIMIT = 1024 * 1024


def update_dotenv_text(text: str, values: Mapping[str, str], *, source: str = "the file") -> str:
    """The file text with each key set: bindings of our keys rewritten in place, missing keys appended.

    A binding of one of our keys that does not end on its own line — a quote opened and closed lines later, or
    never closed — is refused (SinkError naming `source` and the line): python-dotenv reads the lines in between
    as part of our value, docker and sh as variables of their own, and a rewrite would drop them."""
    from dotenv.parser import parse_stream

    lines = {name: format_dotenv_line(name, value) for name, value in values.items()}
    bom = _BOM if text.startswith(_BOM) else ""
    body = text[len(bom) :]
    newline_match = _FIRST_NEWLINE.search(body)
    newline = newline_match.group(0) if newline_match else "\n"

    pieces: list[str] = []
    seen: set[str] = set()
    for binding in parse_stream(io.StringIO(body)):
        original = binding.original.string
        _refuse_a_swallowing_binding(binding, lines, source)
        if binding.error or binding.key not in lines:
            pieces.append(original)
            continue
        seen.add(binding.key)
        pieces.append(_rewrite_binding(original, lines[binding.key]))
    result = "".join(pieces)
    missing = [lines[name] for name in lines if name not in seen]
    if missing:
        if result and not result.endswith(("\n", "\r")):
            result += newline
        result += "".join(line + newline for line in missing)
    return bom + result


_OUR_KEY_AT = re.compile(
    r"\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(?P<quote>['\"]?)"
)


def _refuse_a_swallowing_binding(binding: Binding, ours: Mapping[str, str], source: str) -> None:
    original = binding.original.string
    start = _OUR_KEY_AT.match(original)
    if start is None or start.group("key") not in ours:
        return
    key = start.group("key")
    leading = _LEADING_SPACE.match(original)
    line = binding.original.line + len(_ANY_NEWLINE.findall(leading.group(0) if leading else ""))
    quote = start.group("quote")
    first_line = _ANY_NEWLINE.split(original[start.end() :], maxsplit=1)[0]
    if binding.error and quote and quote not in first_line:
        problem = f"the quote opening the value of {key} is never closed"
    elif binding.error:
        problem = f"the value of {key} is not one python-dotenv can read"
    elif _ANY_NEWLINE.search(original.rstrip("\r\n"), start.end()):
        problem = (
            f"the quoted value of {key} runs on over the next lines, "
            "which other readers (docker, sh) take as variables of their own"
        )
    else:
        return
    raise SinkError(f"cannot rewrite {source}: line {line}: {problem}; fix that line first")


def _rewrite_binding(original: str, line: str) -> str:
    """Keep the blank lines and indentation before a binding, its `export ` prefix and its line ending."""
    leading = _LEADING_SPACE.match(original)
    start = leading.end() if leading else 0
    export = _EXPORT.match(original, start)
    prefix_end = export.end() if export else start
    for ending in ("\r\n", "\n", "\r"):
        if original.endswith(ending):
            break
    else:
        ending = ""
    return original[:prefix_end] + line + ending


class Written(NamedTuple):
    """The file actually written, and its mode before, when it had to be tightened (it holds a token)."""

    path: Path
    tightened_from: int | None = None


def write_dotenv(path: str | os.PathLike[str], values: Mapping[str, str]) -> Path:
    """Set each key in the dotenv file at path (following symlinks) and return the file actually written."""
    return update_dotenv(path, values).path


def update_dotenv(
    path: str | os.PathLike[str],
    values: Mapping[str, str],
    *,
    environ: Mapping[str, str] | None = None,
) -> Written:
    """Set each key in the dotenv file at path (following symlinks). The file holds a token, so it ends up
    readable by its owner only: a wider mode is tightened to 0600 (reported in `tightened_from`), and a file
    owned by another user (root included: its owner would keep reading it), reached through another user's
    symlink in a shared folder, or no regular file (a FIFO, a device) is refused untouched (UnsafeFileError,
    a SinkError).

    Writers of one file wait for each other (at most LOCK_TIMEOUT, then LockTimeoutError) on a lock kept in the
    private cache directory of `environ`, keyed by the file's real path: nothing but the file itself is ever
    created in its folder."""
    for name, value in values.items():
        format_dotenv_line(name, value)  # refuse before touching anything
    try:
        # Another user's symlink in a shared folder is not followed; the file must be a regular file of ours.
        target = resolve_safely(path)
    except OSError as exc:
        raise SinkError(
            f"cannot write {printable(os.fspath(path))}: {exc.strerror or exc}"
        ) from exc
    tightened_from: int | None = None
    try:
        with writers_locked(target, cache_dir(environ), LOCK_TIMEOUT, what=str(target)):
            existing = read_user_file(
                target, what="dotenv file", limit=DOTENV_LIMIT, root_ok=False, missing_ok=True
            )
            current, stat = existing.data, existing.stat
            mode = PRIVATE_MODE
            if (
                stat is not None
            ):  # checked above: a regular file of ours; only now is its mode changed
                mode = stat.st_mode & 0o7777
                if mode & 0o077:
                    tightened_from, mode = mode, PRIVATE_MODE
            text = "" if current is None else current.decode(_ENCODING, _ERRORS)
            _check_lossless(text, target)
            updated = update_dotenv_text(text, values, source=str(target)).encode(
                _ENCODING, _ERRORS
            )
            if updated != current:
                atomic_write(target, updated, mode, group=None if stat is None else stat.st_gid)
            elif tightened_from is not None:  # same bytes: tighten in place, nothing rewritten
                _chmod_private(target)
            sweep_temp(target.parent, name=target.name, older_than=TEMP_STALE_AFTER)
    except SinkError:
        raise
    except OSError as exc:
        raise SinkError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return Written(target, tightened_from)


def tightened_notice(written: Written) -> str:
    """One line saying that the mode of a written file was tightened (a command or the daemon prints it)."""
    return (
        f"{written.path} was mode {written.tightened_from or 0:04o}, readable by others; "
        f"it holds a token, so it is now {PRIVATE_MODE:04o}"
    )


def _chmod_private(target: Path) -> None:
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)


def _check_lossless(text: str, target: Path) -> None:
    from dotenv.parser import parse_stream

    body = text.removeprefix(_BOM)
    if "".join(b.original.string for b in parse_stream(io.StringIO(body))) != body:
        raise SinkError(f"cannot rewrite {target} without changing other lines")
