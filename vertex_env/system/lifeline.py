"""The lifeline of `run --proxy`: a tiny process that ends what we started when we die without saying goodbye.

PR_SET_PDEATHSIG reaches only the direct child, and only if it dies of the signal: a shell ignoring SIGTERM
(`bash -i`) or an app that is a grandchild (`sh -c 'python app.py & wait'`) outlived a `kill -9` of
vertex-env. The lifeline is a separate Python process (stdlib only, started with `-I -S`, in a session of its
own so no terminal signal reaches it) that reads a pipe whose only write end we hold. When the pipe ends
without our "done" (we died: SIGKILL, a crash), it sends SIGHUP, SIGTERM and SIGCONT to the target (the
process group we started, or the child alone), and SIGKILL after `GRACE` seconds to what is left.

The port stays ours meanwhile regardless: the child inherits the proxy's listening socket, so while anything
we started lives the port cannot be bound by another user; requests wait unanswered on it (fail closed).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

__all__ = ["GRACE", "Lifeline", "start_lifeline"]

#: Seconds between the polite signals and SIGKILL.
GRACE = 2.0

_DONE = b"done\n"

# Stdlib only, no site: it starts in ~15 ms and needs nothing the target user's venv may lack.
_CODE = r"""
import os, signal, sys, time
for name in ("SIGINT", "SIGHUP", "SIGTERM", "SIGQUIT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGPIPE"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
grace = float(sys.argv[1])
data = b""
while True:
    try:
        chunk = os.read(0, 256)
    except InterruptedError:
        continue
    if not chunk:
        break
    data += chunk
lines = data.split(b"\n")
if b"done" in lines or not lines[0].strip():
    sys.exit(0)
target = int(lines[0])
def send(signum):
    try:
        os.kill(target, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGCONT):
    if not send(signum):
        sys.exit(0)
deadline = time.monotonic() + grace
while time.monotonic() < deadline:
    if not send(0):
        sys.exit(0)
    time.sleep(0.05)
send(signal.SIGKILL)
"""


class Lifeline:
    """Our end of the pipe to the lifeline process: `aim(target)` once the child runs, `done()` when we return
    normally (nothing is killed then)."""

    def __init__(self, process: subprocess.Popen[bytes], write_end: int) -> None:
        self._process = process
        self._write_end: int | None = write_end

    @property
    def pid(self) -> int:
        return self._process.pid

    def aim(self, target: int) -> None:
        """What to end when we die: a negative number is a process group (kill(2)'s convention)."""
        if self._write_end is not None:
            with contextlib.suppress(OSError):
                os.write(self._write_end, f"{target}\n".encode())

    def done(self) -> None:
        """We are returning normally: the lifeline exits without touching anything."""
        fd, self._write_end = self._write_end, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(fd, _DONE)
        os.close(fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)


def start_lifeline(grace: float = GRACE) -> Lifeline | None:
    """A started lifeline, or None where none can run (no interpreter path, not POSIX)."""
    if os.name != "posix" or not sys.executable:
        return None
    read_end, write_end = os.pipe()  # both close-on-exec: the child never holds the write end
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CODE, repr(grace)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return Lifeline(process, write_end)
