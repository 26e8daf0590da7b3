"""Expiry, margins and rotation on an injected clock: the token source and the held token read the time through
`clock`, so these tests move an hour in a microsecond instead of sleeping (a few real-time end-to-end tests,
marked slow, stay elsewhere: test_proxy, test_api, test_daemon)."""

from __future__ import annotations

import time
from pathlib import Path

from vertex_env.core.cache import TokenCache
from vertex_env.core.source import HeldToken, TokenSource
from vertex_env.core.token import Token
from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve

HOUR = 3600.0


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _value(token: Token | None) -> str | None:
    return None if token is None else token.value


def test_a_cached_token_is_served_until_its_margin_and_not_after(isolated_machine: Path) -> None:
    start = 1_000_000.0
    clock = FakeClock(start)
    source = TokenSource(
        resolve().profile, cache=TokenCache(isolated_machine / "cache"), clock=clock
    )
    token = Token("ya29.fake-" + "x" * 20, start + HOUR, start, None, "authorized_user")
    source.cache.write(source.cache_key, token)
    assert _value(source.cached(min_ttl=300)) == token.value
    clock.now = start + HOUR - 301  # 301 s left
    assert _value(source.cached(min_ttl=300)) == token.value
    clock.now = start + HOUR - 300  # exactly the margin: no longer served
    assert source.cached(min_ttl=300) is None
    clock.now = start + HOUR - 1801  # a 45-minute margin is capped at half the token's life
    assert _value(source.cached(min_ttl=2700)) == token.value
    clock.now = start + HOUR - 1800
    assert source.cached(min_ttl=2700) is None


def test_a_held_token_rotates_when_the_clock_reaches_its_margin(emu: EmulatorServer) -> None:
    source = resolve().token_source
    clock = FakeClock(time.time())
    source.clock = clock
    held = HeldToken(source, min_ttl=300)
    first = held.get()
    assert emu.admin.stats()["tokens_issued"] == 1
    clock.now += 60  # a minute later: the same token, no mint
    assert held.get().value == first.value
    assert emu.admin.stats()["tokens_issued"] == 1
    clock.now += HOUR - 60 - 299  # 299 s left on the fake clock: inside the margin
    second = held.get()
    assert not second.from_cache  # minted for this call, not the held or cached copy
    assert emu.admin.stats()["tokens_issued"] == 2
    assert held.get().value == second.value
    assert emu.admin.stats()["tokens_issued"] == 2
