"""Setting keys in a dotenv file: one binding rewritten in place, every other byte kept; atomic and locked.

Values are written unquoted, so only characters that every reader of a dotenv file takes literally when
unquoted are accepted (ALLOWED_VALUE_CHARS). The readers, each checked by tests/test_dotenv_file.py:
  - python-dotenv: unquoted value up to end of line; `' "` start a quoted value, `<space>#` a comment,
    surrounding whitespace is stripped, `${…}` is interpolated.
  - docker `--env-file`: the literal text after the first `=` (no quotes, no escapes, no trimming).
  - direnv `dotenv`: `#` starts a comment anywhere in an unquoted value; `$VAR` is expanded.
  - POSIX sh `set -a; . ./.env`: a shell word, so `$ \\ ` ' " ; & | < > ( )` and blanks are code, and `~`
    at the start or after `:` is the home directory. zsh also expands a word that starts with `=`.

Several bindings of one key: every one of them is rewritten with the new value, so readers that take the
first binding and readers that take the last (python-dotenv, sh, docker, direnv) read the same value, and no
stale token is left in the file. An inline comment on a rewritten line is dropped: docker would read it as
part of the value. An `export ` prefix and the indentation of the line are kept.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from vertex_env.errors import SinkError
from vertex_env.render import check_name

#: Characters a value may hold: letters, digits and `._:/?[]@!+,=%-` (a value must not start with `=`).
ALLOWED_VALUE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + "._:/?[]@!+,=%-"
)
ALLOWED_DESCRIPTION = "ASCII letters, digits and . _ : / ? [ ] @ ! + , = % - (not starting with =)"

_LEADING_SPACE = re.compile(r"\s*", re.UNICODE)  # python-dotenv's _multiline_whitespace
_EXPORT = re.compile(r"(?:export[^\S\r\n]+)?", re.UNICODE)  # python-dotenv's _export
_FIRST_NEWLINE = re.compile(r"\r\n|\n|\r")
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # bytes that are not UTF-8 pass through unchanged
_BOM = "\ufeff"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

if sys.platform == "win32":
    import msvcrt

    def _lock_exclusive(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # gives up (OSError) after about 10 s

else:
    import fcntl

    def _lock_exclusive(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def check_dotenv_value(name: str, value: str) -> None:
    """Refuse a value the dotenv readers would not all read back literally. The value is never echoed."""
    if value.startswith("=") or not ALLOWED_VALUE_CHARS.issuperset(value):
        raise SinkError(
            f"the value of {name} cannot be written to a dotenv file unquoted",
            hint=f"allowed: {ALLOWED_DESCRIPTION}",
        )


def format_dotenv_line(name: str, value: str) -> str:
    """`NAME=value` without a line ending, after validating both."""
    check_name(name)
    check_dotenv_value(name, value)
    return f"{name}={value}"


def update_dotenv_text(text: str, values: Mapping[str, str]) -> str:
    """The file text with each key set: bindings of our keys rewritten in place, missing keys appended."""
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


def write_dotenv(path: str | os.PathLike[str], values: Mapping[str, str]) -> Path:
    """Set each key in the dotenv file at path (following symlinks) and return the file actually written."""
    for name, value in values.items():
        format_dotenv_line(name, value)  # refuse before touching anything
    target = Path(os.path.realpath(path))
    try:
        with _locked(target):
            try:
                current: bytes | None = target.read_bytes()
                stat: os.stat_result | None = target.stat()
            except FileNotFoundError:
                current, stat = None, None
            text = "" if current is None else current.decode(_ENCODING, _ERRORS)
            _check_lossless(text, target)
            updated = update_dotenv_text(text, values).encode(_ENCODING, _ERRORS)
            if updated != current:
                _replace_atomically(target, updated, stat)
    except SinkError:
        raise
    except OSError as exc:
        raise SinkError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def _check_lossless(text: str, target: Path) -> None:
    from dotenv.parser import parse_stream

    body = text.removeprefix(_BOM)
    if "".join(b.original.string for b in parse_stream(io.StringIO(body))) != body:
        raise SinkError(f"cannot rewrite {target} without changing other lines")


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """An exclusive flock on a sidecar file, held across read-modify-write (the target itself is replaced)."""
    lock_path = target.with_name(f".{target.name}.vertex-env.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o600)
    try:
        _lock_exclusive(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _replace_atomically(target: Path, data: bytes, stat: os.stat_result | None) -> None:
    """Temp file in the same folder, fsync, rename over the target, fsync the folder; no temp file survives."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        try:
            if stat is not None:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, stat.st_mode & 0o7777)
                else:
                    os.chmod(tmp, stat.st_mode & 0o7777)
                if hasattr(os, "fchown"):  # POSIX; only root (or the owner, for the group) may
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, stat.st_uid, stat.st_gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a folder this way)."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
