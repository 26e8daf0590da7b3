"""The one channel for diagnostics: `logging`, under the `vertex_env` logger, and one stderr handler the CLI
installs.

Every module logs through `logging.getLogger(__name__)`; none prints to stderr. A record's message is the
text a person reads; its `speaker` (an `extra`) says who speaks, `vertex-env` unless the handler's formatter
was given another (`serve` speaks as `vertex-env serve`). The line is `SPEAKER: LEVEL: TEXT`, without the level
for INFO (a notice, not a problem); `speaker=""` leaves the speaker out (a command's own lines: `wrote .env`),
and `speaker=None` marks a message that already is the whole line (the token source's warnings, which a
program using the Python API without any logging set up sees as they are, through Python's last-resort
handler). `serve --log-format json` swaps the handler's formatter for its JSON one (vertex_env.proxy.serving).

Levels, set by `install()`: the library says only warnings and errors; the CLI's own lines (vertex_env.cli)
and the daemon's log (vertex_env.sinks.daemon) are notices; the transport's debug records exist only when
--debug / VERTEX_ENV_DEBUG asked for them, so they always pass.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["ROOT", "LineFormatter", "handler", "installed", "show_debug", "speaker"]

ROOT = "vertex_env"
#: Loggers whose INFO records are shown by default (the rest of the library shows WARNING and up).
_NOTICES = ("vertex_env.cli", "vertex_env.sinks.daemon")
_TRANSPORT = "vertex_env.core.transport"


def speaker(name: str | None) -> dict[str, Any]:
    """The `extra` that names who speaks a record (see the module's docstring)."""
    return {"speaker": name}


class LineFormatter(logging.Formatter):
    """`vertex-env: warning: …`: one line per record, as the module's docstring describes."""

    def __init__(self, default_speaker: str = "vertex-env") -> None:
        super().__init__()
        self.default_speaker = default_speaker

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        who = getattr(record, "speaker", self.default_speaker)
        if who is None:
            return text
        parts = [who] if who else []
        if record.levelno != logging.INFO:
            parts.append(record.levelname.lower())
        return ": ".join([*parts, text])


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of the record (tests and click swap it), and never
    fails the caller: a closed stderr loses the line, not the request."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def handler() -> logging.Handler | None:
    """The one stderr handler on the `vertex_env` logger, while the CLI runs (None otherwise)."""
    for existing in logging.getLogger(ROOT).handlers:
        if isinstance(existing, _StderrHandler):
            return existing
    return None


@contextlib.contextmanager
def installed() -> Iterator[logging.Handler]:
    """The CLI's diagnostics for one run: the one handler with plain lines and the default levels; removed
    afterwards, so that a program (or a test) running the CLI in-process keeps its own logging as it was."""
    root = logging.getLogger(ROOT)
    names = (ROOT, *_NOTICES, _TRANSPORT)
    levels = {name: logging.getLogger(name).level for name in names}
    one = handler()
    added = (
        one is None
    )  # else already there: a debug=True of the Python API put it (see show_debug)
    if one is None:
        one = _StderrHandler()
        root.addHandler(one)
    formatter = one.formatter
    one.setFormatter(LineFormatter())
    root.setLevel(logging.WARNING)
    for name in _NOTICES:
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger(_TRANSPORT).setLevel(logging.DEBUG)
    try:
        yield one
    finally:
        if added:
            root.removeHandler(one)
        else:
            one.setFormatter(formatter)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def show_debug() -> None:
    """--debug / VERTEX_ENV_DEBUG asked for here (the Python API's `debug=True`, a program without the CLI):
    the debug records reach stderr through the one handler, installed now if the CLI has not (and kept: a
    program that asked for debug lines keeps them)."""
    if handler() is None:
        one = _StderrHandler()
        one.setFormatter(LineFormatter())
        logging.getLogger(ROOT).addHandler(one)
    logging.getLogger(_TRANSPORT).setLevel(logging.DEBUG)
