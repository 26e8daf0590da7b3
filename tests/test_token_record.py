"""One token record (issue 13): what credentials mint, what the cache stores and what TokenSource serves are one
immutable type whose repr never shows the token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import start_emulator

from vertex_env.core import credentials
from vertex_env.core.token import Token
from vertex_env.emulator import EmulatorServer
from vertex_env.environment import resolve

SA = "target-sa@test-project.iam.gserviceaccount.com"


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EmulatorServer]:
    server = start_emulator(monkeypatch, tmp_path)
    yield server
    server.stop()


def test_minted_cached_and_served_tokens_are_one_type(emu: EmulatorServer) -> None:
    source = resolve().token_source
    minted = credentials.mint(source.profile, source.source, source.environ)
    served = source.get()
    stored = source.cache.read(source.cache_key)
    again = source.get()
    assert {type(t) for t in (minted, served, stored, again)} == {Token}
    assert served.from_cache is False and again.from_cache is True
    assert stored == again and stored.stored() == served.stored()
    assert minted.minted_at <= minted.expires_at - 3000  # an emulator token lives an hour


def test_a_token_is_immutable_and_its_repr_hides_the_value() -> None:
    token = Token("ya29.secret", 2000.0, 1000.0, "me@example.com", "authorized_user")
    with pytest.raises(AttributeError):
        token.value = "ya29.other"  # type: ignore[misc,unused-ignore]
    with pytest.raises(AttributeError):
        del token.expires_at
    assert "ya29" not in repr(token) and "me@example.com" in repr(token)
    assert token == Token("ya29.secret", 2000.0, 1000.0, "me@example.com", "authorized_user")
    assert token != token.with_minted_at(1500.0)
    assert token.remaining(now=1900.0) == 100.0


def test_an_impersonated_token_was_issued_its_requested_lifetime_before_its_expiry(
    emu: EmulatorServer,
) -> None:
    """IAM generateAccessToken answers an expireTime (whole seconds, Google's clock) for exactly the lifetime
    asked: the token was issued at expiry - lifetime, which can be up to a second before we asked."""
    source = resolve(impersonate=SA, lifetime="30m").token_source
    before = time.time()
    minted = credentials.mint(source.profile, source.source, source.environ)
    after = time.time()
    assert minted.principal == SA
    assert minted.expires_at == int(minted.expires_at)  # IAM's whole-second expireTime
    issued = minted.expires_at - 1800
    # Expiry minus lifetime; or, when a second boundary fell between our asking and IAM's reading of its clock
    # (the whole-second expiry minus the lifetime then lies just after we asked: 1 run in a few hundred),
    # when we asked, which is earlier.
    assert minted.minted_at == issued or before <= minted.minted_at < issued
    assert before - 1 < minted.minted_at <= after
    assert emu.state.stats()["requests"]["iam"] == 1


def test_an_impersonated_token_from_a_clock_ahead_of_ours_was_issued_no_later_than_we_asked(
    emu: EmulatorServer,
) -> None:
    """Google's clock 2 minutes ahead: expiry - lifetime lies in our future, so the issue time is when we asked."""
    emu.admin.advance_clock(120)
    source = resolve(impersonate=SA, lifetime="30m").token_source
    before = time.time()
    minted = credentials.mint(source.profile, source.source, source.environ)
    after = time.time()
    assert minted.expires_at - 1800 >= before + 119
    assert before <= minted.minted_at <= after
