"""Sheet places in matching, on a real PostgreSQL: every place of every live sheet is a point
of its device (migration 0014), still one push per device per order version."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import pytest
import shapely
from aiohttp.test_utils import TestClient

from alertd import db, devices, errors, openings, orders, pipeline, points, settings, staff
from alertd.shelters import StoredShelter
from geo import index as geo_index
from geo import municipalities
from sheets import store, validate
from sheets.errors import TooManySheets
from sheets.merge import IfMatch

CFG = settings.load(environ={})
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
NORTH = {"type": "Polygon", "coordinates": [[
    [140.40, 37.80], [140.55, 37.80], [140.55, 37.90], [140.40, 37.90], [140.40, 37.80]]]}
INSIDE = (37.75, 140.47)  # (lat, lon) in SQUARE
IN_NORTH = (37.85, 140.47)
OUTSIDE = (37.10, 140.90)  # いわき市, far from both


def spec(live: points.Points, area: Any = SQUARE, level: int = 4) -> orders.OrderSpec:
    """An order spec for the area."""
    return orders.parse_spec({"level": level, "hazard": "flood", "area": area,
                              "headline": {"ja": "避難"}}, live.table, CFG.orders,
                             datetime.now(UTC))


def sheet_doc(*at: tuple[float, float]) -> dict[str, Any]:
    """A sheet document whose home is the first point and other places the rest."""
    kinds = ["home"] + ["other"] * (len(at) - 1)
    return {"name": "家", "places": [{"kind": k, "lat": lat, "lon": lon}
                                     for k, (lat, lon) in zip(kinds, at, strict=True)]}


async def device(pool: asyncpg.Pool, token: str,
                 location: tuple[float, float] | None = None) -> devices.Device:
    """A registered device, located where given."""
    device_id, _ = await devices.register(pool, "ios", token, "ja")
    dev = await devices.get(pool, device_id)
    assert dev is not None
    if location is not None:
        await devices.set_location(pool, dev, *location, None)
    return dev


async def put_sheet(pool: asyncpg.Pool, dev: devices.Device, *at: tuple[float, float],
                    sheet_id: uuid.UUID | None = None, version: int | None = None) -> uuid.UUID:
    """Write a sheet with places at these points (replacing `version` when given)."""
    sid = sheet_id or uuid.uuid4()
    if_match = IfMatch(versions=frozenset({version})) if version else None
    async with pool.acquire() as conn:
        await store.put(conn, dev.id, sid, validate.parse(sheet_doc(*at)), if_match)
    return sid


async def kinds(pool: asyncpg.Pool, order_id: uuid.UUID) -> list[tuple[str, int, str]]:
    """(push token, version, kind) of every delivery of the order that was not cancelled."""
    rows = await pool.fetch(
        "SELECT v.push_token, d.version, d.kind FROM deliveries d JOIN devices v"
        " ON v.id = d.device_id WHERE d.order_id = $1 AND d.state <> 'cancelled'"
        " ORDER BY 1, 2, 3", order_id)
    return [(r[0], r[1], r[2]) for r in rows]


async def sheet_slots(pool: asyncpg.Pool, dev: devices.Device) -> list[int]:
    """The device_points slots the device's sheet places hold, in order."""
    rows = await pool.fetch("SELECT slot FROM device_points WHERE device_id = $1"
                            " AND sheet_id IS NOT NULL ORDER BY slot", dev.id)
    return [r["slot"] for r in rows]


def tiny(lat: float, lon: float) -> shapely.Geometry:
    """A box around one point and nothing else."""
    return shapely.box(lon - 1e-9, lat - 1e-9, lon + 1e-9, lat + 1e-9)


async def test_a_sheet_home_in_the_area_notifies_its_device_once(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A device located outside the area whose sheet's home is inside gets the order, once,
    and the match says it was reached through a sheet place."""
    dev = await device(pool, "home-inside", OUTSIDE)
    await put_sheet(pool, dev, INSIDE)
    await points.catch_up(live)
    match = live.match(spec(live).area.geometry)
    assert match.seqs.tolist() == [dev.seq]
    assert match.sheet_seqs().tolist() == [dev.seq]
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live))
    assert accepted.devices == 1
    assert await kinds(pool, accepted.order_id) == [("home-inside", 1, "order")]


async def test_location_place_and_sheet_places_inside_notify_once(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A device whose location, a watched place and places of two sheets all lie in the area
    gets one push; a device reached only by its location is not among the sheet matches."""
    both = await device(pool, "everything", INSIDE)
    await devices.put_place(pool, both, devices.Place("p", "p", 37.76, 140.46, None))
    await put_sheet(pool, both, (37.751, 140.471), (37.752, 140.472))
    await put_sheet(pool, both, (37.753, 140.473), OUTSIDE)
    plain = await device(pool, "location-only", (37.74, 140.45))
    await points.catch_up(live)
    match = live.match(spec(live).area.geometry)
    assert match.seqs.tolist() == sorted([both.seq, plain.seq])
    assert match.sheet_seqs().tolist() == [both.seq]
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live))
    assert accepted.devices == 2
    assert await kinds(pool, accepted.order_id) == [
        ("everything", 1, "order"), ("location-only", 1, "order")]


async def test_deleted_moved_and_erased_sheets_are_no_longer_matched(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A sheet whose home moves out, a deleted sheet and an erased device's sheet stop
    matching as soon as the write is committed."""
    square = spec(live).area.geometry
    dev = await device(pool, "mover")
    sid = await put_sheet(pool, dev, INSIDE)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == [dev.seq]
    await put_sheet(pool, dev, OUTSIDE, sheet_id=sid, version=1)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == []
    await put_sheet(pool, dev, INSIDE, sheet_id=sid, version=2)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == [dev.seq]
    async with pool.acquire() as conn:
        await store.delete(conn, dev.id, sid, None)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == []
    assert await sheet_slots(pool, dev) == []
    await put_sheet(pool, dev, INSIDE)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == [dev.seq]
    await devices.delete(pool, dev.id)
    await points.catch_up(live)
    assert live.match(square).seqs.tolist() == [] and len(live.index) == 0


async def test_ten_sheets_of_five_places_are_all_indexed(
        pool: asyncpg.Pool, live: points.Points, table: municipalities.Table) -> None:
    """Ten sheets of five places each take slots 4-53, every place matches on its own (live
    and after a reload), the location and places keep theirs, and a freed block is reused."""
    dev = await device(pool, "fifty", OUTSIDE)
    await devices.put_place(pool, dev, devices.Place("p", "p", None, None, "072010"))
    at = [[(37.2 + 0.01 * s, 140.1 + 0.01 * p) for p in range(5)] for s in range(10)]
    sids = [await put_sheet(pool, dev, *places) for places in at]
    assert await sheet_slots(pool, dev) == list(range(4, 54))
    # Sheet places are neither listed as watched places nor count against the 3 of them.
    assert [p.place_id for p in await devices.places(pool, dev)] == ["p"]
    assert await devices.put_place(pool, dev, devices.Place("q", "q", 37.0, 140.0, None))
    assert await devices.put_place(pool, dev, devices.Place("r", "r", 37.0, 140.1, None))
    with pytest.raises(errors.Conflict):
        await devices.put_place(pool, dev, devices.Place("s", "s", 37.0, 140.2, None))
    assert await devices.delete_place(pool, dev, "q") and await devices.delete_place(pool, dev, "r")
    assert len(await devices.watched(pool, dev)) == 52  # location, place, 50 sheet places
    async with pool.acquire() as conn:
        with pytest.raises(TooManySheets):
            await store.put(conn, dev.id, uuid.uuid4(), validate.parse(sheet_doc(INSIDE)), None)
    await points.catch_up(live)
    fresh = points.Points(index=points.new_index(CFG), table=table)
    async with pool.acquire() as conn:
        await points.load(conn, fresh)
    for index in (live, fresh):
        assert len(index.index) == 51  # the location and 50 sheet places
        for s, places in enumerate(at):
            for p, (lat, lon) in enumerate(places):
                match = index.match(tiny(lat, lon), ("999999",))
                assert match.keys.tolist() == [points.key(dev.seq, points.sheet_slot(s, p))]
                assert match.sheet_seqs().tolist() == [dev.seq]
        assert index.watchers["072010"] == {points.key(dev.seq, 1)}
    async with pool.acquire() as conn:
        await store.delete(conn, dev.id, sids[3], None)
    await put_sheet(pool, dev, INSIDE)  # one place, in the block the deleted sheet freed
    assert await sheet_slots(pool, dev) == [s for s in range(4, 54) if not 20 <= s <= 23]
    await points.catch_up(live)
    match = live.match(tiny(*INSIDE), ("999999",))
    assert match.keys.tolist() == [points.key(dev.seq, points.sheet_slot(3, 0))]
    assert live.match(tiny(*at[3][1])).seqs.tolist() == []


async def test_a_sheet_put_through_the_api_is_matched_by_the_next_order(
        api: TestClient, pool: asyncpg.Pool) -> None:
    """An order issued right after a sheet PUT answered reaches the sheet's household (the
    order's catch-up covers the sheet's points), and one issued after DELETE does not."""
    r = await api.post("/v1/devices", json={"platform": "ios", "push_token": "api-sheet",
                                            "locale": "ja"})
    me = {"Authorization": f"Bearer {(await r.json())['device_secret']}"}
    assert (await api.put("/v1/me/location", json={"lat": OUTSIDE[0], "lon": OUTSIDE[1]},
                          headers=me)).status == 204
    staff_auth = {"Authorization": f"Bearer {await staff.create(pool, 'operator')}"}
    order = {"level": 4, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難"}}
    for _ in range(3):
        sid = uuid.uuid4()
        r = await api.put(f"/v1/me/sheets/{sid}", json=sheet_doc(INSIDE), headers=me)
        assert r.status == 201
        r = await api.post("/v1/staff/orders", json=order, headers=staff_auth)
        assert (r.status, (await r.json())["devices"]) == (201, 1)
        assert (await api.delete(f"/v1/me/sheets/{sid}", headers=me)).status == 204
        r = await api.post("/v1/staff/orders", json=order, headers=staff_auth)
        assert (r.status, (await r.json())["devices"]) == (201, 0)


async def test_amend_and_lift_treat_sheet_places_like_any_point(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """Moving an order's area lifts it for a household whose only point in the old area was
    a sheet place and orders one whose sheet place is in the new area; a raise updates and a
    lift reaches exactly the holders."""
    south = await device(pool, "south", OUTSIDE)
    await put_sheet(pool, south, INSIDE)
    north = await device(pool, "north", OUTSIDE)
    await put_sheet(pool, north, OUTSIDE, IN_NORTH)
    await device(pool, "bystander", OUTSIDE)
    await points.catch_up(live)
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live, SQUARE, 3))
        await conn.execute("UPDATE deliveries SET state = 'sent'")
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.amend(conn, live, order, spec(live, NORTH, 3))
        await conn.execute("UPDATE deliveries SET state = 'sent'")
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.amend(conn, live, order, spec(live, NORTH, 4))
        await conn.execute("UPDATE deliveries SET state = 'sent'")
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.lift(conn, order)
    assert await kinds(pool, accepted.order_id) == [
        ("north", 2, "order"), ("north", 3, "order_lifted"), ("north", 3, "order_update"),
        ("south", 1, "order"), ("south", 2, "order_lifted"),
    ]


async def test_a_shelter_opening_near_an_order_counts_sheet_places(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A shelter opening inside an active order reaches a household whose sheet place (not
    its location) is in the order's area within reach of the shelter."""
    dev = await device(pool, "near-shelter", OUTSIDE)
    await put_sheet(pool, dev, (37.751, 140.471))
    await device(pool, "far-away", OUTSIDE)
    await points.catch_up(live)
    async with pool.acquire() as conn:
        await pipeline.accept(conn, live, spec(live))
        shelter = StoredShelter(id="s1", name="小学校", address="", lat=37.75, lon=140.47,
                                hazards=("flood",), capacity=None, status="open",
                                crowding=None, evacuees=None, status_at=None, openings=1)
        found = await openings.nearby_in_orders(conn, live, shelter, CFG)
    assert found.tolist() == [dev.seq]


async def test_migration_back_fills_the_places_of_live_sheets(
        empty_db_url: str, table: municipalities.Table) -> None:
    """Migration 0014 gives every live sheet written before it its block of points (a
    tombstone none), and a reload of the index matches them."""
    conn = await db.connect_one(empty_db_url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY,"
                           " applied_at timestamptz NOT NULL DEFAULT now())")
        for version, sql in db.migration_files():
            if version >= "0014":
                break
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        dev = await conn.fetchrow(
            "INSERT INTO devices (id, platform, push_token, secret_hash) VALUES"
            " (gen_random_uuid(), 'ios', 't', '\\x00') RETURNING id, seq")
        docs = [sheet_doc(INSIDE, OUTSIDE), None, sheet_doc(IN_NORTH)]
        for doc in docs:
            await conn.execute(
                "INSERT INTO sheets (device_id, id, version, deleted, body)"
                " VALUES ($1, gen_random_uuid(), 1, $2, $3::jsonb)", dev["id"], doc is None,
                None if doc is None else validate.parse(doc).as_json())
        assert "0014_sheet_points" in await db.migrate(conn)
        rows = await conn.fetch("SELECT slot FROM device_points ORDER BY slot")
        assert [r["slot"] for r in rows] == [4, 5, 9]
        fresh = points.Points(index=geo_index.PointIndex(CFG.geo.cell_deg), table=table)
        await points.load(conn, fresh)
        found = fresh.match(spec(fresh).area.geometry)
        assert found.keys.tolist() == [points.key(dev["seq"], 4)]
        assert np.array_equal(found.sheet_seqs(), [dev["seq"]])
    finally:
        await conn.close()
