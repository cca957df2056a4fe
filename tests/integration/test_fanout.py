"""Streamed fan-out on a real PostgreSQL: a large order is accepted with its first chunk, and
runners write the rest a chunk per transaction, each device once, whatever happens to the order
meanwhile (migration 0027, pipeline.continue_fanout, alertd.fanout)."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import fanout, pipeline, points, settings, staff
from alertd.api import routes
from alertd.context import Context
from tests.integration.test_pipeline import NORTH, SQUARE, device_at, kinds, sent, spec
from tests.waiting import wait_for

CHUNK = 3


@pytest.fixture
async def streaming(context: Context) -> Context:
    """The context with fan-outs streamed CHUNK devices at a time."""
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": context.cfg.database.url,
                                 "ALERTD_ORDERS_FANOUT_CHUNK": str(CHUNK)})
    return dataclasses.replace(context, cfg=cfg)


async def _devices(pool: asyncpg.Pool, live: points.Points, n: int, lat: float = 37.75,
                   prefix: str = "d") -> list[str]:
    tokens = [f"{prefix}{i:02d}" for i in range(n)]
    for i, token in enumerate(tokens):
        await device_at(pool, live, token, lat, 140.41 + i * 0.01)
    return tokens


async def _accept(c: Context, **kwargs: object) -> pipeline.Accepted:
    async with c.pool.acquire() as conn, conn.transaction():
        return await pipeline.accept(conn, c.points, spec(c.points, **kwargs),  # type: ignore[arg-type]
                                     chunk=c.cfg.orders.fanout_chunk)


async def _step(c: Context, owner: str = "runner") -> pipeline.Chunk | None:
    return await pipeline.continue_fanout(c.pool, c.table, c.cfg, owner)


async def _left(pool: asyncpg.Pool) -> list[tuple[int, int, str | None]]:
    rows = await pool.fetch("SELECT done, cardinality(seqs) AS n, owner FROM fanouts")
    return [(r["done"], r["n"], r["owner"]) for r in rows]


async def test_a_large_order_commits_its_first_chunk_and_streams_the_rest(
        pool: asyncpg.Pool, streaming: Context) -> None:
    """With more devices than a chunk, the order answers with all of them, commits the first
    chunk's deliveries, and each step writes the next chunk until every device has one."""
    tokens = await _devices(pool, streaming.points, 8)
    accepted = await _accept(streaming)
    assert accepted.devices == 8
    assert await pool.fetchval("SELECT matched FROM order_versions") == 8
    assert len(await kinds(pool, accepted.order_id)) == CHUNK
    assert await _left(pool) == [(0, 5, None)]
    first = await _step(streaming)
    assert first == pipeline.Chunk(accepted.order_id, CHUNK, finished=False)
    assert await _left(pool) == [(3, 5, "runner")]
    last = await _step(streaming)
    assert last == pipeline.Chunk(accepted.order_id, 2, finished=True)
    assert await _step(streaming) is None
    assert await kinds(pool, accepted.order_id) == [(t, 1, "order") for t in tokens]
    assert await _left(pool) == []


async def test_a_small_order_is_one_transaction(pool: asyncpg.Pool, streaming: Context) -> None:
    """An order within one chunk is written whole, with no fan-out left to run."""
    tokens = await _devices(pool, streaming.points, CHUNK)
    accepted = await _accept(streaming)
    assert await kinds(pool, accepted.order_id) == [(t, 1, "order") for t in tokens]
    assert await _left(pool) == []


async def test_runners_at_once_write_each_device_once(pool: asyncpg.Pool,
                                                      streaming: Context) -> None:
    """Several runners draining the same fan-outs together write every device exactly once."""
    tokens = await _devices(pool, streaming.points, 14)
    accepted = await _accept(streaming)
    runners = [fanout.Runner(streaming, owner=f"r{i}") for i in range(3)]
    written = await asyncio.gather(*(r.drain() for r in runners))
    assert sum(written) == 14 - CHUNK
    assert await kinds(pool, accepted.order_id) == [(t, 1, "order") for t in tokens]


async def test_a_held_fan_out_waits_for_its_lease(pool: asyncpg.Pool,
                                                  streaming: Context) -> None:
    """A fan-out another runner holds is left alone until its lease has passed; then it is
    taken over where that runner stopped."""
    tokens = await _devices(pool, streaming.points, 8)
    accepted = await _accept(streaming)
    assert await _step(streaming, owner="dead") is not None
    assert await _step(streaming, owner="alive") is None
    await pool.execute("UPDATE fanouts SET lease_until = now() - interval '1 second'")
    last = await _step(streaming, owner="alive")
    assert last is not None and last.finished
    assert await kinds(pool, accepted.order_id) == [(t, 1, "order") for t in tokens]


async def test_a_runner_that_stops_hands_back_what_it_holds(pool: asyncpg.Pool,
                                                            streaming: Context) -> None:
    """release_fanouts frees a runner's fan-outs for any runner at once."""
    await _devices(pool, streaming.points, 8)
    await _accept(streaming)
    await _step(streaming, owner="leaving")
    await pipeline.release_fanouts(pool, "leaving")
    assert await _step(streaming, owner="other") is not None


async def test_amending_mid_stream_ends_the_old_fan_out(pool: asyncpg.Pool,
                                                        streaming: Context) -> None:
    """An amendment while a fan-out streams covers the new area itself: devices not reached
    yet get the new version as their order, the old fan-out writes nothing more, and no device
    gets the order twice."""
    south = await _devices(pool, streaming.points, 8)
    north = await _devices(pool, streaming.points, 2, lat=37.85, prefix="n")
    accepted = await _accept(streaming)
    await _step(streaming)  # 6 of the 8 written
    async with pool.acquire() as conn:
        await sent(conn)
    order = await pipeline.load(pool, accepted.order_id, streaming.table, streaming.cfg.orders)
    both = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"],
                                                    NORTH["coordinates"]]}
    async with pool.acquire() as conn:
        await pipeline.amend(conn, streaming.points, order, spec(streaming.points, area=both))
    ended = await _step(streaming)
    assert ended == pipeline.Chunk(accepted.order_id, 0, finished=True)
    assert await _left(pool) == []
    got = await kinds(pool, accepted.order_id)
    assert sorted(t for t, _, k in got if k == "order") == sorted(south + north)
    assert [(t, v) for t, v, _ in got if t in south[6:] + north] == [
        (t, 2) for t in sorted(south[6:] + north)]


async def test_lifting_mid_stream_tells_only_the_devices_reached(
        pool: asyncpg.Pool, streaming: Context) -> None:
    """Lifting while a fan-out streams ends it: the devices reached so far are told of the
    lifting, the others are sent nothing."""
    tokens = await _devices(pool, streaming.points, 8)
    accepted = await _accept(streaming)
    async with pool.acquire() as conn:
        await sent(conn)
        order = await pipeline.load(conn, accepted.order_id, streaming.table,
                                    streaming.cfg.orders)
        assert await pipeline.lift(conn, order) == CHUNK
    assert await _step(streaming) == pipeline.Chunk(accepted.order_id, 0, finished=True)
    assert await kinds(pool, accepted.order_id) == sorted(
        [(t, 1, "order") for t in tokens[:CHUNK]]
        + [(t, 1, "order_lifted") for t in tokens[:CHUNK]])


async def _waiting_on(pool: asyncpg.Pool, statement: str) -> bool:
    return bool(await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE $1", statement + "%"))


async def test_an_amendment_waits_for_a_chunk_in_progress(
        pool: asyncpg.Pool, streaming: Context) -> None:
    """A chunk in progress holds its order: an amendment made meanwhile waits for it, then
    replaces what it wrote like any unsent push (no device keeps the old version beside the
    new one), and the fan-out ends at its next step."""
    tokens = await _devices(pool, streaming.points, 8)
    accepted = await _accept(streaming)
    order = await pipeline.load(pool, accepted.order_id, streaming.table, streaming.cfg.orders)
    async with pool.acquire() as blocker, pool.acquire() as amending:
        tx = blocker.transaction()
        await tx.start()
        # A device of the next chunk held (as an erasure holds it): the chunk stops half-way.
        await blocker.execute("SELECT FROM devices WHERE push_token = $1 FOR UPDATE",
                              tokens[CHUNK])
        chunk = asyncio.create_task(_step(streaming))

        async def chunk_waits() -> bool:
            return await _waiting_on(pool, "SELECT id, platform, locale FROM devices")
        await wait_for(chunk_waits, "the chunk to wait for the held device")
        amend = asyncio.create_task(pipeline.amend(
            amending, streaming.points, order, spec(streaming.points, level=5)))

        async def amend_waits() -> bool:
            return await _waiting_on(pool, "UPDATE orders SET version")
        await wait_for(amend_waits, "the amendment to wait for the chunk")
        await tx.rollback()
        assert await asyncio.wait_for(chunk, 10) == pipeline.Chunk(accepted.order_id, CHUNK,
                                                                   finished=False)
        await asyncio.wait_for(amend, 10)
    assert await _step(streaming) == pipeline.Chunk(accepted.order_id, 0, finished=True)
    assert await kinds(pool, accepted.order_id) == [(t, 2, "order") for t in tokens]


async def test_the_runner_writes_a_fan_out_once_its_order_commits(
        pool: asyncpg.Pool, streaming: Context) -> None:
    """A running runner is woken by the commit and writes the whole fan-out by itself."""
    tokens = await _devices(pool, streaming.points, 10)
    stop = asyncio.Event()
    runner = fanout.Runner(streaming)
    running = asyncio.create_task(runner.run(stop))
    try:
        accepted = await _accept(streaming)

        async def all_written() -> bool:
            return len(await kinds(pool, accepted.order_id)) == len(tokens)
        await wait_for(all_written, "the runner to write every device")
        assert await _left(pool) == []
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert await kinds(pool, accepted.order_id) == [(t, 1, "order") for t in tokens]


async def test_an_exercise_streams_to_drill_devices_only(pool: asyncpg.Pool,
                                                         streaming: Context) -> None:
    """The chunks of an exercise keep to the devices enrolled in drills."""
    tokens = await _devices(pool, streaming.points, 8)
    drill = tokens[1::2]
    await pool.execute("UPDATE devices SET drill = true WHERE push_token = ANY($1::text[])",
                       drill)
    async with pool.acquire() as conn, conn.transaction():
        accepted = await pipeline.accept(conn, streaming.points, spec(streaming.points),
                                         exercise=True, chunk=2)
    assert accepted.devices == len(drill)
    await fanout.Runner(streaming).drain()
    assert await kinds(pool, accepted.order_id) == [(t, 1, "order") for t in drill]


async def test_a_fan_out_that_fails_is_set_aside_and_the_others_go_on(
        pool: asyncpg.Pool, streaming: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk that fails for another reason than the database (a bug) sets its fan-out aside
    for a lease and raises; the next fan-out is written meanwhile, and the failed one is tried
    again once its lease has passed."""
    await _devices(pool, streaming.points, 8)
    broken = await _accept(streaming)
    fine = await _accept(streaming)
    real = pipeline.load

    async def load(conn: object, order_id: object, *args: object) -> object:
        if order_id == broken.order_id:
            raise RuntimeError("cannot load this order")
        return await real(conn, order_id, *args)  # type: ignore[arg-type]
    monkeypatch.setattr(pipeline, "load", load)
    with pytest.raises(RuntimeError, match="cannot load"):
        await _step(streaming)
    assert await pool.fetchval("SELECT owner FROM fanouts WHERE order_id = $1",
                               broken.order_id) == pipeline.FANOUT_SET_ASIDE
    step = await _step(streaming)
    assert step is not None and step.order_id == fine.order_id and step.written == CHUNK
    monkeypatch.setattr(pipeline, "load", real)
    runner = fanout.Runner(streaming, owner="runner")
    assert await runner.drain() == 2  # the rest of the fine one; the broken one waits
    assert await _left(pool) == [(0, 5, pipeline.FANOUT_SET_ASIDE)]
    await pool.execute("UPDATE fanouts SET lease_until = now() - interval '1 second'")
    assert await runner.drain() == 5
    assert len(await kinds(pool, broken.order_id)) == len(await kinds(pool, fine.order_id)) == 8


async def test_the_order_says_how_many_devices_are_still_to_queue(
        pool: asyncpg.Pool, streaming: Context) -> None:
    """GET /v1/staff/orders/{id} counts the devices a streamed fan-out has still to queue
    (`queuing`), down to 0 once it is written: the order's counts grow as chunks are queued,
    while its version was matched with every device from the start."""
    await _devices(pool, streaming.points, 8)
    viewer = {"Authorization": f"Bearer {await staff.create(pool, 'viewer')}"}
    client = TestClient(TestServer(routes.build_app(streaming)))
    await client.start_server()
    try:
        accepted = await _accept(streaming)
        seen = []
        for _ in range(3):
            r = await client.get(f"/v1/staff/orders/{accepted.order_id}", headers=viewer)
            assert r.status == 200
            body = await r.json()
            seen.append((body["queuing"], body["matched"], body["pending"],
                         body["versions"][0]["matched"]))
            await _step(streaming)
    finally:
        await client.close()
    assert seen == [(5, 3, 3, 8), (2, 6, 6, 8), (0, 8, 8, 8)]
