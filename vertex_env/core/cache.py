"""The shared token cache: one small JSON file per cache key, 0600, in a 0700 per-user directory.

Short-lived access tokens only (long-lived secrets go to the OS keyring). Files are written atomically and
read defensively: a corrupt, oversized, foreign-owned or group/world-accessible file, a symlink or a FIFO is
ignored (a miss) and later replaced. The directory must be ours, as ssh and gpg require: see TokenCache.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

from vertex_env import errors
from vertex_env.core.token import Token
from vertex_env.errors import VertexEnvError
from vertex_env.system import files
from vertex_env.system.digest import sha256_hex
from vertex_env.system.files import cache_dir, ensure_private_dir

__all__ = [
    "TokenCache",
    "ensure_private_dir",
    "key_digest",
    "valid_token",
]

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any, TypeGuard

CACHE_VERSION = 1
#: How long a process that misses waits for another one's mint (longer than any mint's own deadline).
LOCK_TIMEOUT = 120.0


def key_digest(key: str) -> str:
    return sha256_hex(key.encode())[:40]


class TokenCache:
    """Token files in one private directory. A directory another user could control (a symlink, not ours,
    writable by others) is never read (every read misses) and never written (UnsafeDirectoryError, an OSError:
    TokenSource then goes on without the cache and says so once)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or cache_dir()

    def path_for(self, key: str) -> Path:
        return self.directory / f"token-{key_digest(key)}.json"

    def safe(self) -> bool:
        """Whether the directory exists and is private (the check before every read)."""
        try:
            files.check_private_dir(self.directory)
        except OSError:
            return False
        return True

    def _read_json(self, path: Path) -> Any:
        """The JSON of a private file of ours, else None (never blocks, never follows a symlink, size-capped)."""
        if not self.safe():
            return None
        data = files.read_private(path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return None

    def read(self, key: str) -> Token | None:
        """The stored token for `key` (`from_cache` set), or None: a miss."""
        return _parse(self._read_json(self.path_for(key)), key)

    def _write_json(self, path: Path, payload: dict[str, Any]) -> None:
        ensure_private_dir(self.directory)
        files.sweep_temp(self.directory, legacy=True)
        files.atomic_write(path, json.dumps(payload).encode(), mode=0o600)

    def write(self, key: str, token: Token) -> Path:
        if not valid_token(token.value):
            raise errors.TransientError(NOT_A_TOKEN)
        path = self.path_for(key)
        self._write_json(path, {"version": CACHE_VERSION, "key": key_digest(key), **token.stored()})
        return path

    def failure_path(self, key: str) -> Path:
        return self.directory / f"token-{key_digest(key)}.failed.json"

    def write_failure(self, key: str, err: VertexEnvError) -> None:
        """Record that a mint failed, and its class: processes waiting on the lock fail the same way. No text
        is stored: a message read back from a file is never shown (another user could have written it)."""
        with contextlib.suppress(OSError):
            self._write_json(
                self.failure_path(key), {"at": time.time(), "class": type(err).__name__}
            )

    def read_failure(self, key: str, *, since: float) -> VertexEnvError | None:
        """The error of a mint that failed after `since` (while the caller waited for the lock), if any: its
        class from the record, its message from our own code."""
        data = self._read_json(self.failure_path(key))
        if not isinstance(data, dict):
            return None
        at = data.get("at")
        if not _is_number(at) or at < since:
            return None
        cls = getattr(errors, str(data.get("class")), None)
        if not (isinstance(cls, type) and issubclass(cls, VertexEnvError)):
            cls = VertexEnvError
        doc = (cls.__doc__ or "").strip().splitlines()
        reason = doc[0].rstrip(".") if doc else "it failed"
        failure: VertexEnvError = cls(
            f"another vertex-env process could not get a token moments ago: {reason}",
            hint="run the command again to see the full error",
        )
        return failure

    def refusal_path(self, key: str) -> Path:
        return self.directory / f"token-{key_digest(key)}.refusal.json"

    def write_refusal(self, key: str, status: int, row: str) -> None:
        """Record that Google refused a request made with this key's tokens (`row`: the table of refusals' key),
        for `status` to point at `check`. No text from Google is stored: only what is read back and checked."""
        with contextlib.suppress(OSError):
            self._write_json(
                self.refusal_path(key), {"at": time.time(), "status": int(status), "row": row}
            )

    def read_refusal(self, key: str) -> tuple[float, int, str] | None:
        """(when, HTTP status, table row) of the last recorded refusal, if the record is well-formed."""
        data = self._read_json(self.refusal_path(key))
        if not isinstance(data, dict):
            return None
        at, status, row = data.get("at"), data.get("status"), data.get("row")
        if not (_is_number(at) and isinstance(status, int) and isinstance(row, str)):
            return None
        from vertex_env.core.refusal_table import row_keys  # not on the warm path

        return (float(at), status, row) if row in row_keys() else None

    def forget_refusal(self, key: str) -> None:
        with contextlib.suppress(OSError):
            if self.safe():
                self.refusal_path(key).unlink()

    def remove(self, key: str, only_value: str | None = None) -> bool:
        """Forget the token for `key` (only if it is still `only_value`, when given)."""
        if only_value is not None:
            current = self.read(key)
            if current is None or current.value != only_value:
                return False
        if not self.safe():
            return False
        with contextlib.suppress(FileNotFoundError):
            self.path_for(key).unlink()
            return True
        return False

    def clear(self) -> int:
        """Remove every cached token (and our stale temp files); refuses a directory that is not private."""
        try:
            files.check_private_dir(self.directory)
        except FileNotFoundError:
            return 0
        except files.UnsafeDirectoryError as err:
            raise errors.SinkError(
                f"refusing to touch the token cache {self.directory}: {err.strerror}"
            ) from None
        removed = 0
        for path in self.directory.glob("token-*.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        files.sweep_temp(self.directory, older_than=0, legacy=True)
        return removed

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive lock for minting `key`: concurrent processes that miss wait here and then re-read."""
        ensure_private_dir(self.directory)
        with files.locked(
            self.directory / f"token-{key_digest(key)}.lock", LOCK_TIMEOUT, what="the token cache"
        ):
            yield


NOT_A_TOKEN = (
    "the token endpoint answered with something that is not an access token "
    "(empty, or holding blanks, control or non-ASCII characters)"
)


def valid_token(value: object) -> bool:
    """Whether `value` can be an access token: a non-empty string of printable ASCII (no CR, LF, NUL)."""
    # Printable ASCII without blanks, 0x21-0x7e (Google's are `ya29.` and base64url); no regex compiled at import.
    return (
        isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and value != ""
    )


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse(data: Any, key: str) -> Token | None:
    """A cache entry, or None for anything but exactly what `write` stores (a bad entry is a miss)."""
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or data.get("key") != key_digest(key)
    ):
        return None
    value, expires_at, minted_at = data.get("value"), data.get("expires_at"), data.get("minted_at")
    principal, credential_type = data.get("principal"), data.get("credential_type", "unknown")
    if not (valid_token(value) and _is_number(expires_at) and _is_number(minted_at)):
        return None
    if not (principal is None or isinstance(principal, str)) or not isinstance(
        credential_type, str
    ):
        return None
    assert isinstance(value, str)
    return Token(
        value=value,
        expires_at=float(expires_at),
        minted_at=float(minted_at),
        principal=principal,
        credential_type=credential_type,
        from_cache=True,
    )
