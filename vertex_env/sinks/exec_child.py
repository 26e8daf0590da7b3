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

from vertex_env.errors import (
    CommandNotExecutableError,
    CommandNotFoundError,
    NestedRunError,
    SinkError,
)
from vertex_env.system.loopback import bypass_proxy_for_loopback

ACTIVE = "VERTEX_ENV_ACTIVE"
#: A child of `run` (without --proxy) holds its token by value for as long as it runs: it gets one with most of
#: its life left — a cached token with less than 45 minutes left (or a quarter of its life gone, for a
#: short-lived one) is replaced first. The profile's min TTL stays the floor.
CHILD_PREFERRED_TTL = 45 * 60
# Every signal a terminal, a shell or a supervisor sends to a program: the child gets each one (SIGKILL and
# SIGSTOP cannot be caught; PR_SET_PDEATHSIG covers our death on Linux).
_FORWARDED = (
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGTERM",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGWINCH",
    "SIGCONT",
    "SIGTSTP",
    "SIGINFO",
    "SIGPWR",
)
# Sent by the terminal to its whole foreground process group, the child included: not sent a second time.
_FROM_TERMINAL = ("SIGINT", "SIGQUIT", "SIGTSTP")
#: Older names of OPENAI_BASE_URL that clients still read first (langchain-openai, openai<1.0): a stale one
#: from the parent shell would send the child elsewhere, so it is replaced by the base URL we set.
BASE_URL_ALIASES = ("OPENAI_API_BASE",)


def child_environment(parent: Mapping[str, str], variables: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment with the variables set over any stale ones, and VERTEX_ENV_ACTIVE=1; with a
    forward proxy set and a loopback base URL, the loopback names added to NO_PROXY/no_proxy.

    Every OPENAI_* name vertex-env knows is ours in the child: set from `variables`, or (an alias of the base
    URL the parent had) replaced by our base URL."""
    env = dict(parent)
    env.update(variables)
    base_url = variables.get("OPENAI_BASE_URL")
    if base_url:
        for alias in BASE_URL_ALIASES:
            if alias in env and alias not in variables:
                env[alias] = base_url
        # The child's HTTP client goes direct to a loopback base URL (the proxy, the emulator), as ours do.
        bypass_proxy_for_loopback(env, base_url)
    env[ACTIVE] = "1"
    return env


#: What `run` sets in the child whatever an --env-file says (GOOGLE_CLOUD_* too with --google).
OWN_NAMES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "VERTEX_ENV_EXPIRES_AT",
    "OPENAI_API_BASE",
    ACTIVE,
)
GOOGLE_NAMES = ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION")


def replaced_names(file_values: Mapping[str, str], *, google: bool) -> list[str]:
    """The names an env file sets that vertex-env's own values replace in the child."""
    own = OWN_NAMES + (GOOGLE_NAMES if google else ())
    return [name for name in file_values if name in own]


def read_env_files(paths: Sequence[str]) -> dict[str, str]:
    """The variables of dotenv files (`run --env-file`, as `op run` and `docker --env-file` take them), a later
    file winning over an earlier one. Values are taken as written: no `${VAR}` expansion, nothing executed.
    A file that cannot be read is an error (exit 9), not an empty set of variables."""
    import io

    from dotenv.parser import parse_stream

    from vertex_env.system.echo import printable
    from vertex_env.system.files import read_user_file

    values: dict[str, str] = {}
    for path in paths:
        shown = printable(path)
        if os.path.isdir(path):
            raise SinkError(f"env file {shown} is a folder, not a dotenv file")
        try:
            # Another user's file (or link in a shared folder) could set BASH_ENV, PATH, LD_PRELOAD for us.
            text = (read_user_file(path, what="env file").data or b"").decode("utf-8")
        except FileNotFoundError:
            raise SinkError(f"env file {shown} not found") from None
        except UnicodeDecodeError as err:
            raise SinkError(
                f"cannot read env file {shown}: byte {err.start} is not UTF-8 text"
            ) from None
        except OSError as err:
            raise SinkError(f"cannot read env file {shown}: {err.strerror or err}") from None
        for binding in parse_stream(io.StringIO(text)):
            if binding.error:
                # python-dotenv would only warn and skip it; the child would run without what the line meant
                # to set. Its text is not echoed: it may hold a secret.
                raise SinkError(
                    f"env file {shown}: line {binding.original.line} is not NAME=VALUE "
                    "(a comment starts with #; quote a value with spaces)"
                )
            if (
                binding.key is not None and binding.value is not None
            ):  # a bare NAME line sets nothing
                values[binding.key] = binding.value
    return values


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
    _flush()
    try:
        os.execvpe(args[0], args, dict(env))
    except OSError as exc:
        raise _exec_error(args[0], exc) from exc


def spawn_and_wait(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    keep_fds: Sequence[int] = (),
    lifeline: bool = False,
) -> int:
    """Run argv as a child that must not outlive us; its exit code (128+N if killed by N).

    Every signal a terminal or supervisor sends (`_FORWARDED`) is passed on to the child, except SIGINT,
    SIGQUIT and SIGTSTP while we are the foreground process group of a terminal: the terminal already sent
    them to the child too. On Linux the child gets SIGTERM when we die, even by SIGKILL (PR_SET_PDEATHSIG), so
    it never keeps talking to a port another user could then take. Handlers can only be installed from the
    main thread; elsewhere the child gets no forwarded signals.

    `keep_fds` are inherited by the child (and whatever it starts): `run --proxy` passes its listening socket,
    so the port stays bound for as long as anything we started lives. With `lifeline`, our death (even by
    SIGKILL) also ends the process group we lead, or the child's own group (see `_child_group`).
    """
    args = list(argv) or default_command(env)
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []
    from_terminal = {getattr(signal, name) for name in _FROM_TERMINAL if hasattr(signal, name)}
    stop = getattr(signal, "SIGTSTP", None)

    def forward(signum: int, frame: FrameType | None) -> None:
        if not (signum in from_terminal and _in_terminal_foreground()):
            if child is None:
                pending.append(signum)
            elif child.poll() is None:
                child.send_signal(signum)
        if signum == stop:
            os.kill(
                os.getpid(), signal.SIGSTOP
            )  # suspended along with the child, as the shell expects

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for name in _FORWARDED:
            signum = getattr(signal, name, None)
            if signum is not None:
                previous[signum] = signal.signal(signum, forward)
    line = None
    try:
        _flush()
        own_group, target_group = _child_group() if lifeline else (False, False)
        if lifeline:
            from vertex_env.system.lifeline import start_lifeline

            line = start_lifeline()
        try:
            child = subprocess.Popen(
                args,
                env=dict(env),
                preexec_fn=_in_child(own_group),
                pass_fds=tuple(keep_fds),
            )
        except OSError as exc:
            raise _exec_error(args[0], exc) from exc
        if line is not None:
            if own_group:
                line.aim(-child.pid)
            elif target_group:
                line.aim(-os.getpgrp())
            else:
                line.aim(child.pid)
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        if line is not None:
            line.done()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _child_group() -> tuple[bool, bool]:
    """(whether the child gets a process group of its own, whether our death should end our own group).

    We lead our group (a shell's job, a supervisor's session, `setsid`): everything in it is ours to end, and
    the child stays in it, so a terminal's job control keeps working. Not the leader and not in a terminal's
    foreground (a script's step, a CI runner): the child gets a group of its own, ended on our death. Not the
    leader but in a terminal's foreground (a shell script's step): the child must stay in the terminal's
    group, and only the child itself is ended."""
    if os.getpgrp() == os.getpid():
        return False, True
    if _in_terminal_foreground():
        return False, False
    return True, False


def _in_child(own_group: bool) -> Callable[[], None] | None:
    """For Popen's preexec_fn: a process group of the child's own (`own_group`; Popen's process_group is
    Python 3.11+), and on Linux SIGTERM when this thread's process dies."""
    die = _die_with_parent()
    if not own_group:
        return die

    def in_child() -> None:
        os.setpgid(0, 0)
        if die is not None:
            die()

    return in_child


def _die_with_parent() -> Callable[[], None] | None:
    """For Popen's preexec_fn on Linux: the child gets SIGTERM when this thread's process dies. Everything it
    needs is looked up here, before the fork; the child only calls prctl and getppid."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    from vertex_env.system.hardening import PR_SET_PDEATHSIG

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    term = int(signal.SIGTERM)

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent:  # we died between fork and prctl: the signal would never come
            os.kill(os.getpid(), term)

    return in_child


def _in_terminal_foreground() -> bool:
    """True when we are in the foreground of a controlling terminal (so Ctrl-C reached the child as well)."""
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
