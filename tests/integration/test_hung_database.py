"""A hung database (sockets open, no answers, through a paused proxy): the API answers 503 with
Retry-After within its bounds, /readyz within its own timeout, the dispatcher keeps going,
and everything recovers once the database answers again."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from alertd import db, settings
from alertd.api import routes
from alertd.context import Context
from alertd.delivery.dispatcher import Dispatcher
from alertd.delivery.push import Outcome
from alertd.ingest import pollers
from tests import capgen
from tests.integration import test_pollers
from tests.integration.test_dispatcher import FAST, Scripted, _queue
from tests.pgproxy import PausableProxy
from tests.waiting import wait_for

# Bounds the test sets, and the generous limit on an answer during the hang: the point is that
# an answer comes within a few seconds rather than after a minute or never.
BOUNDS = {"ALERTD_DATABASE_CONNECT_TIMEOUT_S": "2", "ALERTD_DATABASE_ACQUIRE_TIMEOUT_S": "2",
          "ALERTD_DATABASE_STATEMENT_TIMEOUT_S": "2", "ALERTD_DATABASE_READY_TIMEOUT_S": "1",
          "ALERTD_DATABASE_BULK_TIMEOUT_S": "2",  # a poll's CAP intake is an order's fan-out
          "ALERTD_DATABASE_POOL_MIN": "1", "ALERTD_DATABASE_POOL_MAX": "3"}
ANSWER_WITHIN_S = 10.0
server = test_pollers.server  # the local feed server fixture
Server = test_pollers.Server


@pytest.fixture
async def proxy(db_url: str) -> AsyncIterator[PausableProxy]:
    """A pausable proxy in front of this test's database."""
    p = await PausableProxy(db_url).start()
    yield p
    await p.close()


def _cfg(url: str) -> settings.Settings:
    return settings.load(environ={"ALERTD_DATABASE_URL": url, **BOUNDS, **FAST})


@pytest.fixture
async def hung_client(context: Context, proxy: PausableProxy) -> AsyncIterator[TestClient]:
    """The app on a bounded pool that reaches the database through the proxy."""
    cfg = _cfg(proxy.url)
    pool = await db.connect(cfg.database.url, min_size=1, max_size=3, bounds=cfg.database)
    client = TestClient(TestServer(routes.build_app(
        dataclasses.replace(context, cfg=cfg, pool=pool))))
    await client.start_server()
    yield client
    await client.close()
    proxy.resume()
    await pool.close()


async def _timed(call: Any) -> tuple[int, dict[str, str], Any, float]:
    began = time.monotonic()
    async with call as resp:
        body = await resp.json()
        return resp.status, dict(resp.headers), body, time.monotonic() - began


async def test_api_answers_503_within_its_bounds_and_recovers(
        hung_client: TestClient, proxy: PausableProxy) -> None:
    """With the database hung, reads, writes, registration and /readyz all answer 503 (the API
    with Retry-After, /readyz after its own 1 s) within a few seconds, more requests than
    pooled connections included;
    once it answers again, so does the API."""
    client = hung_client
    r = await client.post("/v1/devices", json={"platform": "ios", "push_token": "t"})
    me = {"Authorization": f"Bearer {(await r.json())['device_secret']}"}
    assert (await client.get("/v1/me", headers=me)).status == 200
    proxy.pause()
    here = {"lat": 37.75, "lon": 140.47}
    calls = [client.get("/v1/me", headers=me) for _ in range(4)]
    calls += [client.put("/v1/me/location", json=here, headers=me),
              client.post("/v1/devices", json={"platform": "ios", "push_token": "u"}),
              client.get("/readyz")]
    answers = await asyncio.gather(*(_timed(c) for c in calls))
    print("hung database: answer times", [round(a[3], 2) for a in answers])
    assert [a[0] for a in answers] == [503] * 7
    assert all(a[3] < ANSWER_WITHIN_S for a in answers)
    for _, headers, body, _ in answers[:-1]:
        assert headers["Retry-After"] == "2"
        assert body == {"error": "the database is unavailable; retry shortly"}
    assert answers[-1][2] == {"error": "database did not answer within 1 s"}
    proxy.resume()

    async def recovered() -> bool:
        return (await client.get("/v1/me", headers=me)).status == 200 and \
            (await client.get("/readyz")).status == 200

    await wait_for(recovered, "the API answering again")


async def test_dispatcher_survives_a_hung_database(
        pool: asyncpg.Pool, proxy: PausableProxy) -> None:
    """A dispatcher whose database hangs logs its failed claims with a reason and, once the
    database answers again, sends what was queued meanwhile."""
    # A claim that timed out here may still run once the database answers: its row is then
    # leased to this dispatcher without its knowing, and is claimed again when the lease ends.
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": proxy.url, **BOUNDS, **FAST,
                                 "ALERTD_DISPATCH_LEASE_S": "3"})
    bounded = await db.connect(cfg.database.url, min_size=1, max_size=3, bounds=cfg.database)
    sender = Scripted(lambda n: Outcome("sent", provider_id=f"p-{n}"))
    dispatcher = Dispatcher(bounded, cfg, {"apns": (sender, 10)})
    with capture_logs() as logged:
        task = asyncio.create_task(dispatcher.run())
        try:
            await _queue(pool, 1)
            await wait_for(lambda: _sent(pool, 1), "the first delivery sent")
            proxy.pause()
            await _queue(pool, 1)

            async def claim_failed() -> bool:
                return any(e["event"] == "claim_failed" for e in logged)

            await wait_for(claim_failed, "a claim failing on the hung database")
            assert not task.done()
            proxy.resume()
            await wait_for(lambda: _sent(pool, 2), "the delivery queued during the hang sent")
        finally:
            proxy.resume()
            dispatcher.stop()
            await task
            await bounded.close()
    failure = next(e for e in logged if e["event"] == "claim_failed")
    assert failure["error"] == "TimeoutError"


async def _sent(pool: asyncpg.Pool, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'sent'") == n


async def test_poller_survives_a_database_hung_at_start_and_later(
        context: Context, proxy: PausableProxy, server: Server) -> None:
    """A poller whose database is hung when it starts, and again later, logs each failure with
    a reason, keeps retrying, and polls its feed whenever the database answers."""
    cfg = _cfg(proxy.url)
    bounded = await db.connect(cfg.database.url, min_size=1, max_size=3, bounds=cfg.database)
    c = dataclasses.replace(context, cfg=cfg, pool=bounded)
    server.docs["/cap.xml"] = (capgen.message("hung-1"), "application/cap+xml")
    stop = asyncio.Event()
    with capture_logs() as logged:
        async with aiohttp.ClientSession() as http:
            poller = pollers.Poller(c, pollers.FeedSpec("cap:hung", "cap", server.url("/cap.xml"),
                                                        0.2), http)
            proxy.pause()
            task = asyncio.create_task(poller.run(stop))
            try:
                for episode in (1, 2):
                    await wait_for(lambda n=episode: _errors(logged, n),
                                   f"database failure {episode} logged")
                    assert not task.done()
                    polled = server.hits["/cap.xml"]
                    proxy.resume()
                    await wait_for(lambda n=polled: _more(server, n),
                                   f"polling again ({episode})")
                    proxy.pause()
            finally:
                proxy.resume()
                stop.set()
                await task
                await bounded.close()
    failures = [e for e in logged if e["event"] == "poller_database_error"]
    assert {e["error"] for e in failures} == {"TimeoutError"}


async def _errors(logged: list[Any], n: int) -> bool:
    return sum(e["event"] == "poller_database_error" for e in logged) >= n


async def _more(server: Server, than: int) -> bool:
    return server.hits["/cap.xml"] > than


async def test_closing_a_connection_to_a_hung_database_is_bounded(
        proxy: PausableProxy) -> None:
    """Closing a connection whose database hangs drops it after db.CLOSE_TIMEOUT_S instead of
    waiting for the server's goodbye for ever (the daemon's shutdown waited on it)."""
    conn = await db.connect_one(proxy.url)
    proxy.pause()
    began = time.monotonic()
    async with asyncio.timeout(ANSWER_WITHIN_S):
        with pytest.raises(TimeoutError):
            await conn.close()
    assert conn.is_closed()
    print("closing a hung connection took", round(time.monotonic() - began, 2), "s")
