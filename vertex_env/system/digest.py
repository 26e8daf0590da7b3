"""SHA-256 for cache keys and credential identities, without loading OpenSSL on the warm path.

`hashlib` binds OpenSSL (`_hashlib`) at import: about 3 ms of every warm `export` and `token`, which hash the
credential file and the cache key. CPython's own built-in implementation (`_sha2` from 3.12, `_sha256`
before) gives the same digest for a fraction of that; a build without it falls back to hashlib.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _sha256_constructor() -> Callable[[bytes], Any]:
    for name in ("_sha2", "_sha256"):
        try:
            constructor: Callable[[bytes], Any] = __import__(name).sha256
        except (ImportError, AttributeError):
            continue
        return constructor
    from hashlib import sha256

    return sha256


_sha256 = _sha256_constructor()


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of `data` (as hashlib.sha256(data).hexdigest())."""
    return str(_sha256(data).hexdigest())
