"""The order pipeline on a real PostgreSQL: accept, amend and lift decide who gets what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import shapely

from alertd import devices, orders, pipeline, points, progress, settings
from geo import index as geo_index
from geo import municipalities

CFG = settings.load(environ={})
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
NORTH = {"type": "Polygon", "coordinates": [[
    [140.40, 37.80], [140.55, 37.80], [140.55, 37.90], [140.40, 37.90], [140.40, 37.80]]]}


def spec(live: points.Points, area: Any = SQUARE, level: int = 4) -> orders.OrderSpec:
    """An order spec for the area."""
    return orders.parse_spec({"level": level, "hazard": "flood", "area": area,
                              "headline": {"ja": "避難"}}, live.table, CFG.orders,
                             datetime.now(UTC))


async def device_at(pool: asyncpg.Pool, live: points.Points, token: str, lat: float,
                    lon: float) -> devices.Device:
    """A registered device with a current location, visible to the index."""
    device_id, _ = await devices.register(pool, "ios", token, "ja")
    dev = await devices.get(pool, device_id)
    assert dev is not None
    await devices.set_location(pool, dev, lat, lon, None)
    await points.catch_up(live)
    return dev


async def sent(conn: asyncpg.Connection) -> None:
    """Mark every queued push as delivered, as the dispatcher would."""
    await conn.execute("UPDATE deliveries SET state = 'sent' WHERE state = 'pending'")


async def kinds(pool: asyncpg.Pool, order_id: uuid.UUID) -> list[tuple[str, int, str]]:
    """(push token, version, kind) of every delivery of the order that was not cancelled."""
    rows = await pool.fetch(
        "SELECT v.push_token, d.version, d.kind FROM deliveries d JOIN devices v"
        " ON v.id = d.device_id WHERE d.order_id = $1 AND d.state <> 'cancelled'"
        " ORDER BY 1, 2, 3", order_id)
    return [(r[0], r[1], r[2]) for r in rows]


async def test_same_source_key_is_accepted_once(pool: asyncpg.Pool,
                                                live: points.Points) -> None:
    """Accepting the same message twice creates one order and one delivery per device."""
    await device_at(pool, live, "a", 37.75, 140.45)
    async with pool.acquire() as conn:
        first = await pipeline.accept(conn, live, spec(live), source="cap", source_key="k1")
        again = await pipeline.accept(conn, live, spec(live), source="cap", source_key="k1")
    assert first.created and not again.created
    assert again.order_id == first.order_id and again.devices == 1
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 1


async def test_a_device_gets_one_push_per_version(pool: asyncpg.Pool,
                                                  live: points.Points) -> None:
    """A device whose location and watched places all match gets one delivery."""
    dev = await device_at(pool, live, "multi", 37.75, 140.45)
    await devices.put_place(pool, dev, devices.Place("home", "home", 37.76, 140.46, None))
    await devices.put_place(pool, dev, devices.Place("city", "city", None, None, "072010"))
    await points.catch_up(live)
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live))
    assert accepted.devices == 1
    assert await kinds(pool, accepted.order_id) == [("multi", 1, "order")]


async def test_watched_municipality_matches_intersecting_polygon(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A device watching 福島市 is reached by a polygon inside the city, not by one far away."""
    device_id, _ = await devices.register(pool, "ios", "watcher", "ja")
    dev = await devices.get(pool, device_id)
    assert dev is not None
    await devices.put_place(pool, dev, devices.Place("p", "parents", None, None, "072010"))
    await points.catch_up(live)
    far = {"circle": {"lat": 37.05, "lon": 140.89, "radius_m": 2000}}  # いわき市
    async with pool.acquire() as conn:
        near_order = await pipeline.accept(conn, live, spec(live))
        far_order = await pipeline.accept(conn, live, spec(live, far))
    assert near_order.devices == 1 and far_order.devices == 0


async def test_amend_shrinks_grows_and_raises(pool: asyncpg.Pool, live: points.Points) -> None:
    """Moving the area lifts it for devices left out, orders new ones; a raise updates holders."""
    await device_at(pool, live, "south", 37.75, 140.45)
    await device_at(pool, live, "north", 37.85, 140.45)
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live, SQUARE, 3))
        await sent(conn)
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.amend(conn, live, order, spec(live, NORTH, 3))
        await sent(conn)
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.amend(conn, live, order, spec(live, NORTH, 4))
    assert await kinds(pool, accepted.order_id) == [
        ("north", 2, "order"), ("north", 3, "order_update"),
        ("south", 1, "order"), ("south", 2, "order_lifted"),
    ]


async def test_amend_without_raise_sends_nothing_to_holders(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A text change (same level) creates a version but no push for devices already told."""
    await device_at(pool, live, "holder", 37.75, 140.45)
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live))
        await sent(conn)
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        new = orders.parse_patch({"headline": {"ja": "更新"}}, order.spec, live.table,
                                 CFG.orders, datetime.now(UTC))
        v2 = await pipeline.amend(conn, live, order, new)
    assert v2.version == 2
    assert await kinds(pool, accepted.order_id) == [("holder", 1, "order")]


async def test_lift_cancels_unsent_and_tells_holders(pool: asyncpg.Pool,
                                                     live: points.Points) -> None:
    """Lifting cancels order pushes not yet sent and lifts it for the devices that got it."""
    await device_at(pool, live, "got-it", 37.75, 140.45)
    await device_at(pool, live, "not-yet", 37.74, 140.44)
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live))
        await conn.execute(
            "UPDATE deliveries d SET state = 'sent' FROM devices v"
            " WHERE v.id = d.device_id AND v.push_token = 'got-it'")
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        told = await pipeline.lift(conn, order)
    assert told == 1
    rows = await pool.fetch(
        "SELECT v.push_token, d.kind, d.state FROM deliveries d JOIN devices v"
        " ON v.id = d.device_id ORDER BY 1, 2")
    assert [tuple(r) for r in rows] == [
        ("got-it", "order", "sent"), ("got-it", "order_lifted", "pending"),
        ("not-yet", "order", "cancelled"),
    ]
    counts = await progress.of_order(pool, accepted.order_id)
    assert (counts.sent, counts.cancelled, counts.lifted) == (1, 1, 1)


async def test_disabled_tokens_are_not_matched(pool: asyncpg.Pool, live: points.Points) -> None:
    """A device whose push token was refused gets no delivery rows."""
    dev = await device_at(pool, live, "dead", 37.75, 140.45)
    await pool.execute("UPDATE devices SET token_state = 'invalid' WHERE id = $1", dev.id)
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live))
    assert accepted.devices == 0


async def test_index_follows_moves_and_deletes(pool: asyncpg.Pool,
                                               live: points.Points) -> None:
    """Moving, clearing a location and deleting a device are reflected by the index."""
    dev = await device_at(pool, live, "mover", 37.75, 140.45)
    square = spec(live).area.geometry
    assert live.match(square).seqs.tolist() == [dev.seq]
    await devices.set_location(pool, dev, 37.0, 140.0, None)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == []
    await devices.set_location(pool, dev, 37.75, 140.45, None)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == [dev.seq]
    await devices.delete(pool, dev.id)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == []
    assert len(live.index) == 0


async def test_load_reads_every_point_exactly(pool: asyncpg.Pool,
                                              table: municipalities.Table) -> None:
    """Loading the index from the database (binary COPY) gives every point's key and exact
    coordinates, and the watched municipalities apart."""
    expected = {}
    for i in range(50):
        device_id, _ = await devices.register(pool, "ios", f"t{i}", "ja")
        dev = await devices.get(pool, device_id)
        assert dev is not None
        lat, lon = 37.0 + i * 0.0123456789, 140.0 + i * 0.0098765432
        await devices.set_location(pool, dev, lat, lon, None)
        expected[points.key(dev.seq, 0)] = (lon, lat)
        if i % 10 == 0:
            await devices.put_place(pool, dev, devices.Place("w", "w", None, None, "072010"))
    fresh = points.Points(index=geo_index.PointIndex(CFG.geo.cell_deg), table=table)
    async with pool.acquire() as conn:
        await points.load(conn, fresh)
    assert len(fresh.index) == 50
    everything = shapely.box(139, 36, 142, 39)
    assert sorted(fresh.index.match(everything).tolist()) == sorted(expected)
    assert len(fresh.watchers["072010"]) == 5
    assert all(k % points.SLOTS == 1 for k in fresh.watchers["072010"])
    key, (lon, lat) = next(iter(expected.items()))
    tiny = shapely.box(lon - 1e-12, lat - 1e-12, lon + 1e-12, lat + 1e-12)
    assert fresh.index.match(tiny).tolist() == [key]


def test_binary_copy_layout_is_checked() -> None:
    """A buffer that is not a binary COPY of four fields is refused, not misread."""
    with pytest.raises(ValueError, match="COPY"):
        points.parse_binary_copy(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + b"\x00\x03" + b"x" * 10)
    with pytest.raises(ValueError, match="COPY"):
        points.parse_binary_copy(b"not a copy at all, certainly not")


async def test_lift_reaches_holders_whose_update_is_still_queued(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A device that got the order, with a raise still queued, is told of the lifting; the
    queued update is cancelled rather than sent after the 解除."""
    await device_at(pool, live, "holder", 37.75, 140.45)
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live, SQUARE, 4))
        await sent(conn)
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.amend(conn, live, order, spec(live, SQUARE, 5))  # update stays pending
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        assert await pipeline.lift(conn, order) == 1
    assert await kinds(pool, accepted.order_id) == [
        ("holder", 1, "order"), ("holder", 2, "order_lifted")]


async def test_amend_replaces_unsent_pushes(pool: asyncpg.Pool, live: points.Points) -> None:
    """A version made before the first push went out replaces it: the device gets the new
    version once, and a device dropped before it was told gets nothing."""
    await device_at(pool, live, "stays", 37.75, 140.45)
    await device_at(pool, live, "dropped", 37.71, 140.41)
    smaller = {"type": "Polygon", "coordinates": [[
        [140.43, 37.73], [140.55, 37.73], [140.55, 37.80], [140.43, 37.80], [140.43, 37.73]]]}
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live, SQUARE, 4))
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.amend(conn, live, order, spec(live, smaller, 5))
    assert await kinds(pool, accepted.order_id) == [("stays", 2, "order")]
