"""The child-process sink: a command started with the variables in its environment (never in its argv)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any, NoReturn

from vertex_env.errors import CommandNotExecutableError, CommandNotFoundError, NestedRunError

ACTIVE = "VERTEX_ENV_ACTIVE"
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP")


def child_environment(parent: Mapping[str, str], variables: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment with the variables set over any stale ones, and VERTEX_ENV_ACTIVE=1."""
    env = dict(parent)
    env.update(variables)
    env[ACTIVE] = "1"
    return env


def check_not_nested(parent_env: Mapping[str, str], force: bool) -> None:
    """Refuse to run inside another `vertex-env run`: the outer token would shadow nothing, but it is a mistake."""
    if parent_env.get(ACTIVE) and not force:
        raise NestedRunError(
            f"already inside `vertex-env run` ({ACTIVE} is set)", hint="pass --force to run anyway"
        )


def default_command(env: Mapping[str, str]) -> list[str]:
    """No command given: the user's shell."""
    return [env.get("SHELL") or "/bin/sh"]


def exec_command(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with argv (PATH searched in env). Where exec is impossible, spawn and mirror."""
    args = list(argv) or default_command(env)
    if os.name == "nt":
        raise SystemExit(spawn_and_wait(args, env))
    _flush()
    try:
        os.execvpe(args[0], args, dict(env))
    except OSError as exc:
        raise _exec_error(args[0], exc) from exc


def spawn_and_wait(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run argv as a child, forwarding SIGINT/SIGTERM/SIGHUP to it; its exit code (128+N if killed by N).

    SIGINT is not forwarded while we are the foreground process group of a terminal: the terminal already
    sent it to the child too, and a second one would cut short its own clean-up. Handlers can only be
    installed from the main thread; elsewhere the child gets no forwarded signals.
    """
    args = list(argv) or default_command(env)
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _terminal_sent_sigint():
            return
        if child is None:
            pending.append(signum)
        elif child.poll() is None:
            child.send_signal(signum)

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for name in _FORWARDED:
            signum = getattr(signal, name, None)
            if signum is not None:
                previous[signum] = signal.signal(signum, forward)
    try:
        _flush()
        try:
            child = subprocess.Popen(args, env=dict(env))
        except OSError as exc:
            raise _exec_error(args[0], exc) from exc
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _terminal_sent_sigint() -> bool:
    """True when we are in the foreground of a controlling terminal (so Ctrl-C reached the child as well)."""
    if sys.platform == "win32":
        return True  # the console sends Ctrl-C to every process attached to it
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def _exec_error(command: str, exc: OSError) -> CommandNotFoundError | CommandNotExecutableError:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return CommandNotFoundError(f"command not found: {command}")
    return CommandNotExecutableError(f"cannot execute {command}: {exc.strerror or exc}")
