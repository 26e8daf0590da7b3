"""The ONE path to a token: `TokenSource.get(min_ttl)` → cache hit, or one locked mint shared by every process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vertex_env.cache import CachedToken, TokenCache, cache_dir
from vertex_env.config import EMULATOR_HOST_ENV, Profile
from vertex_env.credentials import CredentialSource, locate
from vertex_env.errors import LockTimeoutError, VertexEnvError


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float
    minted_at: float
    principal: str | None
    credential_type: str
    from_cache: bool

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def __repr__(self) -> str:  # never show the token
        return f"Token(expires_at={self.expires_at:.0f}, principal={self.principal!r}, from_cache={self.from_cache})"


def margin_for(token: CachedToken | Token, min_ttl: float) -> float:
    """The life a served token must have left: min_ttl, but at most half the token's whole life, so a
    short-lived token (an emulator issuing 60 s tokens, a 10-minute impersonation) is still reused."""
    lifetime = max(token.expires_at - token.minted_at, 0.0)
    return min(float(min_ttl), lifetime / 2)


_thread_lock = threading.Lock()


def _reset_lock_after_fork() -> None:
    global _thread_lock
    _thread_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


class TokenSource:
    """Fresh tokens for one profile, shared through the cache by every process of the user."""

    def __init__(
        self,
        profile: Profile,
        *,
        environ: Mapping[str, str] | None = None,
        use_cache: bool = True,
        cache: TokenCache | None = None,
    ) -> None:
        self.profile = profile
        self.environ = dict(os.environ if environ is None else environ)
        self.use_cache = use_cache
        self._source: CredentialSource | None = None
        self.cache_warning: str | None = None
        self.cache = cache or TokenCache(cache_dir(self.environ))

    @property
    def source(self) -> CredentialSource:
        if self._source is None:
            self._source = locate(self.profile, self.environ)
        return self._source

    @property
    def cache_key(self) -> str:
        p = self.profile
        parts = [
            self.source.identity,
            " ".join(sorted(p.scopes)),
            f"impersonate={p.impersonate or ''}:{p.lifetime if p.impersonate else ''}",
            f"quota={p.quota_project or ''}",
            f"emulator={self.environ.get(EMULATOR_HOST_ENV, '')}",
        ]
        return "|".join(parts)

    def cached(self, min_ttl: float | None = None, now: float | None = None) -> Token | None:
        """The cached token if it has more than the margin left; never mints, never imports google-auth."""
        if not self.use_cache:
            return None
        entry = self.cache.read(self.cache_key)
        if entry is None:
            return None
        ttl = self.profile.min_ttl if min_ttl is None else min_ttl
        now = time.time() if now is None else now
        if entry.expires_at - now <= margin_for(entry, ttl):
            return None
        return _token(entry, from_cache=True)

    def get(self, min_ttl: float | None = None) -> Token:
        """A token with at least `min_ttl` left (default: the profile's): from the cache, else minted once."""
        hit = self.cached(min_ttl)
        if hit is not None:
            return hit
        return self._locked_mint(lambda: self.cached(min_ttl))

    def refresh(self, due: Callable[[Token], bool]) -> Token:
        """The cached token unless `due(token)` says to replace it, then a newly minted one (the daemon's
        rule: it refreshes earlier than `get()` would, under the same lock, so a token another process just
        minted is reused)."""

        def reusable() -> Token | None:
            hit = self.cached(min_ttl=0)
            return hit if hit is not None and not due(hit) else None

        return self._locked_mint(reusable)

    def _locked_mint(self, reusable: Callable[[], Token | None]) -> Token:
        """Under the cache lock: what another process just minted, the error its mint just met while we
        waited (so N waiters do not each wait out their own timeouts), or one mint of our own."""
        if not self.use_cache:
            return self.mint()
        waiting_since = time.time()
        try:
            lock = self.cache.lock(self.cache_key)
            lock.__enter__()
        except (OSError, LockTimeoutError) as err:
            self._without_cache(err)
            return self.mint()
        try:
            with _thread_lock:
                hit = reusable()
                if hit is not None:
                    return hit
                failure = self.cache.read_failure(self.cache_key, since=waiting_since)
                if failure is not None:
                    raise failure
                try:
                    return self.mint()
                except VertexEnvError as err:
                    self.cache.write_failure(self.cache_key, err)
                    raise
        finally:
            lock.__exit__(None, None, None)

    def _without_cache(self, err: OSError | VertexEnvError) -> None:
        """The cache directory is unusable (read-only HOME, full tmpfs): go on without it. The warning is kept
        in `cache_warning` and logged once (shown on stderr unless the caller configured logging)."""
        self.use_cache = False
        reason = err.strerror or err if isinstance(err, OSError) else err
        self.cache_warning = (
            f"vertex-env: warning: token cache {self.cache.directory} is unusable "
            f"({reason}); going on without it"
        )
        import logging  # not on the warm path; with no logging configured Python prints it on stderr

        logging.getLogger("vertex_env").warning(self.cache_warning)

    def mint(self) -> Token:
        """Always ask Google; store the result for everyone."""
        from vertex_env.credentials import mint

        minted_at = time.time()
        minted = mint(self.profile, self.source, self.environ)
        entry = CachedToken(
            value=minted.value,
            expires_at=minted.expires_at,
            minted_at=minted_at,
            principal=minted.principal,
            credential_type=minted.credential_type,
        )
        if self.use_cache:
            try:
                self.cache.write(self.cache_key, entry)
            except OSError as err:
                self._without_cache(err)
        return _token(entry, from_cache=False)

    def invalidate(self, value: str | None = None) -> None:
        """Drop the cached token (only if it is still `value`, when given): Google refused it."""
        self.cache.remove(self.cache_key, only_value=value)


def _token(entry: CachedToken, *, from_cache: bool) -> Token:
    return Token(
        value=entry.value,
        expires_at=entry.expires_at,
        minted_at=entry.minted_at,
        principal=entry.principal,
        credential_type=entry.credential_type,
        from_cache=from_cache,
    )
