"""Rate limits through the real app: registrations per address, requests per device and per staff
token, 429 with Retry-After and a reason (on a hand-driven clock)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import settings, staff
from alertd.api import plumbing, routes
from alertd.context import Context
from tests.waiting import wait_for


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Start = Callable[..., Awaitable[tuple[TestClient, Clock]]]


@pytest.fixture
async def app_with(context: Context) -> AsyncIterator[Start]:
    """Starts the real app with the given settings (ALERTD_* names) on a hand-driven clock."""
    clients: list[TestClient] = []

    async def start(**env: str) -> tuple[TestClient, Clock]:
        cfg = settings.load(environ={"ALERTD_DATABASE_URL": context.cfg.database.url, **env})
        clock = Clock()
        client = TestClient(TestServer(routes.build_app(dataclasses.replace(context, cfg=cfg),
                                                        clock)))
        await client.start_server()
        clients.append(client)
        return client, clock

    yield start
    for client in clients:
        await client.close()


async def _register(client: TestClient, n: int, **headers: str) -> list[int]:
    statuses = []
    for i in range(n):
        r = await client.post("/v1/devices", headers=headers, json={
            "platform": "ios", "push_token": f"tok-{i}-{len(statuses)}", "locale": "ja"})
        statuses.append(r.status)
        if r.status == 429:
            await _check_refusal(r, "register")
    return statuses


async def _check_refusal(r: Any, limit: str) -> None:
    body = await r.json()
    assert r.headers["Retry-After"] == str(body["retry_after"])
    assert int(r.headers["Retry-After"]) >= 1
    assert body["limit"] == limit and body["error"].startswith("too many ")


async def test_registrations_from_one_address_pass_a_burst_then_get_429(app_with: Start) -> None:
    """With the shipped limits a burst of 100 registrations from one address passes, 200 in all
    pass at once, the next 100 get 429 with Retry-After: 1, and 5 more pass a second later."""
    client, clock = await app_with()
    assert await _register(client, 100) == [201] * 100
    assert await _register(client, 100) == [201] * 100
    refused = await _register(client, 100)
    assert refused == [429] * 100
    r = await client.post("/v1/devices", json={"platform": "ios", "push_token": "x"})
    assert r.headers["Retry-After"] == "1"
    assert (await r.json())["error"] == (
        "too many registrations from this address: at most 200 at once and 5 a second after "
        "that; retry in 1 s")
    clock.now += 1.0
    assert await _register(client, 6) == [201] * 5 + [429]


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(app_with: Start) -> None:
    """X-Forwarded-For gives each client its own bucket only when the peer is a trusted proxy;
    otherwise every value shares the peer's bucket."""
    plain, _ = await app_with(ALERTD_RATELIMIT_REGISTER_BURST="2")
    spoofed = [await _register(plain, 1, **{"X-Forwarded-For": f"203.0.113.{i}"})
               for i in range(3)]
    assert spoofed == [[201], [201], [429]]
    proxied, _ = await app_with(ALERTD_RATELIMIT_REGISTER_BURST="2",
                                ALERTD_HTTP_TRUSTED_PROXIES='["127.0.0.0/8", "::1/128"]')
    a = {"X-Forwarded-For": "203.0.113.1"}
    b = {"X-Forwarded-For": "203.0.113.2, 127.0.0.5"}
    assert await _register(proxied, 3, **a) == [201, 201, 429]
    assert await _register(proxied, 3, **b) == [201, 201, 429]


async def _device(client: TestClient, token: str) -> dict[str, str]:
    r = await client.post("/v1/devices", json={"platform": "android", "push_token": token})
    assert r.status == 201
    return {"Authorization": f"Bearer {(await r.json())['device_secret']}"}


async def test_location_updates_and_reads_are_limited_per_device(app_with: Start) -> None:
    """A device's location updates and its requests have their own buckets; another device is
    not limited by them, and the refill lets it through again."""
    client, clock = await app_with(ALERTD_RATELIMIT_LOCATION_BURST="3",
                                   ALERTD_RATELIMIT_DEVICE_BURST="6")
    one, two = await _device(client, "one"), await _device(client, "two")
    here = {"lat": 37.75, "lon": 140.47}
    moves = [(await client.put("/v1/me/location", json=here, headers=one)) for _ in range(4)]
    assert [r.status for r in moves] == [204, 204, 204, 429]
    await _check_refusal(moves[-1], "location")
    assert moves[-1].headers["Retry-After"] == "2"  # 0.5 a second: one token in 2 s
    assert (await client.put("/v1/me/location", json=here, headers=two)).status == 204
    reads = [(await client.get("/v1/me", headers=one)).status for _ in range(4)]
    assert reads == [200, 200, 200, 429]  # the 3 accepted updates and 3 reads took the 6
    clock.now += 2.0
    assert (await client.put("/v1/me/location", json=here, headers=one)).status == 204


async def test_staff_requests_are_limited_per_token(app_with: Start) -> None:
    """A staff token's requests beyond its bucket get 429; another token is served."""
    client, _ = await app_with(ALERTD_RATELIMIT_STAFF_BURST="2")
    pool = client.server.app[plumbing.CONTEXT].pool
    first, second = await staff.create(pool, "viewer"), await staff.create(pool, "viewer")
    statuses = [(await client.get("/v1/staff/orders",
                                  headers={"Authorization": f"Bearer {first}"})).status
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    r = await client.get("/v1/staff/orders", headers={"Authorization": f"Bearer {second}"})
    assert r.status == 200


async def test_limits_can_be_switched_off(app_with: Start) -> None:
    """With ratelimit.enabled = false nothing is refused 429."""
    client, _ = await app_with(ALERTD_RATELIMIT_ENABLED="false",
                               ALERTD_RATELIMIT_REGISTER_BURST="1")
    assert await _register(client, 3) == [201, 201, 201]


SEARCH = {"lat": "37.7525", "lon": "140.4525"}


async def test_shelter_searches_are_limited_per_address(app_with: Start) -> None:
    """GET /v1/shelters needs no credential: searches count per client address (as
    registrations do), and the refill lets them through again."""
    client, clock = await app_with(ALERTD_RATELIMIT_SEARCH_BURST="3",
                                   ALERTD_RATELIMIT_SEARCH_PER_S="1")
    searches = [await client.get("/v1/shelters", params=SEARCH) for _ in range(4)]
    assert [r.status for r in searches] == [200, 200, 200, 429]
    await _check_refusal(searches[-1], "search")
    clock.now += 1.0
    assert (await client.get("/v1/shelters", params=SEARCH)).status == 200


async def test_a_surge_of_shelter_searches_leaves_the_database_to_the_rest(
        app_with: Start) -> None:
    """At most ratelimit.search_concurrency searches use the database at once: while one hangs
    on the database, the next waits search_wait_s, then gets 503 with Retry-After; staff
    requests are served meanwhile, and the hung search answers once the database does."""
    client, _ = await app_with(ALERTD_RATELIMIT_SEARCH_CONCURRENCY="1",
                               ALERTD_RATELIMIT_SEARCH_WAIT_S="0.2")
    pool = client.server.app[plumbing.CONTEXT].pool
    viewer = await staff.create(pool, "viewer")
    async with pool.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE shelters IN ACCESS EXCLUSIVE MODE")
        hung = asyncio.create_task(client.get("/v1/shelters", params=SEARCH))

        async def search_waits_on_the_lock() -> bool:
            return bool(await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'SELECT %FROM shelters%'"))
        await wait_for(search_waits_on_the_lock, "the first search to wait on the database")
        refused = await client.get("/v1/shelters", params=SEARCH)
        assert refused.status == 503
        assert refused.headers["Retry-After"] == str(plumbing.RETRY_AFTER_S)
        assert (await refused.json())["error"].startswith("too many shelter searches at once")
        r = await client.get("/v1/staff/orders", headers={"Authorization": f"Bearer {viewer}"})
        assert r.status == 200
        assert not hung.done()
        await tx.rollback()
    assert (await asyncio.wait_for(hung, 10)).status == 200
    assert (await client.get("/v1/shelters", params=SEARCH)).status == 200
