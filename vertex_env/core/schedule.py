"""When the daemon refreshes next: a pure function of the clock, the token's life, the margin, failures and jitter.

Nothing here reads a clock or a random source; the daemon passes `now` and `rand` (uniform in [0, 1)), so the
24-hour simulation in tests/test_schedule.py drives exactly the rule the daemon runs.

The rule, for a token that expires at E, lived L seconds, and must be served with at least `margin` left:
- consumers stop accepting it at the deadline D = E - margin (TokenSource treats it as stale from then on);
- a healthy daemon refreshes `lead` seconds before D (one more margin, at most half the life the token has
  outside the margin), pulled earlier by up to JITTER x lead so that many daemons started together drift apart;
- after a failure it retries with capped exponential backoff; the cap shrinks with the margin, so a failing
  daemon always gets several attempts in before the deadline even for short-lived tokens.
"""

from __future__ import annotations

#: Fraction of the lead over which refreshes are spread at random.
JITTER = 0.1
#: First retry delay after a failure, in seconds; doubles on each further failure.
BACKOFF_BASE = 1.0
#: The longest wait between two attempts while failing, in seconds (for the default 5-minute margin).
BACKOFF_CAP = 60.0
#: The shortest cap, so that a tiny margin never turns the daemon into a busy loop.
BACKOFF_FLOOR = 2.0
#: Seconds of clock slack: a wake-up this close to its time counts as on time (float rounding, timers).
TOLERANCE = 1e-3


def lead(lifetime: float, margin: float) -> float:
    """How long before the deadline a healthy daemon refreshes."""
    return max(0.0, min(margin, (lifetime - margin) / 2))


def refresh_window(expires_at: float, lifetime: float, margin: float) -> tuple[float, float]:
    """(earliest, latest) moment of a healthy refresh; every jittered refresh time lies in between."""
    ahead = lead(lifetime, margin)
    latest = expires_at - margin - ahead
    return latest - JITTER * ahead, latest


def refresh_at(expires_at: float, lifetime: float, margin: float, rand: float) -> float:
    """The jittered moment to refresh a token (rand in [0, 1))."""
    earliest, latest = refresh_window(expires_at, lifetime, margin)
    return latest - (latest - earliest) * rand


def due(now: float, expires_at: float, lifetime: float, margin: float) -> bool:
    """Whether a token should be replaced now: its refresh window has opened.

    The earliest edge of the window is used so that a daemon woken at its jittered time (give or take
    TOLERANCE) always finds the token due, while a token another process minted a moment ago is never
    replaced again.
    """
    return now + TOLERANCE >= refresh_window(expires_at, lifetime, margin)[0]


def backoff_cap(margin: float) -> float:
    """The longest wait between attempts while failing: a quarter of the margin, between 2 s and 60 s."""
    return min(BACKOFF_CAP, max(BACKOFF_FLOOR, margin / 4))


def backoff(failures: int, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after `failures` consecutive failures: 1, 2, 4, … up to `cap`."""
    if failures <= 0:
        return 0.0
    return min(cap, BACKOFF_BASE * 2.0 ** min(failures - 1, 64))


def next_refresh(
    now: float,
    expires_at: float | None,
    lifetime: float,
    margin: float,
    failures: int,
    rand: float,
) -> float:
    """When to make the next attempt.

    `expires_at` is None when there is no good token yet. After a failure the retry comes after the backoff,
    shortened by up to JITTER (never lengthened, so the gap between attempts never exceeds the cap).
    """
    if failures > 0:
        return now + backoff(failures, backoff_cap(margin)) * (1 - JITTER * rand)
    if expires_at is None:
        return now
    return max(now, refresh_at(expires_at, lifetime, margin, rand))
