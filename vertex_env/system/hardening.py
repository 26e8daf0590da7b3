"""Process limits for the long-running holders of a token (`daemon`, `serve`, `run --proxy`): no core dumps, and
as many file handles as the hard limit allows. Light: `resource` and, on Linux, `ctypes` only when called."""

from __future__ import annotations

import contextlib
import sys

__all__ = [
    "PR_SET_DUMPABLE",
    "PR_SET_PDEATHSIG",
    "disable_core_dumps",
    "prctl",
    "raise_open_file_limit",
]

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


def prctl(option: int, value: int) -> bool:
    """Linux prctl(2) through libc; False where it is unavailable or fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def disable_core_dumps() -> None:
    """A crash must not write the token to disk: RLIMIT_CORE 0, and on Linux not dumpable (which also keeps
    other processes of the same user from ptrace-attaching or reading /proc/PID/mem)."""
    import resource

    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    prctl(PR_SET_DUMPABLE, 0)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as servers do at start); the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return int(hard if soft == resource.RLIM_INFINITY else soft)
    try:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )
        return int(hard)
    except (OSError, ValueError):
        return int(soft)
