"""CI job setup: the variables handed to later steps of a GitHub Actions, GitLab CI or CircleCI job."""

from __future__ import annotations

import os
import re
import stat
import uuid
from collections.abc import Mapping

from vertex_env.errors import SinkError
from vertex_env.sinks.render import check_name, check_no_nul
from vertex_env.system.echo import printable
from vertex_env.system.files import check_user_file, resolve_safely
from vertex_env.system.quoting import quote_sh

#: The largest CI env file appended to (a job's file holds a few variables per step).
_CI_FILE_LIMIT = 64 * 1024 * 1024

GITLAB_WARNING = (
    "a GitLab dotenv report is stored as a job artifact and its variables are visible to anyone "
    "who can read the pipeline; the access token in it stays valid for up to an hour"
)

# GitLab's dotenv report: `KEY=value` lines, no quotes, escapes, comments, blank lines or multiline values;
# surrounding whitespace is stripped, so no whitespace or control character is accepted anywhere.
_GITLAB_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")


def _escape_command_data(data: str) -> str:
    """Workflow command data escaping: the runner turns %25, %0D and %0A back into `%`, CR and LF."""
    return data.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _append(path: str, text: str) -> None:
    """One O_APPEND write: the runner may hold other steps' lines in the same file.

    The file gets a token, so it is checked first — not reached through another user's symlink in a shared
    folder, never blocking (a FIFO), a regular file of ours — and only then made 0600 (the runner, us, still
    reads it)."""
    shown = printable(path)
    try:
        real = resolve_safely(path)
        fd = os.open(
            real,
            os.O_WRONLY
            | os.O_APPEND
            | os.O_CREAT
            | os.O_NOFOLLOW
            | os.O_NONBLOCK
            | os.O_NOCTTY
            | getattr(os, "O_CLOEXEC", 0),
            0o600,
        )
    except OSError as err:
        raise SinkError(f"cannot append to {shown}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        check_user_file(st, real, what="CI env file", limit=_CI_FILE_LIMIT, root_ok=False)
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
        data = text.encode("utf-8")
        written = os.write(fd, data)
        if written != len(data):
            raise SinkError(f"short write to {shown}")
    finally:
        os.close(fd)


def _env_file(environ: Mapping[str, str], name: str) -> str:
    path = environ.get(name, "")
    if not path:
        raise SinkError(f"${name} is not set: this does not look like a job of that CI system")
    return path


def write_github(
    variables: Mapping[str, str],
    token: str,
    environ: Mapping[str, str],
    *,
    delimiter: str | None = None,
) -> str:
    """Append the variables to $GITHUB_ENV; return the stdout text that masks the token in the job log.

    Heredoc form `NAME<<DELIM`, value, `DELIM` (as @actions/core writes it) for every variable, so any value
    without a NUL byte survives. The delimiter is random; a value that contains it is refused.
    """
    path = _env_file(environ, "GITHUB_ENV")
    delim = delimiter or f"ghadelimiter_{uuid.uuid4()}"
    chunks = []
    for name, value in variables.items():
        check_name(name)
        check_no_nul(name, value)
        if delim in value or delim in name:
            raise SinkError(f"the value of {name} contains the heredoc delimiter; try again")
        if value.endswith("\r"):
            # A Windows runner reads the CR before our LF as part of the line ending.
            raise SinkError(f"the value of {name} ends with a carriage return, which GitHub drops")
        chunks.append(f"{name}<<{delim}\n{value}\n{delim}\n")
    _append(path, "".join(chunks))
    return f"::add-mask::{_escape_command_data(token)}\n"


def render_gitlab(variables: Mapping[str, str]) -> str:
    """A GitLab `artifacts:reports:dotenv` file: `KEY=value` lines only. Print GITLAB_WARNING to stderr."""
    lines = []
    for name, value in variables.items():
        check_name(name)
        check_no_nul(name, value)
        if _GITLAB_UNSAFE.search(value):
            raise SinkError(
                f"the value of {name} cannot go in a GitLab dotenv report",
                hint="GitLab refuses whitespace, newlines and control characters in values",
            )
        lines.append(f"{name}={value}\n")
    return "".join(lines)


def write_circleci(variables: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Append `export NAME='value';` lines to $BASH_ENV, which CircleCI sources before every later step."""
    path = _env_file(environ, "BASH_ENV")
    lines = []
    for name, value in variables.items():
        check_name(name)
        check_no_nul(name, value)
        lines.append(f"export {name}={quote_sh(value)};\n")
    _append(path, "".join(lines))
