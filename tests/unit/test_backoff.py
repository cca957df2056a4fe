"""The one back-off policy (alertd.backoff) and the two places that wait by it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertd import backoff
from alertd.ingest import pollers

LAST = 1 - 2 ** -53  # the largest value random.random() returns


class Fixed(random.Random):
    """A random source that always draws the same value."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        """The fixed draw."""
        return self.value


@pytest.mark.parametrize(
    ("attempt", "base_s", "max_s", "retry_after", "draw", "expected"),
    [
        (1, 1.0, 300.0, None, 0.0, 0.5),  # the first retry: half of base_s at the least ...
        (1, 1.0, 300.0, None, 0.5, 0.75),
        (1, 1.0, 300.0, None, LAST, 1.0 - 2 ** -54),  # ... base_s at the most
        (4, 1.0, 300.0, None, 0.0, 4.0),  # doubling: 8 s in full at the 4th attempt
        (4, 1.0, 300.0, None, 0.5, 6.0),
        (10, 1.0, 300.0, None, 0.0, 150.0),  # 512 s capped at 300 s, then jittered
        (10, 1.0, 300.0, None, LAST, 300.0 * (0.5 + LAST / 2)),
        (10_000, 1.0, 300.0, None, LAST, 300.0 * (0.5 + LAST / 2)),  # no overflow
        (0, 1.0, 300.0, None, 0.0, 0.5),  # attempt 0 counts as the first
        (1, 1.0, 300.0, 42.0, 0.0, 42.0),  # Retry-After is a floor ...
        (8, 1.0, 300.0, 42.0, 0.0, 64.0),  # ... below the back-off it changes nothing
        (1, 1.0, 300.0, 86_400.0, 0.0, 300.0),  # ... and never beyond max_s
        (1, 1.0, 300.0, 0.0, 0.0, 0.5),
    ],
)
def test_delay_table(attempt: int, base_s: float, max_s: float, retry_after: float | None,
                     draw: float, expected: float) -> None:
    """The delay for an attempt, a cap, a Retry-After and a jitter draw is this exact value."""
    assert backoff.delay(attempt, base_s, max_s, retry_after, Fixed(draw)) == expected


@given(attempt=st.integers(min_value=-5, max_value=10_000),
       base_s=st.floats(min_value=1e-3, max_value=1e4),
       max_s=st.floats(min_value=1e-3, max_value=1e6),
       retry_after=st.none() | st.floats(min_value=0, max_value=1e9),
       draw=st.floats(min_value=0, max_value=LAST))
def test_delay_stays_within_its_bounds(attempt: int, base_s: float, max_s: float,
                                       retry_after: float | None, draw: float) -> None:
    """Never above max_s, never below half the capped exponential, never before Retry-After."""
    wait = backoff.delay(attempt, base_s, max_s, retry_after, Fixed(draw))
    full = min(max_s, base_s * 2 ** min(max(attempt - 1, 0), 64))
    assert full / 2 <= wait <= max_s
    if retry_after is not None:
        assert wait >= min(retry_after, max_s)
    else:
        assert wait <= full


@pytest.mark.parametrize(("failures", "draw", "expected"), [
    (0, 0.0, 60.0),  # healthy: the feed's interval
    (0, LAST, 60.0),
    (1, 0.0, 60.0),  # the first failure: between one and two intervals
    (1, 0.5, 90.0),
    (3, 0.0, 240.0),
    (10, 0.0, 900.0),  # the cap, jittered down ...
    (10, LAST, 1800.0 * (0.5 + LAST / 2)),  # ... never above it (it was 1800 * 1.25)
])
def test_poller_waits_by_the_policy(failures: int, draw: float, expected: float) -> None:
    """A feed with 60 s interval waits these exact delays after failures, capped at 1800 s."""
    spec = pollers.FeedSpec("cap:x", "cap", "https://x.example/cap.xml", 60.0)
    assert pollers.next_delay(spec, failures, 1800.0, Fixed(draw)) == expected


@given(failures=st.integers(min_value=0, max_value=10_000),
       draw=st.floats(min_value=0, max_value=LAST))
def test_poller_never_waits_longer_than_max_backoff(failures: int, draw: float) -> None:
    """However many failures, a feed is polled again within feeds.max_backoff_s."""
    spec = pollers.FeedSpec("cap:x", "cap", "https://x.example/cap.xml", 60.0)
    assert pollers.next_delay(spec, failures, 1800.0, Fixed(draw)) <= 1800.0
