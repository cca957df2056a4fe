"""Rate limits: token buckets per client address (registration, shelter search), per device,
per staff token; and a bound on the shelter searches one process runs at once.

A bucket holds up to `burst` tokens and gains `per_s` a second; a request takes one or is
answered 429 with Retry-After. Buckets live in this process's memory, so each API node limits
on its own. A bucket idle long enough to be full again is the same as no bucket and is dropped,
and at most `ratelimit.max_tracked` buckets are kept per limit (least recently used go first).

Devices and staff are keyed by a digest of the credential they present, before it is looked
up: a flood costs no database work. Registrations and shelter searches (which need no
credential) are keyed by the client address: the peer,
or, when the peer is one of `http.trusted_proxies`, the nearest untrusted address of
X-Forwarded-For. IPv6 clients are keyed by their /64 (one subscriber's usual prefix).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from aiohttp import web

from alertd import credentials, errors, metrics, sessions, settings
from alertd.api import plumbing

Clock = Callable[[], float]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit: what it counts, the burst it allows and the sustained rate."""

    name: str
    what: str
    burst: int
    per_s: float


class Buckets:
    """The token buckets of one rule, keyed by client; bounded in number."""

    __slots__ = ("_clock", "_held", "_max", "rule")

    def __init__(self, rule: Rule, max_tracked: int, clock: Clock) -> None:
        self.rule = rule
        self._max = max_tracked
        self._clock = clock
        # key -> (tokens, when); insertion order is least recently used first
        self._held: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 when taken, else the seconds until one is available."""
        now = self._clock()
        rule = self.rule
        state = self._held.pop(key, None)  # re-inserted below: now the most recently used
        tokens = float(rule.burst) if state is None else min(
            float(rule.burst), state[0] + (now - state[1]) * rule.per_s)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rule.per_s
        self._held[key] = (tokens, now)
        self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        refill_s = self.rule.burst / self.rule.per_s  # an empty bucket is full again after it
        held = self._held
        while held:
            oldest = next(iter(held))
            if len(held) <= self._max and now - held[oldest][1] < refill_s:
                return
            del held[oldest]


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[Network, ...]) -> str:
    """The client's address (an IPv6 one as its /64): the peer unless it is a trusted proxy."""
    address = _ip(peer)
    if address is None:
        return peer or "unknown"
    if forwarded_for and _within(address, trusted):
        for hop in reversed(forwarded_for.split(",")):
            hop_ip = _ip(hop.strip())
            if hop_ip is None:
                break  # garbage: trust nothing left of it
            address = hop_ip
            if not _within(hop_ip, trusted):
                break
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
            networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def _credential_key(header: str | None) -> str | None:
    token = credentials.bearer(header)
    if token is None:
        return None
    return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class Throttle:
    """Every rate limit of one API process."""

    def __init__(self, cfg: settings.Settings, clock: Clock = time.monotonic) -> None:
        r = cfg.ratelimit
        self.enabled = r.enabled
        self.trusted = tuple(ipaddress.ip_network(n, strict=False)
                             for n in cfg.http.trusted_proxies)

        def buckets(name: str, what: str, burst: int, per_s: float) -> Buckets:
            return Buckets(Rule(name, what, burst, per_s), r.max_tracked, clock)

        self.register = buckets("register", "registrations from this address",
                                r.register_burst, r.register_per_s)
        self.location = buckets("location", "location updates of this device",
                                r.location_burst, r.location_per_s)
        self.device = buckets("device", "requests of this device", r.device_burst,
                              r.device_per_s)
        self.staff = buckets("staff", "requests with this staff token", r.staff_burst,
                             r.staff_per_s)
        self.search = buckets("search", "shelter searches from this address", r.search_burst,
                              r.search_per_s)
        # Shelter searches using the database at once: always one connection of the pool left
        # for everything else (staff, sync, the fan-out), whatever the searches do.
        self.searching = asyncio.Semaphore(max(1, min(r.search_concurrency,
                                                      cfg.database.pool_max - 1)))
        self.search_wait_s = r.search_wait_s

    def applying(self, request: web.Request) -> Iterator[tuple[Buckets, str]]:
        """The limits a request counts against, with its key in each."""
        path, method = request.path, request.method
        if path == "/v1/devices" and method == "POST":
            yield self.register, self._address(request)
        elif path == "/v1/shelters":
            yield self.search, self._address(request)
        elif path == "/v1/me" or path.startswith("/v1/me/"):
            key = _credential_key(request.headers.get("Authorization"))
            if key is not None:
                if path == "/v1/me/location" and method in ("PUT", "DELETE"):
                    yield self.location, key
                yield self.device, key
        elif path.startswith("/v1/staff/"):
            header = request.headers.get("Authorization")
            if header is None and sessions.COOKIE in request.cookies:
                # a console session counts against its own bucket, as a token would
                header = "Bearer " + request.cookies[sessions.COOKIE]
            key = _credential_key(header)
            if key is not None:
                yield self.staff, key


    def _address(self, request: web.Request) -> str:
        """The client address a request without a credential counts by."""
        return client_address(request.remote, request.headers.get("X-Forwarded-For"),
                              self.trusted)


THROTTLE = web.AppKey("throttle", Throttle)


@contextlib.asynccontextmanager
async def searching(request: web.Request) -> AsyncIterator[None]:
    """A turn of this process's shelter searches (ratelimit.search_concurrency at once), waited
    for at most ratelimit.search_wait_s: then Overloaded (503 with Retry-After)."""
    throttle = request.app[THROTTLE]
    try:
        async with asyncio.timeout(throttle.search_wait_s):
            await throttle.searching.acquire()
    except TimeoutError:
        metrics.RATE_LIMITED.labels("search_concurrency").inc()
        raise errors.Overloaded("too many shelter searches at once on this server; "
                                "retry in a few seconds") from None
    try:
        yield
    finally:
        throttle.searching.release()


@web.middleware
async def rate_limits(request: web.Request, handler: plumbing.Handler) -> web.StreamResponse:
    """429 with Retry-After and the reason once a request's bucket is empty."""
    throttle = request.app[THROTTLE]
    if throttle.enabled:
        for buckets, key in throttle.applying(request):
            wait = buckets.take(key)
            if wait > 0:
                return _refusal(buckets.rule, wait)
    return await handler(request)


def _refusal(rule: Rule, wait: float) -> web.Response:
    metrics.RATE_LIMITED.labels(rule.name).inc()
    retry_after = max(1, math.ceil(wait))
    resp = plumbing.problem(
        429, f"too many {rule.what}: at most {rule.burst} at once and {rule.per_s:g} a second "
             f"after that; retry in {retry_after} s",
        limit=rule.name, retry_after=retry_after)
    resp.headers["Retry-After"] = str(retry_after)
    return resp
