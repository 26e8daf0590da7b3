"""A source that hands back a token it already issued (a metadata server's cached token, as GCE's): the token's
life is kept from when it was first obtained, so the margin is not halved in silence; when the source cannot give
a token with the margin left, it is served with one warning line; the daemon does not spin on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import start_emulator

from vertex_env.core.source import HeldToken, Token
from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve
from vertex_env.sinks.daemon import Daemon

LIFE = 8  # seconds the emulator's tokens live; its metadata server refreshes its own with 1 s left


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EmulatorServer]:
    """ADC from the emulator's metadata server (reached through the emulator routing, as google-auth keeps
    GCE_METADATA_HOST from its import), which caches its token like a real one."""
    emu = start_emulator(monkeypatch, tmp_path, expires_in=LIFE)
    emu.admin.configure(metadata_refresh_before=1)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.delenv("NO_GCE_CHECK", raising=False)
    monkeypatch.setenv("VERTEX_ENV_MIN_TTL", "300")
    yield emu
    emu.stop()


def _until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


@pytest.mark.slow
def test_a_token_handed_back_again_keeps_its_life_and_is_served_with_one_warning(
    metadata: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    source = resolve().token_source
    first = source.get()
    assert source.source.kind == "metadata" and not first.from_cache
    assert first.margin(300) == pytest.approx(LIFE / 2, abs=0.5)
    _until(first.minted_at + LIFE / 2 + 0.5)  # inside the margin: the cache no longer serves it
    with caplog.at_level(logging.WARNING, logger="vertex_env"):
        again = source.get()
        assert (
            source.get().value == again.value
        )  # asked again: still no second warning for this token
    assert again.value == first.value  # the metadata server handed back its cached token
    assert again.minted_at == first.minted_at  # its life counts from when it was first obtained
    assert again.margin(300) == pytest.approx(LIFE / 2, abs=0.5)  # not halved again
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("vertex_env")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("vertex-env: warning: the metadata server handed back a token with ")
    assert "less than the 4 s asked (min TTL 300 s" in lines[0]
    assert source.short_warning == lines[0] and first.value not in lines[0]


def test_a_fresh_token_from_the_metadata_server_is_served_without_a_warning(
    metadata: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vertex_env"):
        token = resolve().token_source.get()
    assert token.remaining() > token.margin(300)
    assert [r for r in caplog.records if r.name.startswith("vertex_env")] == []


@pytest.mark.slow
def test_a_holder_does_not_ask_the_metadata_server_on_every_call_for_a_short_token(
    metadata: EmulatorServer,
) -> None:
    source = resolve().token_source
    held = HeldToken(source, 300)
    first = held.get()
    per_fetch = metadata.admin.stats()["requests"]["metadata"]  # google-auth's ping, then the token
    _until(first.minted_at + LIFE / 2 + 0.5)
    before = metadata.admin.stats()["requests"]["metadata"]
    tokens = {held.get().value for _ in range(50)}
    asked = metadata.admin.stats()["requests"]["metadata"] - before
    assert tokens == {first.value}
    assert asked == per_fetch  # one fetch, not fifty


class HandingBack:
    """A Keeper whose source hands back one token until it has 100 s left (a metadata server's refresh)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.min_ttl = 300.0
        self.label = "metadata"
        self.asked = 0
        self.token: Token | None = None

    def fresh_token(self, due: Callable[[Token], bool]) -> Token:
        now = self.clock()
        if self.token is not None and not due(self.token):
            return self.token
        self.asked += 1
        if self.token is None or self.token.expires_at - now < 100:
            self.token = Token(
                f"ya29.t{self.asked}", now + 3600, now, "sa", "compute_engine", False
            )
        return self.token

    def publish(self, token: Token) -> list[str]:
        return []


def test_the_daemon_waits_rather_than_spins_while_the_source_hands_back_a_due_token() -> None:
    now = [1_000_000.0]
    keeper = HandingBack(lambda: now[0])

    def sleep(seconds: float) -> None:
        now[0] += seconds

    daemon = Daemon(keeper, clock=lambda: now[0], sleep=sleep, rand=lambda: 0.5, log=lambda _: None)
    steps = 0
    while now[0] < 1_000_000.0 + 2 * 3600 and steps < 10_000:
        assert daemon.step() is None
        steps += 1
    # Due at ~3000 s, the source refreshes at 3500 s: the daemon asks every backoff cap (60 s), not in a loop.
    assert keeper.asked < 40, keeper.asked
    assert (
        keeper.token is not None and keeper.token.value != "ya29.t1"
    )  # it did pick up the new one
