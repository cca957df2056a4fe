"""The location index's catch-up: no request holds two pool connections, none goes on when
the index cannot confirm the latest locations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import db, devices, errors, orders, pipeline, points, staff
from alertd.api import plumbing, routes
from alertd.context import Context
from tests import capgen
from tests.waiting import DEADLINE, wait_for

POOL_MAX = 2
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
ORDER = {"level": 3, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難"}}


async def _client(c: Context) -> TestClient:
    client = TestClient(TestServer(routes.build_app(c)))
    await client.start_server()
    return client


@pytest.fixture
async def small(context: Context, db_url: str) -> AsyncIterator[TestClient]:
    """The app on a pool of POOL_MAX connections, its point index following the database."""
    pool = await db.connect(db_url, min_size=1, max_size=POOL_MAX)
    client = await _client(Context(cfg=context.cfg, pool=pool, points=context.points,
                                   table=context.table))
    yield client
    await client.close()
    await pool.close()


@pytest.fixture
async def stalled(stalled_context: Context) -> AsyncIterator[TestClient]:
    """The app with a point index whose follower is stalled."""
    client = await _client(stalled_context)
    yield client
    await client.close()


async def _located_device(c: Context, token: str) -> None:
    device_id, _ = await devices.register(c.pool, "ios", token, "ja")
    dev = await devices.get(c.pool, device_id)
    assert dev is not None
    await devices.set_location(c.pool, dev, 37.75, 140.45, None)


async def _answer(request: Any) -> tuple[int, Any]:
    """The status and JSON body of a request's answer."""
    async with await request as resp:
        return resp.status, await resp.json()


async def test_concurrent_requests_on_a_small_pool_all_answer(
        context: Context, small: TestClient) -> None:
    """4 × pool_max concurrent order creations, CAP posts and amends on a pool of pool_max
    connections all answer: no request waits for a second connection while holding one."""
    n = 4 * POOL_MAX
    for i in range(3):
        await _located_device(context, f"tok-{i}")
    auth = {"Authorization": f"Bearer {await staff.create(context.pool, 'operator')}"}
    existing = []
    for _ in range(n):
        status, body = await _answer(small.post("/v1/staff/orders", json=ORDER,
                                                      headers=auth))
        assert status == 201
        existing.append(body["id"])
    cap_headers = {**auth, "Content-Type": "application/cap+xml"}
    requests = (
        [small.post("/v1/staff/orders", json=ORDER, headers=auth) for _ in range(n)]
        + [small.post("/v1/staff/cap", data=capgen.message(f"pool-{i}"), headers=cap_headers)
           for i in range(n)]
        + [small.patch(f"/v1/staff/orders/{order_id}", json={"level": 4}, headers=auth)
           for order_id in existing])
    async with asyncio.timeout(DEADLINE):  # a deadlock fails here instead of hanging
        answers = await asyncio.gather(*(_answer(r) for r in requests))
    assert [s for s, _ in answers] == [201] * n + [202] * n + [200] * n
    assert [b["devices"] for _, b in answers[:n]] == [3] * n
    assert [(b["outcome"], b["detail"]) for _, b in answers[n:2 * n]] == [
        ("order", "3 devices")] * n
    assert [(b["version"], b["devices"]) for _, b in answers[2 * n:]] == [(2, 3)] * n
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 3 * n


async def test_a_stalled_follower_refuses_writes_with_503(context: Context,
                                                         stalled: TestClient) -> None:
    """With the location follower stalled, an order, an amend and a posted CAP message answer
    503 with Retry-After within the catch-up bound, and nothing is written."""
    await _located_device(context, "tok")
    auth = {"Authorization": f"Bearer {await staff.create(context.pool, 'operator')}"}
    spec = orders.parse_spec(ORDER, context.table, context.cfg.orders,
                             datetime.now(UTC))
    async with context.pool.acquire() as conn:
        existing = await pipeline.accept(conn, context.points, spec)
    before = await context.pool.fetchval("SELECT count(*) FROM deliveries")
    async with asyncio.timeout(DEADLINE):
        created = await stalled.post("/v1/staff/orders", json=ORDER,
                                     headers={**auth, "Idempotency-Key": "k1"})
        amended = await stalled.patch(f"/v1/staff/orders/{existing.order_id}",
                                      json={"level": 5}, headers=auth)
        cap = await stalled.post("/v1/staff/cap", data=capgen.message("stalled-1"),
                                 headers={**auth, "Content-Type": "application/cap+xml"})
    reason = errors.LocationsBehind().reason
    for resp in (created, amended, cap):
        assert (resp.status, resp.headers.get("Retry-After"), (await resp.json())["error"]) == (
            503, str(plumbing.RETRY_AFTER_S), reason)
    counts = await context.pool.fetchrow(
        "SELECT (SELECT count(*) FROM orders) AS orders,"
        " (SELECT max(version) FROM orders) AS version,"
        " (SELECT count(*) FROM deliveries) AS deliveries,"
        " (SELECT count(*) FROM idempotency_keys) AS keys,"
        " (SELECT count(*) FROM cap_messages) AS cap,"
        " (SELECT count(*) FROM quarantine) AS quarantined")
    assert dict(counts) == {"orders": 1, "version": 1, "deliveries": before, "keys": 0,
                            "cap": 0, "quarantined": 0}


async def test_catch_up_sees_a_location_saved_before_it(context: Context) -> None:
    """A location committed before catch_up is in the index when catch_up returns."""
    await _located_device(context, "tok")
    await points.catch_up(context.points)
    spec = orders.parse_spec(ORDER, context.table, context.cfg.orders,
                             datetime.now(UTC))
    assert len(context.points.match(spec.area.geometry).seqs) == 1


async def test_catch_up_raises_when_the_follower_never_answers(
        stalled_context: Context) -> None:
    """catch_up raises LocationsBehind when the follower does not confirm in time, and leaves
    no request behind for a follower that comes back later."""
    pts = stalled_context.points
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(errors.LocationsBehind):
            await points.catch_up(pts)
    assert (pts.asked, pts.barriers) == ([], {})


async def test_catch_up_asked_while_the_follower_reconnects_is_served(
        context: Context) -> None:
    """A catch-up asked when the follower's connection has just been killed is served once
    the follower is connected again, not left to time out."""
    senders: list[int] = []
    watcher = await asyncpg.connect(context.cfg.database.url)
    try:
        await watcher.add_listener(points.CHANNEL, lambda _c, pid, _ch, _p: senders.append(pid))
        await points.catch_up(context.points)  # the follower sends its marker: we learn its pid
        await wait_for(lambda: _true(senders), "the follower's marker")
        await watcher.execute("SELECT pg_terminate_backend($1)", senders[0])
        context.points.catch_up_s = DEADLINE
        await points.catch_up(context.points)
        await wait_for(lambda: _true(set(senders) - {senders[0]}), "a marker from a new session")
    finally:
        await watcher.close()


async def _true(value: Any) -> bool:
    return bool(value)
