"""The refresh schedule (vertex_env.core.schedule) and the daemon loop driven by it through 24 simulated hours."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vertex_env.core import schedule
from vertex_env.core.source import Token
from vertex_env.errors import TransientError
from vertex_env.sinks.daemon import Daemon

DAY = 86400.0


# --- the pure rule -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "margin", "expected"),
    [
        (3600, 300, 300),  # Google's hour, 5-minute margin: refresh at 10 minutes left
        (60, 30, 15),  # short-lived token: half of what lives outside the margin
        (600, 300, 150),
        (100, 0, 0),  # no margin asked: refresh at expiry
    ],
)
def test_lead_is_one_margin_at_most_half_the_life_outside_it(
    lifetime: float, margin: float, expected: float
) -> None:
    assert schedule.lead(lifetime, margin) == expected


def test_refresh_happens_before_the_deadline_within_the_jitter_window() -> None:
    earliest, latest = schedule.refresh_window(expires_at=10_000, lifetime=3600, margin=300)
    assert latest == 10_000 - 300 - 300
    assert earliest == latest - schedule.JITTER * 300
    for rand in (0.0, 0.5, 0.999):
        assert earliest <= schedule.refresh_at(10_000, 3600, 300, rand) <= latest


def test_a_token_is_due_from_the_earliest_edge_of_its_window() -> None:
    earliest, _ = schedule.refresh_window(10_000, 3600, 300)
    assert not schedule.due(earliest - 0.01, 10_000, 3600, 300)
    assert schedule.due(earliest, 10_000, 3600, 300)


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0), (1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (500, 60)]
)
def test_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert schedule.backoff(failures, cap=60) == expected


@pytest.mark.parametrize(("margin", "cap"), [(300, 60), (3000, 60), (40, 10), (1, 2), (0, 2)])
def test_backoff_cap_shrinks_with_the_margin(margin: float, cap: float) -> None:
    assert schedule.backoff_cap(margin) == cap


def test_next_refresh_without_a_token_is_now() -> None:
    assert schedule.next_refresh(50, None, 0, 300, 0, 0.3) == 50


def test_next_refresh_after_failures_never_exceeds_the_cap() -> None:
    for failures in range(1, 20):
        for rand in (0.0, 0.99):
            wait = schedule.next_refresh(0, 1000, 3600, 300, failures, rand)
            assert 0 < wait <= schedule.backoff_cap(300)


@given(
    now=st.floats(0, 1e6),
    lifetime=st.floats(1, 43200),
    min_ttl=st.floats(0, 3000),
    rand=st.floats(0, 1, exclude_max=True),
)
def test_a_freshly_minted_token_is_not_due_and_its_refresh_comes_before_the_deadline(
    now: float, lifetime: float, min_ttl: float, rand: float
) -> None:
    margin = min(min_ttl, lifetime / 2)
    expires_at = now + lifetime
    when = schedule.next_refresh(now, expires_at, lifetime, margin, 0, rand)
    assert now <= when <= expires_at - margin
    assert schedule.due(when, expires_at, lifetime, margin)
    if lifetime - margin > 1e-6 * expires_at:  # floats: a non-degenerate window
        assert not schedule.due(now, expires_at, lifetime, margin)


# --- 24 hours of rotations and outages ---------------------------------------------------------------------


@dataclass
class Endpoint:
    """Google's token endpoint in the simulation: down during the given [start, end) windows."""

    outages: list[tuple[float, float]]
    lifetimes: random.Random
    min_lifetime: float
    max_lifetime: float
    clock: SimClock
    mints: list[Token] = field(default_factory=list)

    def reachable(self, t: float) -> bool:
        return not any(start <= t < end for start, end in self.outages)

    def mint(self) -> Token:
        now = self.clock.now
        if not self.reachable(now):
            raise TransientError("Google's token service kept failing: 503")
        life = self.lifetimes.uniform(self.min_lifetime, self.max_lifetime)
        token = Token(f"tok{len(self.mints)}", now + life, now, "sim@example.com", "sim", False)
        self.mints.append(token)
        return token


@dataclass
class SimClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the daemon must never busy-loop"
        self.now += seconds


@dataclass
class SimKeeper:
    """The shared cache and the dotenv targets, as consumers see them: `held` over time."""

    endpoint: Endpoint
    min_ttl: float
    label: str = "sim"
    cached: Token | None = None
    published: list[tuple[float, Token]] = field(default_factory=list)

    def fresh_token(self, due: object) -> Token:
        assert callable(due)
        if self.cached is not None and not due(self.cached):
            return self.cached
        self.cached = self.endpoint.mint()
        return self.cached

    def publish(self, token: Token) -> list[str]:
        self.published.append((self.endpoint.clock.now, token))
        return [".env"]


def _covered(
    start: float, end: float, outages: list[tuple[float, float]], window: float
) -> float | None:
    """The first moment in [start, end) with no outage in the `window` seconds before it, else None."""
    t = start
    for o_start, o_end in sorted(outages):
        if t >= end:
            return None
        if o_start > t:
            return t  # a gap: at t the endpoint has been up since before t - window (or never down)
        t = max(t, o_end + window)
        if t >= end:
            return None
    return t if t < end else None


@settings(max_examples=60, deadline=None)
# A wake-up 0.47 ms before the window's edge (a 30 s sleep chunk left a tail under TOLERANCE) minted there.
@pytest.mark.slow
@example(seed=3042, min_ttl=0, lifetime_range=(120, 600), outages=[])
@given(
    seed=st.integers(0, 2**32 - 1),
    min_ttl=st.sampled_from([0, 30, 60, 300, 600]),
    lifetime_range=st.sampled_from([(120, 600), (600, 3600), (3000, 3600), (3600, 43200)]),
    outages=st.lists(st.tuples(st.floats(0, DAY), st.floats(1, 4 * 3600)), max_size=12),
)
def test_24_hours_consumers_never_see_a_stale_token_while_the_endpoint_is_up(
    seed: int,
    min_ttl: float,
    lifetime_range: tuple[float, float],
    outages: list[tuple[float, float]],
) -> None:
    """24 simulated hours of the real Daemon loop (fake clock and sleep) against an endpoint that issues
    tokens of random lifetimes and is down during random windows.

    Model: an attempt is instantaneous and succeeds iff the endpoint is up at that moment. Consumers read the
    token last published (the dotenv files; the cache holds the same token). A token T is *stale* at t when
    it has less than margin(T) = T.margin(min_ttl) left — exactly when TokenSource stops serving it;
    before the first success there is no token, which counts as stale.

    Invariant: whenever the token consumers read at t is stale, the endpoint was unreachable at some moment
    in [t - B, t], where B = backoff_cap(margin(T)) (B for min_ttl before the first token) is the longest
    the daemon ever waits between two attempts while failing. Equivalently: once the endpoint has been
    reachable for B seconds, consumers hold a token with at least the margin left. (Why it holds: the first
    attempt to replace T comes at or before T's deadline, and then at most B apart until one succeeds.)

    Also: a published token is replaced only by one that expires later, or once it is due itself (lifetimes
    are random here, so a new token may expire sooner than a due one); and no token is minted before the
    previous one's refresh window opened — give or take schedule.TOLERANCE (1 ms): the daemon's loop attempts
    when it is that close to its time rather than sleep the rest (Daemon.step), and schedule.due counts a
    token as due from that much before the edge, so a mint may precede the edge by at most that.
    """
    clock = SimClock()
    rng = random.Random(seed)
    windows = [(start, start + length) for start, length in outages]
    endpoint = Endpoint(windows, random.Random(seed + 1), *lifetime_range, clock)
    keeper = SimKeeper(endpoint, float(min_ttl))
    daemon = Daemon(keeper, clock=clock, sleep=clock.sleep, rand=rng.random, log=lambda _: None)
    while clock.now < DAY:
        assert daemon.step() is None

    published = keeper.published
    assert published, "an endpoint up for part of the day yields a token"
    times = [t for t, _ in published]
    for (_, earlier), (when, later) in itertools.pairwise(published):
        lifetime = earlier.expires_at - earlier.minted_at
        earlier_due = schedule.due(when, earlier.expires_at, lifetime, earlier.margin(min_ttl))
        assert later.expires_at >= earlier.expires_at or earlier_due, "replaced by a worse token"

    # no token before the first publication
    first_gap = _covered(0.0, times[0], windows, schedule.backoff_cap(min_ttl))
    assert first_gap is None, f"no token at t={first_gap} though the endpoint was up"
    for index, (since, token) in enumerate(published):
        until = times[index + 1] if index + 1 < len(times) else DAY
        margin = token.margin(min_ttl)
        stale_from = max(since, token.expires_at - margin)
        if stale_from >= until:
            continue
        gap = _covered(stale_from, until, windows, schedule.backoff_cap(margin))
        assert gap is None, (
            f"token {token.value} stale at t={gap:.1f} (expires {token.expires_at:.1f}, margin "
            f"{margin:.1f}) with the endpoint up since t-{schedule.backoff_cap(margin)}"
        )
    # every mint replaced a token that was due: never two mints within one token's early life
    for before, after in itertools.pairwise(endpoint.mints):
        earliest, _ = schedule.refresh_window(
            before.expires_at, before.expires_at - before.minted_at, before.margin(min_ttl)
        )
        assert after.minted_at >= earliest - schedule.TOLERANCE, (
            f"minted at {after.minted_at!r}, before {before.value}'s window opened at {earliest!r}"
        )
    assert bisect.bisect(times, DAY) == len(times)


def test_the_simulation_notices_a_daemon_that_refreshes_too_late() -> None:
    """The invariant checker is not vacuous: a rule that waits until the deadline plus a minute fails it."""
    token = Token(
        "t", expires_at=1000, minted_at=0, principal=None, credential_type="x", from_cache=False
    )
    margin = token.margin(300)
    stale_from = token.expires_at - margin
    # replaced 60 s after the deadline, endpoint up all along
    assert _covered(stale_from, stale_from + 60, [], schedule.backoff_cap(margin)) == stale_from
    # an outage that ended 10 s before explains a stale token only within B of its end
    gap = _covered(stale_from, stale_from + 120, [(0, stale_from - 10)], 60)
    assert gap == stale_from + 50
