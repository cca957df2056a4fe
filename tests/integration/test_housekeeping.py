"""Housekeeping jobs on a real PostgreSQL: each does its job, and nothing more."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import shapely
from aiohttp.test_utils import TestClient

from alertd import app, devices, housekeeping, idempotency, inbox, pipeline, points, scheduler
from alertd.context import Context
from alertd.ingest import cap_intake, quarantine
from tests import capgen
from tests.integration.test_pipeline import NORTH, SQUARE, device_at, sent, spec


def _ctx(c: Context, now: datetime | None = None) -> scheduler.JobContext:
    now = now or datetime.now(UTC)
    return scheduler.JobContext(c.pool, c.cfg, now, now, "test")


async def _order(c: Context, area: Any = SQUARE) -> uuid.UUID:
    async with c.pool.acquire() as conn:
        accepted = await pipeline.accept(conn, c.points, spec(c.points, area))
    return accepted.order_id


async def _states(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT v.push_token, d.state FROM deliveries d"
                            " JOIN devices v ON v.id = d.device_id")
    return {r[0]: r[1] for r in rows}


async def test_expire_orders(context: Context, api: TestClient) -> None:
    """Only an active order past its expiry becomes expired; its unsent pushes are cancelled,
    its sent ones stay and the inbox shows the state; staff list it as expired and cannot lift
    it; other orders are untouched."""
    pool = context.pool
    await device_at(pool, context.points, "got-it", 37.75, 140.45)
    late = await device_at(pool, context.points, "late", 37.76, 140.46)
    await device_at(pool, context.points, "north", 37.85, 140.45)
    old = await _order(context)
    await pool.execute("UPDATE deliveries d SET state = 'sent' FROM devices v"
                       " WHERE v.id = d.device_id AND v.push_token = 'got-it'")
    fresh = await _order(context, NORTH)
    lifted = await _order(context, NORTH)
    async with pool.acquire() as conn:
        await pipeline.lift(conn, await pipeline.load(conn, lifted, context.table,
                                                      context.cfg.orders))
    await pool.execute("UPDATE order_versions SET expires_at = now() - interval '1 minute'"
                       " WHERE order_id = ANY($1::uuid[])", [old, lifted])
    done = await housekeeping.expire_orders(_ctx(context))
    assert done == {"orders_expired": 1, "pushes_cancelled": 1}
    states = dict(await pool.fetch("SELECT id, state FROM orders"))
    assert states == {old: "expired", fresh: "active", lifted: "lifted"}
    per_device = await pool.fetch(
        "SELECT v.push_token, d.kind, d.state, d.reason FROM deliveries d JOIN devices v"
        " ON v.id = d.device_id WHERE d.order_id = $1 ORDER BY v.push_token", old)
    assert [tuple(r) for r in per_device] == [
        ("got-it", "order", "sent", None), ("late", "order", "cancelled", "order expired")]
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE order_id = $1"
                               " AND state = 'pending'", fresh) == 1
    [entry] = await inbox.entries(pool, (await _device_id(pool, "got-it")))
    assert entry.order_state == "expired"
    assert await inbox.entries(pool, late.id) == []  # its push was never sent
    assert await housekeeping.expire_orders(_ctx(context)) == {
        "orders_expired": 0, "pushes_cancelled": 0}
    token = await _staff(pool)
    r = await api.get("/v1/staff/orders?state=expired", headers=token)
    assert [o["id"] for o in (await r.json())["orders"]] == [str(old)]
    r = await api.post(f"/v1/staff/orders/{old}/lift", headers=token)
    assert (r.status, (await r.json())["error"]) == (409, "the order has expired")


async def _device_id(pool: asyncpg.Pool, token: str) -> uuid.UUID:
    found: uuid.UUID = await pool.fetchval("SELECT id FROM devices WHERE push_token = $1", token)
    return found


async def _staff(pool: asyncpg.Pool) -> dict[str, str]:
    from alertd import staff

    async with pool.acquire() as conn:
        token = await staff.create(conn, "operator", "")
    return {"Authorization": f"Bearer {token}"}


async def test_expire_cap_waiting(context: Context) -> None:
    """A CAP update kept longer than cap_waiting_max_s goes to the quarantine with the reason;
    a younger one keeps waiting, and nothing else changes."""
    for name in ("old", "young"):
        got = await cap_intake.ingest(context, capgen.message(
            f"{name}-2", msg_type="Cancel", references=(f"{name}-1",)), "test-feed")
        assert got.outcome == "waiting"
    await context.pool.execute("UPDATE cap_waiting SET received_at = now() - interval '2 days'"
                               " WHERE identifier = 'old-2'")
    before = await context.pool.fetchval("SELECT count(*) FROM cap_messages")
    done = await cap_intake.expire_waiting_job(_ctx(context))
    assert done == {"cap_messages_expired": 1}
    assert [r["identifier"] for r in await context.pool.fetch(
        "SELECT identifier FROM cap_waiting")] == ["young-2"]
    [item] = await quarantine.listing(context.pool)
    assert item["source"] == "test-feed"
    assert "referenced message never received" in item["reason"]
    assert "old-1" in item["reason"] and "<identifier>old-2</identifier>" in item["raw"]
    assert await context.pool.fetchval("SELECT count(*) FROM cap_messages") == before
    assert await cap_intake.expire_waiting_job(_ctx(context)) == {"cap_messages_expired": 0}


async def test_drop_stale_locations(context: Context) -> None:
    """A current location older than location_max_age_s is dropped and the point index
    forgets it; fresh locations and watched places, however old, stay."""
    pool = context.pool
    stale = await device_at(pool, context.points, "stale", 37.75, 140.45)
    fresh = await device_at(pool, context.points, "fresh", 37.76, 140.46)
    await devices.put_place(pool, stale, devices.Place("home", "home", 37.85, 140.45, None))
    await pool.execute("UPDATE device_points SET updated_at = now() - interval '73 hours'"
                       " WHERE device_id = $1", stale.id)
    await points.catch_up(context.points)
    area = shapely.box(140.40, 37.70, 140.55, 37.80)
    assert set(context.points.match(area).seqs.tolist()) == {stale.seq, fresh.seq}
    done = await housekeeping.drop_stale_locations(_ctx(context))
    assert done == {"locations_dropped": 1}
    rows = await pool.fetch("SELECT device_id, slot FROM device_points ORDER BY 1, 2")
    assert sorted((r[0], r[1]) for r in rows) == sorted([(stale.id, 1), (fresh.id, 0)])
    await points.catch_up(context.points)
    assert context.points.match(area).seqs.tolist() == [fresh.seq]


async def test_erase_idle_devices_and_last_seen(context: Context) -> None:
    """A device unseen for device_max_idle_s is erased with all it owns; a device seen is
    kept; authenticating notes the device seen at most once a day."""
    pool = context.pool
    idle_id, idle_secret = await devices.register(pool, "ios", "idle", "ja")
    seen_id, seen_secret = await devices.register(pool, "android", "seen", "ja")
    for device_id in (idle_id, seen_id):
        dev = await devices.get(pool, device_id)
        assert dev is not None
        await devices.set_location(pool, dev, 37.75, 140.45, None)
        async with pool.acquire() as conn, conn.transaction():
            await idempotency.claim(conn, device_id, "k", {}, column="device_id")
    await points.catch_up(context.points)
    await _order(context)
    await pool.execute("UPDATE devices SET last_seen_at = now() - interval '401 days'")
    assert await devices.authenticate(pool, seen_secret) is not None
    assert await pool.fetchval("SELECT last_seen_at > now() - interval '1 minute' FROM devices"
                               " WHERE id = $1", seen_id)
    await pool.execute("UPDATE devices SET last_seen_at = now() - interval '1 hour'"
                       " WHERE id = $1", seen_id)
    assert await devices.authenticate(pool, seen_secret) is not None
    assert await pool.fetchval("SELECT last_seen_at < now() - interval '59 minutes'"
                               " FROM devices WHERE id = $1", seen_id)
    done = await housekeeping.erase_idle_devices(_ctx(context))
    assert done == {"devices_erased": 1}
    assert await devices.authenticate(pool, idle_secret) is None
    for table in ("device_points", "deliveries", "idempotency_keys"):
        owners = await pool.fetch(f"SELECT DISTINCT device_id FROM {table}")
        assert [r[0] for r in owners] == [seen_id], table


async def test_purge(context: Context) -> None:
    """Past their retention, finished deliveries of orders no longer active, idempotency keys
    and quarantined items are deleted; younger ones, unfinished ones and those of an active
    order stay."""
    pool = context.pool
    hk = context.cfg.housekeeping
    for token in ("a", "b", "c"):
        await device_at(pool, context.points, token, 37.75, 140.45)
    await _order(context)  # active: its pushes stay, however old
    gone = await _order(context)
    async with pool.acquire() as conn:
        await sent(conn)
        await pipeline.lift(conn, await pipeline.load(conn, gone, context.table,
                                                      context.cfg.orders))
    await pool.execute("UPDATE deliveries d SET state = 'sent' FROM devices v"
                       " WHERE v.id = d.device_id AND v.push_token <> 'c'")
    old = timedelta(seconds=hk.deliveries_retention_s + 60)
    # Of the lifted order: a's push long done, b's long done but only just finished, c's
    # lifting still pending; the active order's pushes are all long done.
    await pool.execute("UPDATE deliveries SET created_at = now() - $1::interval,"
                       " done_at = now() - $1::interval WHERE state <> 'pending'", old)
    await pool.execute("UPDATE deliveries d SET done_at = now() FROM devices v"
                       " WHERE v.id = d.device_id AND v.push_token = 'b' AND d.order_id = $1"
                       " AND d.kind = 'order'", gone)
    await pool.execute("UPDATE deliveries d SET created_at = now() - $1::interval"
                       " FROM devices v WHERE v.id = d.device_id"
                       " AND v.push_token = 'c' AND d.kind = 'order_lifted'", old)
    expected = {r[0] for r in await pool.fetch(
        "SELECT d.id FROM deliveries d JOIN devices v ON v.id = d.device_id"
        " WHERE d.order_id = $1 AND d.state <> 'pending' AND NOT (v.push_token = 'b'"
        " AND d.kind = 'order')", gone)}
    assert len(expected) == 4  # a: order, lifted; b: lifted; c: order; (c's lifting pending)
    staff_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        for key in ("old", "new"):
            await idempotency.claim(conn, staff_id, key, {})
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - $1::interval"
                       " WHERE key = 'old'", timedelta(seconds=hk.idempotency_retention_s + 60))
    for source in ("old", "new"):
        await quarantine.put(pool, source, b"x", "bad")
    await pool.execute("UPDATE quarantine SET received_at = now() - $1::interval"
                       " WHERE source = 'old'", timedelta(seconds=hk.quarantine_retention_s + 60))
    before = {r[0] for r in await pool.fetch("SELECT id FROM deliveries")}
    small = _ctx(context)
    done = await housekeeping.purge(small)
    assert done == {"deliveries_purged": 4, "idempotency_keys_purged": 1,
                    "quarantine_purged": 1}
    after = {r[0] for r in await pool.fetch("SELECT id FROM deliveries")}
    assert after == before - expected
    assert [r[0] for r in await pool.fetch("SELECT key FROM idempotency_keys")] == ["new"]
    assert [r[0] for r in await pool.fetch("SELECT source FROM quarantine")] == ["new"]
    assert await housekeeping.purge(small) == {
        "deliveries_purged": 0, "idempotency_keys_purged": 0, "quarantine_purged": 0}


async def test_purge_walks_in_batches(context: Context) -> None:
    """With a batch of 2, a purge of 7 old quarantined items deletes them all, batch by batch,
    and stops at the young ones."""
    import dataclasses

    cfg = dataclasses.replace(context.cfg, housekeeping=dataclasses.replace(
        context.cfg.housekeeping, batch_size=2))
    for i in range(9):
        await quarantine.put(context.pool, f"s{i}", b"x", "bad")
    await context.pool.execute("UPDATE quarantine SET received_at = now() - interval '1000 days'"
                               " WHERE source NOT IN ('s7', 's8')")
    job = scheduler.JobContext(context.pool, cfg, datetime.now(UTC), datetime.now(UTC), "t")
    done = await housekeeping.purge(job)
    assert done["quarantine_purged"] == 7
    assert [r[0] for r in await context.pool.fetch(
        "SELECT source FROM quarantine ORDER BY id")] == ["s7", "s8"]


def test_every_job_is_listed() -> None:
    """The scheduler's jobs are the weekly tips and the five housekeeping jobs, by name."""
    from tests.conftest import DEFAULTS

    assert [j.name for j in app.scheduled_jobs(DEFAULTS)] == [
        "weekly_tips", "expire_orders", "expire_cap_waiting", "drop_stale_locations",
        "erase_idle_devices", "purge"]
