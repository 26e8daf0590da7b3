"""The shared token cache: one small JSON file per cache key, 0600, in a 0700 per-user directory.

Short-lived access tokens only (long-lived secrets go to the OS keyring). Files are written atomically and
read defensively: a corrupt, foreign-owned or group/world-accessible file is ignored and later replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from vertex_env import errors, files
from vertex_env.errors import VertexEnvError

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.fast)
if TYPE_CHECKING:
    from typing import Any

CACHE_VERSION = 1
#: How long a process that misses waits for another one's mint (longer than any mint's own deadline).
LOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class CachedToken:
    value: str
    expires_at: float
    minted_at: float
    principal: str | None
    credential_type: str

    def __repr__(self) -> str:  # never show the token
        return f"CachedToken(expires_at={self.expires_at}, principal={self.principal!r})"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_RUNTIME_DIR/vertex-env` (per-user tmpfs) when usable, else the user cache dir."""
    env = os.environ if environ is None else environ
    explicit = env.get("VERTEX_ENV_CACHE_DIR")
    if explicit:
        return Path(explicit)
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        try:
            st = os.stat(runtime)
            if st.st_uid == os.getuid() and stat.S_ISDIR(st.st_mode):
                return Path(runtime) / "vertex-env"
        except OSError:
            pass
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "vertex-env"


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


class TokenCache:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or cache_dir()

    def path_for(self, key: str) -> Path:
        return self.directory / f"token-{key_digest(key)}.json"

    def read(self, key: str) -> CachedToken | None:
        path = self.path_for(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if st.st_uid != os.getuid() or st.st_mode & 0o077 or not stat.S_ISREG(st.st_mode):
                return None  # never trust a file someone else could have written or read
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = json.loads(fh.read(65536))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        return _parse(data, key)

    def write(self, key: str, token: CachedToken) -> Path:
        ensure_private_dir(self.directory)
        path = self.path_for(key)
        payload = {"version": CACHE_VERSION, "key": key_digest(key), **asdict(token)}
        files.atomic_write(path, json.dumps(payload).encode(), mode=0o600)
        return path

    def failure_path(self, key: str) -> Path:
        return self.directory / f"token-{key_digest(key)}.failed.json"

    def write_failure(self, key: str, err: VertexEnvError) -> None:
        """Record a failed mint (its class and message, never a secret) for processes waiting on the lock."""
        payload = {
            "at": time.time(),
            "class": type(err).__name__,
            "message": err.message,
            "hint": err.hint,
        }
        with contextlib.suppress(OSError):
            files.atomic_write(self.failure_path(key), json.dumps(payload).encode(), mode=0o600)

    def read_failure(self, key: str, *, since: float) -> VertexEnvError | None:
        """The error of a mint that failed after `since` (while the caller waited for the lock), if any."""
        try:
            with open(self.failure_path(key), "rb") as fh:
                data = json.loads(fh.read(65536))
            if float(data["at"]) < since:
                return None
            cls = getattr(errors, str(data["class"]), None)
            if not (isinstance(cls, type) and issubclass(cls, VertexEnvError)):
                cls = VertexEnvError
            failure: VertexEnvError = cls(str(data["message"]), hint=data.get("hint"))
            return failure
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove(self, key: str, only_value: str | None = None) -> bool:
        """Forget the token for `key` (only if it is still `only_value`, when given)."""
        if only_value is not None:
            current = self.read(key)
            if current is None or current.value != only_value:
                return False
        with contextlib.suppress(FileNotFoundError):
            self.path_for(key).unlink()
            return True
        return False

    def clear(self) -> int:
        removed = 0
        for path in self.directory.glob("token-*.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive lock for minting `key`: concurrent processes that miss wait here and then re-read."""
        ensure_private_dir(self.directory)
        with files.locked(
            self.directory / f"token-{key_digest(key)}.lock", LOCK_TIMEOUT, what="the token cache"
        ):
            yield


def _parse(data: Any, key: str) -> CachedToken | None:
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or data.get("key") != key_digest(key)
    ):
        return None
    try:
        return CachedToken(
            value=str(data["value"]),
            expires_at=float(data["expires_at"]),
            minted_at=float(data["minted_at"]),
            principal=data.get("principal"),
            credential_type=str(data.get("credential_type", "unknown")),
        )
    except (KeyError, TypeError, ValueError):
        return None
