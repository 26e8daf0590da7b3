"""Files vertex-env owns: atomic replacement, locks with a deadline, stale temp files. POSIX only (Linux, macOS).

Every file vertex-env writes (token cache, daemon state, profiles, dotenv targets) goes through
`atomic_write`; every lock (cache mint, daemon instance, profile edit, dotenv writers) through `acquire` /
`locked`. Imports nothing heavy: it runs on the warm path of every prompt.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from vertex_env.errors import LockTimeoutError

#: Our temp files: `.NAME.vertex-env-<12 hex>.tmp`, created 0600 beside NAME. Nothing else is ever swept.
TEMP_MARK = "vertex-env-"
_TEMP = re.compile(r"\.(?P<name>.+)\.vertex-env-[0-9a-f]{12}\.tmp\Z")
#: A temp file this old is a leftover of a killed writer (a write takes milliseconds).
STALE_AFTER = 60.0

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_POLL_FIRST, _POLL_MAX = 0.001, 0.05


def temp_name(name: str) -> str:
    import secrets  # (random and its seeding) only when writing, never on the warm read path

    return f".{name}.{TEMP_MARK}{secrets.token_hex(6)}.tmp"


def atomic_write(
    path: Path,
    data: bytes,
    mode: int = 0o600,
    *,
    group: int | None = None,
) -> None:
    """Replace `path` with `data`: a temp file created 0600 (O_EXCL) in the same folder, written, fsynced,
    renamed over `path`, given `mode` (and `group`, when allowed), then the folder fsynced. No temp file survives a
    failure; a crash between the steps leaves the old file whole (and a 0600 temp file `sweep_temp` removes)."""
    directory = path.parent
    for _ in range(8):
        tmp = directory / temp_name(path.name)
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, 0o600
            )
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 48 random bits colliding eight times
        raise FileExistsError(errno.EEXIST, "no free temp file name", str(directory))
    try:
        try:
            if group is not None:
                with contextlib.suppress(
                    PermissionError
                ):  # the owner may only pick one of its groups
                    os.fchown(fd, -1, group)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.replace(tmp, path)
            # The mode is given through the descriptor after the rename: a temp file is never more than 0600,
            # and a crash here leaves the new file 0600, never wider than asked.
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename durable (some file systems cannot fsync a directory: that is not an error)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def sweep_temp(directory: Path, *, name: str | None = None, older_than: float = STALE_AFTER) -> int:
    """Remove our own leftover temp files in `directory` (only those of `name`, when given) older than
    `older_than` seconds and owned by us. Returns how many were removed; never raises for a file it skips."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        if match is None or (name is not None and match.group("name") != name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                continue
            if now - st.st_mtime < older_than:
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed


def open_lock_file(path: Path) -> int:
    """The lock file's descriptor: created 0600, never through a symlink, never a FIFO or device."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def acquire(path: Path, timeout: float, *, what: str, shared: bool = False) -> int:
    """An flock on `path` within `timeout` seconds; its descriptor (close it to release). On timeout raise
    LockTimeoutError naming `what` is locked and by which file."""
    fd = open_lock_file(path)
    operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST
    try:
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockTimeoutError(
                        f"{what} is locked by another process (waited {timeout:g} s for {path})",
                        hint="retry when it is done, or find the holder with `fuser` or `lsof`",
                    ) from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, _POLL_MAX)
    except BaseException:
        os.close(fd)
        raise


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def locked(path: Path, timeout: float, *, what: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` (a sidecar lock file, never the data file) for the block."""
    fd = acquire(path, timeout, what=what)
    try:
        yield
    finally:
        release(fd)


def is_locked(path: Path) -> bool:
    """Whether some process holds an exclusive lock on `path` (a non-blocking shared attempt fails)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
