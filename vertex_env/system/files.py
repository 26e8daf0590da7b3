"""Files vertex-env owns: atomic replacement, locks with a deadline, stale temp files. POSIX only (Linux, macOS).

Every file vertex-env writes (token cache, daemon state, profiles, dotenv targets) goes through
`atomic_write`; every lock (cache mint, daemon instance, profile edit, dotenv writers) through `acquire` /
`locked`. Imports nothing heavy: it runs on the warm path of every prompt.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from vertex_env.errors import LockTimeoutError, NotPosixError, UnsafeFileError

try:
    import fcntl
except ImportError:
    # Windows. `import vertex_env` must still work there: the CLI then stops with one line (cli.group), and a
    # lock the Python API would take raises NotPosixError instead of a traceback.
    fcntl = None  # type: ignore[assignment]


def posix_system() -> bool:
    """Whether this system has the flock every file vertex-env shares relies on (Linux, macOS: yes)."""
    return fcntl is not None


def _require_posix() -> None:
    if fcntl is None:
        raise NotPosixError()


#: Our temp files: `.NAME.vertex-env-<12 hex>.tmp`, created 0600 beside NAME. Nothing else is ever swept.
TEMP_MARK = "vertex-env-"
_TEMP = re.compile(r"\.(?P<name>.+)\.vertex-env-[0-9a-f]{12}\.tmp\Z")
#: Temp files of vertex-env before 0.2 (tempfile.mkstemp's names), swept only in the private cache directory.
_LEGACY_TEMP = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp\Z")
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


def sweep_temp(
    directory: Path,
    *,
    name: str | None = None,
    older_than: float = STALE_AFTER,
    legacy: bool = False,
) -> int:
    """Remove our own leftover temp files in `directory` (only those of `name`, when given) older than
    `older_than` seconds and owned by us (`legacy`: also the mkstemp names of earlier versions — only in a
    directory that is all ours). Returns how many were removed; never raises for a file it skips."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        match = (
            _TEMP.fullmatch(entry.name) or (legacy and _LEGACY_TEMP.fullmatch(entry.name)) or None
        )
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
    _require_posix()
    fd = open_lock_file(path)
    try:
        _flock_within(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, timeout, what, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _flock_within(
    fd: int, operation: int, timeout: float, what: str, where: Path, stated: float | None = None
) -> None:
    """flock within `timeout` s; the timeout error says `stated` s (the whole wait, when this is a retry)."""
    _require_posix()
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeoutError(
                    f"{what} is locked by another process "
                    f"(waited {timeout if stated is None else stated:g} s for {where})",
                    hint="retry when it is done, or find the holder with `fuser` or `lsof`",
                ) from None
            time.sleep(min(delay, left))
            delay = min(delay * 2, _POLL_MAX)


def writers_lock_path(target: Path, private_dir: Path) -> Path:
    """The lock file that serializes the writers of `target`, keyed by its real path, in `private_dir`."""
    from vertex_env.system.digest import (
        sha256_hex,  # hashlib's OpenSSL load stays off the warm path
    )

    digest = sha256_hex(os.fsencode(os.path.realpath(target)))[:40]
    return private_dir / f"writers-{digest}.lock"


@contextlib.contextmanager
def writers_locked(target: Path, private_dir: Path, timeout: float, *, what: str) -> Iterator[None]:
    """Hold the writers' lock of `target`, a file in a folder of the user's (a dotenv file, the config file),
    for the block — without creating anything beside it (a lock file there would clutter a project and get
    committed). The lock file is `writers_lock_path` in `private_dir`, a directory checked as ssh checks ~/.ssh
    (created 0700). When that directory is unusable (a symlink, another user's, not creatable), the lock is an
    flock on the target's folder itself: nothing is created, writers of one folder then wait for each other,
    and since anyone who can read the folder could hold that lock, the deadline still bounds the wait."""
    try:
        ensure_private_dir(private_dir)
        fd = _acquire_linked(writers_lock_path(target, private_dir), timeout, what=what)
    except LockTimeoutError:
        raise
    except OSError:
        fd = _acquire_directory(Path(os.path.realpath(target)).parent, timeout, what=what)
    try:
        yield
    finally:
        release(fd)


def _acquire_linked(path: Path, timeout: float, *, what: str) -> int:
    """`acquire`, then make sure the locked file is still the one at `path`: `sweep_writers_locks` may have
    unlinked it between our open and our lock, and a lock on an unlinked file excludes no one. Retry then."""
    deadline = time.monotonic() + timeout
    while True:
        fd = open_lock_file(path)
        try:
            _flock_within(fd, fcntl.LOCK_EX, deadline - time.monotonic(), what, path, timeout)
            held, linked = os.fstat(fd), os.stat(path, follow_symlinks=False)
            if (held.st_dev, held.st_ino) == (linked.st_dev, linked.st_ino):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            release(fd)
            raise
        release(fd)  # swept: lock the file now at the path (created anew by open_lock_file)


_WRITERS_LOCK = re.compile(r"writers-[0-9a-f]{40}\.lock\Z")


def sweep_writers_locks(directory: Path) -> int:
    """Remove the writers' lock files in `directory` that no process holds: each is locked non-blocking and
    unlinked while locked (a writer that opened it meanwhile notices, see `_acquire_linked`); a held one, or
    one that is not a regular file of ours, is left. Returns how many were removed; never raises for a skip."""
    _require_posix()
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not _WRITERS_LOCK.fullmatch(entry.name):
            continue
        try:
            fd = os.open(entry.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            linked = os.stat(entry.path, follow_symlinks=False)
            if (linked.st_dev, linked.st_ino) != (st.st_dev, st.st_ino):
                continue  # replaced since we opened it: someone's fresh lock file
            os.unlink(entry.path)
            removed += 1
        except OSError:  # BlockingIOError: held by a writer
            continue
        finally:
            os.close(fd)
    return removed


def _acquire_directory(directory: Path, timeout: float, *, what: str) -> int:
    _require_posix()
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        _flock_within(fd, fcntl.LOCK_EX, timeout, what, directory)
    except BaseException:
        os.close(fd)
        raise
    return fd


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
    _require_posix()
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


# --- private directories and files (what ssh and gpg require of ~/.ssh and ~/.gnupg) -------------------------

#: The most vertex-env reads from a file it keeps (tokens, failure records, daemon state are under 4 KiB).
READ_LIMIT = 64 * 1024


class UnsafeDirectoryError(OSError):
    """A private directory that another user could control: a symlink, not ours, or writable by others."""


def _check_directory(fd: int, path: Path) -> os.stat_result:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise UnsafeDirectoryError(
            errno.EPERM, f"it is owned by uid {st.st_uid}, not by you", str(path)
        )
    if st.st_mode & 0o022:
        raise UnsafeDirectoryError(
            errno.EPERM,
            f"it is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})",
            str(path),
        )
    return st


def _open_directory(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise UnsafeDirectoryError(errno.EPERM, "it is a symbolic link", str(path)) from None
        raise


def _check_parent(path: Path) -> None:
    """The folder that holds a private directory must not let another user swap it: owned by us or root, and
    not writable by others unless sticky (as /tmp: there only the owner may rename or remove an entry)."""
    parent = path.parent
    try:
        st = os.stat(parent)
    except FileNotFoundError:
        return  # created below by us
    if st.st_uid not in (os.geteuid(), 0):
        raise UnsafeDirectoryError(
            errno.EPERM, f"its folder {parent} is owned by uid {st.st_uid}, not by you", str(path)
        )
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise UnsafeDirectoryError(
            errno.EPERM,
            f"its folder {parent} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}) "
            "without the sticky bit",
            str(path),
        )


def check_private_dir(path: Path) -> None:
    """Raise UnsafeDirectoryError unless `path` is a real directory (not a symlink) owned by us and writable
    by nobody else, in a folder no other user can swap it in; FileNotFoundError when it does not exist."""
    _check_parent(path)
    fd = _open_directory(path)
    try:
        _check_directory(fd, path)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> Path:
    """`path` as a private directory: created 0700 when missing; an existing one of ours is tightened to 0700;
    a symlink, a foreign-owned or a group/world-writable one, or one in a folder another user could swap it
    in (`_check_parent`), is refused (UnsafeDirectoryError)."""
    _check_parent(path)
    try:
        fd = _open_directory(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # a concurrent process made it: checked below
            os.mkdir(path, 0o700)
        fd = _open_directory(path)
    try:
        st = _check_directory(fd, path)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def read_private(path: Path, limit: int = READ_LIMIT) -> bytes | None:
    """The bytes of a file only we could have written and only we can read — a regular file (never through a
    symlink, never blocking on a FIFO) owned by us, mode without group/other bits, at most `limit` bytes —
    else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        if st.st_size > limit:
            return None
        data = os.read(fd, limit + 1)
        return None if len(data) > limit else data
    except OSError:
        return None
    finally:
        os.close(fd)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The private folder of short-lived files (token cache, locks, daemon state): `$XDG_RUNTIME_DIR/vertex-env` (per-user tmpfs) when usable, else the user cache dir."""
    env = os.environ if environ is None else environ
    explicit = env.get("VERTEX_ENV_CACHE_DIR")
    if explicit:
        return Path(explicit)
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        try:
            st = os.stat(runtime)
            if st.st_uid == os.geteuid() and stat.S_ISDIR(st.st_mode):
                return Path(runtime) / "vertex-env"
        except OSError:
            pass
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "vertex-env"


# --- files read or written on the user's behalf (dotenv targets, CI env files, --env-file, config, ADC) ----------

#: The most vertex-env reads from a file of the user's (a dotenv file, a config file, a credential).
USER_FILE_LIMIT = 1024 * 1024
#: Most symlinks followed in one path (the kernel's limit).
_MAX_LINKS = 40


def _shared_folder(st: os.stat_result) -> bool:
    """A folder where others may plant names: sticky (as /tmp) or writable by others."""
    return bool(st.st_mode & (stat.S_ISVTX | stat.S_IWOTH))


def resolve_safely(path: str | os.PathLike[str]) -> Path:
    """The real path of `path` (as os.path.realpath, a missing tail kept as written), following a symlink the
    way the kernel does under fs.protected_symlinks=1, whatever the sysctl says: a symlink in a sticky or
    other-writable folder is followed only when it is ours or the folder owner's. Reading the link in user space
    (realpath) bypasses the kernel's rule; this applies it. Raise UnsafeFileError naming the link otherwise."""
    start = os.path.join(
        os.getcwd(), os.fspath(path)
    )  # not abspath: `..` after a link is the link's
    pending = list(reversed(start.split("/")))
    resolved = "/"
    links = 0
    me = os.geteuid()
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, name)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            rest = [part for part in reversed(pending) if part not in ("", ".")]
            return Path(os.path.normpath(os.path.join(candidate, *rest)))
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        links += 1
        if links > _MAX_LINKS:
            raise UnsafeFileError(f"{_shown(start)}: too many levels of symbolic links")
        folder = os.stat(resolved)
        if _shared_folder(folder) and st.st_uid not in (me, folder.st_uid):
            raise UnsafeFileError(
                f"refusing {_shown(candidate)}: a symbolic link of another user (uid {st.st_uid}) "
                f"in the shared folder {_shown(resolved)}",
                hint="the kernel's protected_symlinks rule; remove the link or use the real path",
            )
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = "/"
        pending.extend(reversed(target.split("/")))
    return Path(resolved)


class UserFile:
    """A file of the user's, checked and read: its real path, its stat (None: it does not exist) and bytes."""

    __slots__ = ("data", "path", "stat")

    def __init__(self, path: Path, st: os.stat_result | None, data: bytes | None) -> None:
        self.path, self.stat, self.data = path, st, data


def read_user_file(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int = USER_FILE_LIMIT,
    root_ok: bool = True,
    missing_ok: bool = False,
) -> UserFile:
    """Read a file on the user's behalf: resolved by `resolve_safely`, opened without following a last symlink
    and without blocking (a FIFO never hangs us), a regular file, owned by us (or by root, unless `root_ok` is
    False: a file that will hold a token must be ours alone), at most `limit` bytes. UnsafeFileError (exit 9)
    names `what` and the file otherwise; FileNotFoundError when it does not exist (unless `missing_ok`: then a
    UserFile without stat and data); other OSErrors pass as they are."""
    real = resolve_safely(path)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC)
    except FileNotFoundError:
        if missing_ok:
            return UserFile(real, None, None)
        raise
    except OSError as err:
        if err.errno == errno.ELOOP:  # replaced by a symlink since we resolved it
            raise UnsafeFileError(
                f"refusing {what} {_shown(real)}: it is a symbolic link"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        check_user_file(st, real, what=what, limit=limit, root_ok=root_ok)
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise UnsafeFileError(f"refusing {what} {_shown(real)}: it is over {limit} bytes")
    finally:
        os.close(fd)
    return UserFile(real, st, data)


def check_user_file(
    st: os.stat_result,
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int = USER_FILE_LIMIT,
    root_ok: bool = True,
) -> None:
    """The checks of `read_user_file` on a stat result (of an open descriptor, for a file another library
    opens next): a regular file, ours (or root's when `root_ok`), at most `limit` bytes."""
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a folder"
            if stat.S_ISDIR(st.st_mode)
            else "a device or socket"
        )
        raise UnsafeFileError(f"refusing {what} {_shown(path)}: it is {kind}, not a regular file")
    owners = (os.geteuid(), 0) if root_ok else (os.geteuid(),)
    if st.st_uid not in owners:
        raise UnsafeFileError(
            f"refusing {what} {_shown(path)}: it belongs to another user (uid {st.st_uid})",
            hint="only your own files (and root's) are read or written on your behalf",
        )
    if st.st_size > limit:
        raise UnsafeFileError(f"refusing {what} {_shown(path)}: it is over {limit} bytes")


def check_user_path(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    limit: int = USER_FILE_LIMIT,
    root_ok: bool = True,
) -> Path:
    """`read_user_file`'s checks without reading: the real path of a file another library opens next
    (google-auth's credential_source file), checked through a non-blocking descriptor."""
    real = resolve_safely(path)
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC)
    try:
        check_user_file(os.fstat(fd), real, what=what, limit=limit, root_ok=root_ok)
    finally:
        os.close(fd)
    return real


def _shown(path: str | os.PathLike[str]) -> str:
    """A path as it goes into a message: control characters escaped, capped."""
    from vertex_env.system.echo import printable

    return printable(os.fspath(path))
