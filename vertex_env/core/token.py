"""The one token record: an access token, when it was issued and expires, whom it acts as, where it was served from.

`credentials.mint` makes one, `cache.TokenCache` stores and reads it back, `tokens.TokenSource` serves it and
`tokens.HeldToken` holds it: one type all the way, so a field added here (or a rule such as `remaining`) holds
everywhere. It imports nothing but `time`: it sits under every other module of the token core.
"""

from __future__ import annotations

import time

from vertex_env.system.record import Record

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    from typing import Any

#: The fields stored in the cache file (everything but `from_cache`, which says how it was served).
STORED = ("value", "expires_at", "minted_at", "principal", "credential_type")


#: The share of a token's life that caps the margin it is served with (see `Token.margin`).
HALF_LIFE = 0.5


class Token(Record):
    """An access token. Immutable; its repr never shows the value.

    - `expires_at`: seconds since the epoch, as the credential's answer says.
    - `minted_at`: when it was issued, as far as anyone here knows — see `credentials.mint` (the request time
      for a token endpoint, expiry minus lifetime for IAM) and `TokenSource.mint` (a token a metadata server
      hands back again keeps the time it was first obtained). `lifetime` is `expires_at - minted_at`, which
      caps the margin it is served with (`margin`, `fresh`: the one freshness rule).
    - `principal`: the account it acts as, when known; `credential_type`: the ADC type (for `status`).
    - `from_cache`: True when it was read from the shared cache rather than minted by this process.
    """

    __slots__ = (*STORED, "from_cache")

    value: str
    expires_at: float
    minted_at: float
    principal: str | None
    credential_type: str
    from_cache: bool

    def __init__(
        self,
        value: str,
        expires_at: float,
        minted_at: float,
        principal: str | None,
        credential_type: str,
        from_cache: bool = False,
    ) -> None:
        self._set(
            value=value,
            expires_at=expires_at,
            minted_at=minted_at,
            principal=principal,
            credential_type=credential_type,
            from_cache=from_cache,
        )

    def remaining(self, now: float | None = None) -> float:
        """Seconds of life left (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)

    @property
    def lifetime(self) -> float:
        """Its whole life, issue to expiry (never negative)."""
        return max(self.expires_at - self.minted_at, 0.0)

    def margin(self, min_ttl: float, share: float = HALF_LIFE) -> float:
        """The life it must have left to be served: `min_ttl`, but at most `share` of its whole life (half
        unless said), so that a short-lived token (an emulator issuing 60 s tokens, a 10-minute
        impersonation) is still reused."""
        return min(float(min_ttl), self.lifetime * share)

    def fresh(self, min_ttl: float, now: float | None = None, *, share: float = HALF_LIFE) -> bool:
        """The one freshness rule: more than its `margin(min_ttl, share)` left at `now` (default: the time)."""
        return self.remaining(now) > self.margin(min_ttl, share)

    def stored(self) -> dict[str, Any]:
        """The fields the cache file holds."""
        return {name: getattr(self, name) for name in STORED}

    def with_minted_at(self, minted_at: float) -> Token:
        return Token(
            self.value,
            self.expires_at,
            minted_at,
            self.principal,
            self.credential_type,
            self.from_cache,
        )

    def __repr__(self) -> str:  # never show the token
        return (
            f"Token(expires_at={self.expires_at:.0f}, minted_at={self.minted_at:.0f}, "
            f"principal={self.principal!r}, credential_type={self.credential_type!r}, "
            f"from_cache={self.from_cache})"
        )
