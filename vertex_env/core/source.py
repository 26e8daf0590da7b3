"""The ONE path to a token: `TokenSource.get(min_ttl)` → cache hit, or one locked mint shared by every process."""

from __future__ import annotations

import os
import time
from _thread import allocate_lock as _new_lock  # threading.Lock, without importing threading
from collections.abc import Callable, Mapping

from vertex_env.config.profile import Profile
from vertex_env.config.routing import EMULATOR_HOST_ENV
from vertex_env.core.cache import NOT_A_TOKEN, TokenCache, valid_token
from vertex_env.core.credentials import CredentialSource, locate
from vertex_env.core.token import Token as Token  # the one token record, re-exported
from vertex_env.errors import LockTimeoutError, TransientError, VertexEnvError
from vertex_env.system.files import cache_dir

TYPE_CHECKING = False  # typing stays off the warm `export` path (vertex_env.cli.entry)
if TYPE_CHECKING:
    import asyncio
    import logging
    import weakref

#: The share of a token's life a `prefer`red margin may reach (TokenSource.get): a token is replaced once a
#: quarter of its life is gone, never sooner (so a short-lived token is still reused).
PREFERRED_SHARE = 0.75
#: How often a holder asks again for a token while the source can only hand back one short of the margin.
SHORT_RECHECK = 5.0
#: The status a server answers for a token it no longer accepts: the one answer that is retried, once.
REFUSED_STATUS = 401


_thread_lock = _new_lock()


def _wall_clock() -> float:
    return time.time()


def _log() -> logging.Logger:
    """This module's logger, `logging.getLogger(__name__)`: imported on the first warning, not on the warm
    path (`token` and `export` served from the cache)."""
    import logging

    return logging.getLogger(__name__)


def _reset_lock_after_fork() -> None:
    global _thread_lock
    _thread_lock = _new_lock()


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
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.profile = profile
        #: The time every freshness decision reads (seconds since the epoch, as `Token.expires_at`): a test
        #: passes a fake one to move an hour in a microsecond, as the daemon's `clock`. Default: time.time,
        #: looked up at each call.
        self.clock = _wall_clock if clock is None else clock
        self.environ = dict(os.environ if environ is None else environ)
        self.use_cache = use_cache
        self._source: CredentialSource | None = None
        self.cache_warning: str | None = None
        self.short_warning: str | None = None
        self._short_warned: str | None = None
        self._last: Token | None = (
            None  # the last token this source obtained (its issue time, see mint)
        )
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
        return entry if entry.fresh(ttl, self.clock() if now is None else now) else None

    def get(self, min_ttl: float | None = None, *, prefer: float | None = None) -> Token:
        """A token with more than the margin left (`Token.fresh`: `min_ttl`, default the profile's, at most half
        the token's life): from the cache, else minted once. A source that hands back a token it already
        issued (a metadata server refreshes its own token only when minutes remain) may give less: that token
        is served, and `short_warning` says so (logged once per token).

        `prefer`: replace a cached token with less than that left too (at most PREFERRED_SHARE of its life:
        `run` hands its child a token with most of its life left), without a warning when the source cannot
        do better: only `min_ttl` is a promise."""
        ttl = self.profile.min_ttl if min_ttl is None else min_ttl

        def usable() -> Token | None:
            hit = self.cached(ttl)
            if (
                hit is None
                or prefer is None
                or hit.fresh(prefer, self.clock(), share=PREFERRED_SHARE)
            ):
                return hit
            return None

        hit = usable()
        if hit is not None:
            return hit
        token = self._locked_mint(usable)
        if not token.from_cache:
            self._say_if_short(token, ttl)
        return token

    def _say_if_short(self, token: Token, min_ttl: float) -> None:
        """One warning line when the token just obtained cannot meet the margin (the source gave it back
        part-used and issues no fresher one yet): never serve less than was asked without saying so."""
        now = self.clock()
        if token.fresh(min_ttl, now) or self._short_warned == token.value:
            return
        left, margin = token.remaining(now), token.margin(min_ttl)
        self._short_warned = token.value
        source = self.source
        who = (
            "the metadata server" if source.kind == "metadata" else f"the source of {source.label}"
        )
        self.short_warning = (
            f"vertex-env: warning: {who} handed back a token with {left:.0f} s left, less "
            f"than the {margin:.0f} s asked (min TTL {min_ttl:g} s, at most half of its "
            f"{token.lifetime:.0f} s life); it issues no fresher one before its own "
            "refresh, so this one is served"
        )
        # The message is the whole line (speaker None): with no logging configured, Python's last-resort
        # handler prints it as it is.
        _log().warning(self.short_warning, extra={"speaker": None})

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
        _log().warning(self.cache_warning, extra={"speaker": None})

    def mint(self) -> Token:
        """Always ask Google; store the result for everyone.

        A token's `minted_at` is when it was issued, as far as anyone here knows: the credential's answer
        (`credentials.mint`), or — for a token the source hands back again, as a metadata server does with its
        cached one — the issue time recorded when it was first obtained, so its life is not mistaken for
        what it has left (which would halve the margin it is served with)."""
        from vertex_env.core.credentials import mint

        token = mint(self.profile, self.source, self.environ)
        if not valid_token(
            token.value
        ):  # a CR or LF would split a header line; never cache or serve it
            raise TransientError(NOT_A_TOKEN)
        for seen in (self._last, self.cache.read(self.cache_key) if self.use_cache else None):
            if seen is not None and seen.value == token.value and seen.minted_at < token.minted_at:
                token = token.with_minted_at(seen.minted_at)
        if self.use_cache:
            try:
                self.cache.write(self.cache_key, token)
            except OSError as err:
                self._without_cache(err)
        self._last = token
        return token

    def invalidate(self, value: str | None = None) -> None:
        """Drop the cached token (only if it is still `value`, when given): Google refused it."""
        self.cache.remove(self.cache_key, only_value=value)

    def note_refusal(self, status: int, row: str) -> None:
        """Vertex refused a request made with this source's token (`row`: the table of refusals' key); `status`
        shows it and points to `check`. Never fails the caller."""
        if self.use_cache:
            self.cache.write_refusal(self.cache_key, status, row)

    def last_refusal(self) -> tuple[float, int, str] | None:
        """(when, HTTP status, table row) of the last refusal recorded for this source, if any."""
        return self.cache.read_refusal(self.cache_key) if self.use_cache else None

    def forget_refusal(self) -> None:
        """Everything passed (`check`): the recorded refusal is history."""
        if self.use_cache:
            self.cache.forget_refusal(self.cache_key)


# -- the consumer side: one token held in memory, and the one 401 retry -----------------------------------

# Every live HeldToken, so a forked child can give each one fresh locks (see _reset_held_after_fork).
# (made at the first HeldToken: weakref stays off the warm path)
_HELD: weakref.WeakSet[HeldToken] | None = None


class HeldToken:
    """A token held in memory for one consumer (the Python API's providers, the proxy, the httpx auth).

    `get()` serves the held copy while it has more than the margin left (`Token.fresh`: `min_ttl`, at most half
    the token's life) and the shared cache entry it came from has not been replaced by another process (one
    `stat` per call: a token any process wrote — after a 401, a daemon refresh — reaches every holder); else it
    asks `TokenSource.get`, which mints at most once for every thread and process of the user. `aget()` does the
    same without blocking an event loop (the fetch runs in the loop's default executor; concurrent awaiters in
    one loop share it). `replace(refused)` is the answer to a server's 401. Thread-safe; after `os.fork()` the
    child starts with fresh locks and no held copy.
    """

    def __init__(
        self,
        source: TokenSource,
        min_ttl: float,
        *,
        on_fetch: Callable[[], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.source = source
        #: The time its freshness decisions read: the source's clock unless given.
        self.clock = source.clock if clock is None else clock
        self.min_ttl = float(min_ttl)
        self._on_fetch = on_fetch
        self._token: Token | None = None
        self._entry: str | None = None  # the cache file the held token was read from or written to
        self._stamp: tuple[int, int] | None = None  # that file's (inode, mtime) when it was read
        self._recheck_at = 0.0  # a token short of its margin is served until then (see fresh)
        self._lock = _new_lock()
        # One fetch in flight per event loop: concurrent awaiters in that loop share it.
        self._pending: dict[asyncio.AbstractEventLoop, asyncio.Future[Token]] = {}
        self._pending_lock = _new_lock()
        global _HELD
        if _HELD is None:
            import weakref

            _HELD = weakref.WeakSet()
        _HELD.add(self)

    def _entry_stamp(self) -> tuple[int, int] | None:
        if self._entry is None:
            return None
        try:
            st = os.stat(self._entry)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def fresh(self) -> Token | None:
        """The held token if it may be served as it is (no lock, no I/O but one `stat`). A token the source
        handed back with less than the margin left (TokenSource.get warned) is served until the next recheck,
        not refetched for every call."""
        token = self._token  # one attribute read: no lock needed to look
        if token is None:
            return None
        now = self.clock()
        if not token.fresh(self.min_ttl, now):
            return token if now < self._recheck_at else None
        if self._entry is not None:
            stamp = self._entry_stamp()
            # A removed entry changes nothing (ours is still good); a replaced one may hold a newer token.
            if stamp is not None and stamp != self._stamp:
                return None
        return token

    def _fetch(self) -> Token:
        """Under self._lock: the token core's answer, kept. The entry is stamped before it is read, so a
        write racing the read shows up as a change at the next call rather than being missed."""
        source = self.source
        self._entry = str(source.cache.path_for(source.cache_key)) if source.use_cache else None
        self._stamp = self._entry_stamp()
        token = source.get(self.min_ttl)
        # Short of the margin already: the source has no fresher one yet; ask again after a little while.
        now = self.clock()
        self._recheck_at = (
            0.0
            if token.fresh(self.min_ttl, now)
            else now + min(SHORT_RECHECK, token.remaining(now) / 2)
        )
        self._token = token
        if self._on_fetch is not None:
            self._on_fetch()
        return token

    def get(self) -> Token:
        """A token with more than the margin left; may block while this thread fetches or mints one."""
        token = self.fresh()
        if token is not None:
            return token
        with self._lock:
            return self.fresh() or self._fetch()

    async def aget(self) -> Token:
        """`get()` without blocking the running event loop."""
        token = self.fresh()
        if token is not None:
            return token
        import asyncio

        loop = asyncio.get_running_loop()
        with self._pending_lock:
            future = self._pending.get(loop)
            if future is None:
                future = loop.run_in_executor(None, self.get)
                self._pending[loop] = future
                future.add_done_callback(lambda done: self._forget(loop, done))
        # shield: a cancelled caller must not cancel the fetch the others are waiting for
        return await asyncio.shield(future)

    def _forget(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[Token]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved here, so a fetch nobody awaited any more is not logged as lost
        with self._pending_lock:
            if self._pending.get(loop) is done:
                del self._pending[loop]

    def invalidate(self, refused: str | None = None) -> None:
        """Forget the token (only if it is still `refused`, when given), here and in the shared cache."""
        with self._lock:
            current = self._token
            if current is not None and (refused is None or current.value == refused):
                self._token = None
            self.source.invalidate(refused)

    def replace(self, refused: str) -> Token:
        """A server refused `refused`: a token other than it — the one a concurrent caller already got in its
        place, or one minted now (the refused one is dropped here and from the shared cache first)."""
        with self._lock:
            current = self._token
            if current is not None and current.value != refused and self.fresh() is current:
                return current
            self._token = None
            self.source.invalidate(refused)
            token = self._fetch()
            if token.value == refused:  # pragma: no cover - the cache entry was removed just above
                token = self._token = self.source.mint()
            return token

    async def areplace(self, refused: str) -> Token:
        """`replace()` without blocking the running event loop."""
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.replace, refused)

    def authorize(self) -> Attempt:
        """The token for one request, with the one-retry rule (see `Attempt`)."""
        return Attempt(self, self.get())

    async def aauthorize(self) -> Attempt:
        return Attempt(self, await self.aget())

    def _reset_after_fork(self) -> None:
        self._lock = _new_lock()
        self._pending_lock = _new_lock()
        self._pending = {}
        self._token = None  # re-read from the shared cache; never trust state copied mid-update

    def __repr__(self) -> str:  # never show the token
        return f"HeldToken(min_ttl={self.min_ttl:g}, held={self._token is not None})"


class Attempt:
    """One request authorized with a held token — the ONE rule for a refused token, used by every consumer:

        attempt = held.authorize()                  # or: await held.aauthorize()
        answer = send(attempt.value)
        if attempt.refused(status_of(answer)):       # a 401, and no retry yet
            answer = send(attempt.replace().value)   # or: (await attempt.areplace()).value
            attempt.settle(status_of(answer))        # a 401 again: dropped from the shared cache too

    Only a 401 is retried, once, with a replacement token; a second 401 is the server's answer.
    """

    __slots__ = ("held", "retried", "token")

    def __init__(self, held: HeldToken, token: Token) -> None:
        self.held = held
        self.token = token
        self.retried = False

    @property
    def value(self) -> str:
        return self.token.value

    def refused(self, status: int) -> bool:
        """True when the answer `status` calls for one resend with a replacement token."""
        return status == REFUSED_STATUS and not self.retried

    def replace(self) -> Token:
        self.retried = True
        self.token = self.held.replace(self.token.value)
        return self.token

    async def areplace(self) -> Token:
        self.retried = True
        self.token = await self.held.areplace(self.token.value)
        return self.token

    def settle(self, status: int) -> None:
        """The answer to the resent request: a 401 again means the server refuses this source's tokens even
        fresh (a revoked login, a skewed clock). The token is dropped from the shared cache too, so the next
        `export` or `run` mints (and meets the real error) instead of handing it out."""
        if status == REFUSED_STATUS and self.retried:
            self.held.invalidate(self.token.value)

    async def asettle(self, status: int) -> None:
        """`settle()` without blocking the running event loop."""
        if status == REFUSED_STATUS and self.retried:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, self.settle, status)

    def __repr__(self) -> str:  # never show the token
        return f"Attempt({self.token!r}, retried={self.retried})"


def _reset_held_after_fork() -> None:
    for held in list(_HELD or ()):
        held._reset_after_fork()


os.register_at_fork(after_in_child=_reset_held_after_fork)
