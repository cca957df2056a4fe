"""Token buckets and the client address behind trusted proxies (pure, on a hand-driven clock)."""

from __future__ import annotations

import ipaddress

import pytest

from alertd.api import throttle


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _buckets(burst: int, per_s: float, max_tracked: int = 1000) -> tuple[throttle.Buckets,
                                                                          Clock]:
    clock = Clock()
    return throttle.Buckets(throttle.Rule("t", "tries", burst, per_s), max_tracked, clock), clock


def test_burst_passes_then_the_wait_for_the_next_token_is_told() -> None:
    """A bucket lets `burst` requests through at once, then tells the wait for the next token."""
    buckets, clock = _buckets(burst=3, per_s=2.0)
    assert [buckets.take("a") for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 0.5]
    clock.now += 0.5
    assert [buckets.take("a") for _ in range(2)] == [0.0, 0.5]


def test_refill_never_exceeds_the_burst() -> None:
    """However long a bucket rests, it holds at most `burst` tokens."""
    buckets, clock = _buckets(burst=2, per_s=1.0)
    buckets.take("a")
    clock.now += 3600
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]


def test_keys_have_their_own_buckets() -> None:
    """One client's empty bucket does not limit another client."""
    buckets, _ = _buckets(burst=1, per_s=1.0)
    assert (buckets.take("a"), buckets.take("a"), buckets.take("b")) == (0.0, 1.0, 0.0)


def test_buckets_full_again_are_forgotten() -> None:
    """A bucket idle until it is full again is dropped (it is the same as no bucket)."""
    buckets, clock = _buckets(burst=4, per_s=2.0)
    for key in ("a", "b", "c"):
        buckets.take(key)
    clock.now += 1.0
    buckets.take("d")
    assert len(buckets) == 4
    clock.now += 1.0  # a, b and c are full again; d is not
    buckets.take("e")
    assert len(buckets) == 2


def test_at_most_max_tracked_buckets_are_kept() -> None:
    """A flood of distinct keys keeps at most max_tracked buckets, the most recent ones."""
    buckets, _ = _buckets(burst=1, per_s=0.001, max_tracked=100)
    for i in range(10_000):
        buckets.take(f"k{i}")
    assert len(buckets) == 100
    assert buckets.take("k9999") > 0 and buckets.take("k0") == 0.0


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("198.51.100.7", None, PROXIES, "198.51.100.7"),
        ("198.51.100.7", "203.0.113.9", (), "198.51.100.7"),
        ("198.51.100.7", "203.0.113.9", PROXIES, "198.51.100.7"),  # peer is no proxy
        ("10.0.0.2", "203.0.113.9", PROXIES, "203.0.113.9"),
        ("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.1", PROXIES, "203.0.113.9"),
        ("10.0.0.2", "10.0.0.3, 10.0.0.1", PROXIES, "10.0.0.3"),
        ("10.0.0.2", "203.0.113.9, nonsense", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "", PROXIES, "10.0.0.2"),
        ("2001:db8:1:2:aaaa::1", None, (), "2001:db8:1:2::/64"),
        ("fd00::1", "2001:db8:1:2::5", PROXIES, "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", None, (), "198.51.100.7"),
        (None, None, (), "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None,
                        trusted: tuple[throttle.Network, ...], client: str) -> None:
    """X-Forwarded-For names the client only behind a trusted proxy (nearest untrusted hop);
    IPv6 clients count by their /64."""
    assert throttle.client_address(peer, forwarded, trusted) == client
