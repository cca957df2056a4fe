"""Sync of the inbox and shelters on a real PostgreSQL: the commit-order proof, paging once
each, read state, cancelled entries, shelters near and named, cursor age, erasure, and cursors
that another node reads."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from alertd import db, positions, shelters, staff, sync
from alertd.api import routes
from alertd.context import Context
from alertd.delivery import outbox
from tests import described
from tests.waiting import wait_for

HOME = {"kind": "home", "lat": 37.75, "lon": 140.47}
FAR = (37.05, 140.89)  # Iwaki, about 90 km from HOME


async def register(api: TestClient) -> tuple[dict[str, str], uuid.UUID]:
    r = await api.post("/v1/devices", json={"platform": "ios", "push_token": uuid.uuid4().hex,
                                            "locale": "ja"})
    assert r.status == 201
    body = await r.json()
    return ({"Authorization": f"Bearer {body['device_secret']}"},
            uuid.UUID(body["device_id"]))


def row(device_id: uuid.UUID, n: int | str) -> outbox.NewDelivery:
    return outbox.NewDelivery(
        device_id=device_id, service="apns", kind="shelter_opened", title=f"t{n}",
        body=f"b{n}", expires_at=datetime.now(UTC) + timedelta(hours=1),
        alert_id=f"shelter-{n}", ref=f"test:{n}:{uuid.uuid4().hex}")


async def enqueue(pool: asyncpg.Pool, device_id: uuid.UUID, *names: int | str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, [row(device_id, n) for n in names])


async def settled(pool: asyncpg.Pool) -> None:
    """Wait until every transaction that began before now has ended (the sync horizon is
    past everything written so far)."""
    mark = await pool.fetchval("SELECT pg_current_xact_id()")
    await wait_for(lambda: pool.fetchval(
        "SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::xid8", mark), "the sync horizon")


async def sync_all(api: TestClient, me: dict[str, str], cursor: str | None = None,
                   limit: int = 100) -> tuple[list[dict[str, Any]], str]:
    """Every page from the cursor on until more is false: the pages and the last cursor."""
    pages = []
    for _ in range(100):
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        r = await api.get("/v1/me/sync", params=params, headers=me)
        assert r.status == 200, await r.text()
        await described.answer_conforms(r, "/v1/me/sync")  # the description holds for it
        page = await r.json()
        pages.append(page)
        cursor = page["cursor"]
        if not page["more"]:
            return pages, cursor
    raise AssertionError("sync never said more: false")


def titles(pages: list[dict[str, Any]]) -> list[str]:
    return [a.get("title", "deleted:" + a["id"]) for p in pages for a in p["alerts"]]


async def test_rows_that_commit_out_of_id_order_are_each_served_once(
        api: TestClient, pool: asyncpg.Pool) -> None:
    """A fan-out that takes the lower ids but commits after a later one is neither skipped nor
    repeated: while it is open, the later commit is held back (it lies above the horizon), and
    once both are in, each comes exactly once, in transaction order."""
    me, dev = await register(api)
    await enqueue(pool, dev, "before")
    await settled(pool)
    pages, cursor = await sync_all(api, me)
    assert titles(pages) == ["tbefore"]
    async with pool.acquire() as slow, pool.acquire() as fast:
        slow_tx = slow.transaction()
        await slow_tx.start()
        await outbox.enqueue(slow, [row(dev, "slow")])  # lower id, lower xid
        async with fast.transaction():
            await outbox.enqueue(fast, [row(dev, "fast")])
        ids = {r["title"]: r["id"] for r in await pool.fetch(
            "SELECT title, id FROM deliveries WHERE device_id = $1", dev)}
        assert ids.keys() == {"tbefore", "tfast"}  # the slow row is not committed yet
        pages, cursor = await sync_all(api, me, cursor)
        assert titles(pages) == []  # "fast" lies above the horizon while "slow" is open
        await slow_tx.commit()
    await settled(pool)
    ids = {r["title"]: r["id"] for r in await pool.fetch(
        "SELECT title, id FROM deliveries WHERE device_id = $1", dev)}
    assert ids["tslow"] < ids["tfast"]
    pages, cursor = await sync_all(api, me, cursor, limit=1)
    assert titles(pages) == ["tslow", "tfast"]
    pages, _ = await sync_all(api, me, cursor)
    assert titles(pages) == []


async def test_small_pages_return_each_entry_once_and_reads_come_again(
        api: TestClient, pool: asyncpg.Pool) -> None:
    """Seven entries from three transactions synced two at a time arrive once each in write
    order; reading two makes exactly those two come again, read; reading again is no change."""
    me, dev = await register(api)
    await enqueue(pool, dev, 1, 2, 3)
    await enqueue(pool, dev, 4)
    await enqueue(pool, dev, 5, 6, 7)
    await settled(pool)
    pages, cursor = await sync_all(api, me, limit=2)
    assert titles(pages) == [f"t{n}" for n in range(1, 8)]
    assert [p["more"] for p in pages] == [True, True, True, False]
    first = [a for p in pages for a in p["alerts"]]
    assert all(a["read"] is False and a["deleted"] is False for a in first)
    for entry in (first[4], first[1]):
        r = await api.put(f"/v1/me/alerts/{entry['id']}/read", headers=me)
        assert r.status == 204
        await described.answer_conforms(r, "/v1/me/alerts/{entry_id}/read",
                                        {"entry_id": entry["id"]})
    await settled(pool)
    pages, cursor = await sync_all(api, me, cursor, limit=2)
    again = [a for p in pages for a in p["alerts"]]
    assert [(a["id"], a["read"]) for a in again] == [(first[4]["id"], True),
                                                      (first[1]["id"], True)]
    assert (await api.put(f"/v1/me/alerts/{first[1]['id']}/read", headers=me)).status == 204
    await settled(pool)
    pages, _ = await sync_all(api, me, cursor)
    assert titles(pages) == []
    inbox = (await (await api.get("/v1/me/alerts", headers=me)).json())["alerts"]
    assert {a["id"] for a in inbox if a["read"]} == {first[4]["id"], first[1]["id"]}
    assert set(first[0]) == {"id", "alert_id", "version", "kind", "level", "title", "body",
                             "order_state", "at", "read", "deleted"}
    listed = {a["id"]: {**a, "deleted": False} for a in inbox}
    latest = {a["id"]: a for a in first + again}  # the same entries as the list shows
    assert listed == latest


async def test_a_device_reads_only_its_own_entries(api: TestClient, pool: asyncpg.Pool) -> None:
    """Marking another device's entry, an unknown id or a non-number is 404 and changes
    nothing; the owner's entry stays unread."""
    me, dev = await register(api)
    other, _ = await register(api)
    await enqueue(pool, dev, 1)
    entry_id = (await (await api.get("/v1/me/alerts", headers=me)).json())["alerts"][0]["id"]
    for who, target in ((other, entry_id), (me, "999999999"), (me, "abc"), (me, "-1"),
                        (me, "9" * 30)):
        r = await api.put(f"/v1/me/alerts/{target}/read", headers=who)
        assert r.status == 404, target
        await described.answer_conforms(r, "/v1/me/alerts/{entry_id}/read",
                                        {"entry_id": target})
    assert await pool.fetchval("SELECT read_at FROM deliveries WHERE id = $1",
                               int(entry_id)) is None


async def test_cancelled_entries_leave_the_inbox(api: TestClient, pool: asyncpg.Pool) -> None:
    """An entry cancelled before the phone saw it never shows (not in the inbox, not in sync);
    one cancelled after the phone saw it comes once as a tombstone {"id", "deleted": true};
    a cancelled entry cannot be marked read."""
    me, dev = await register(api)
    await enqueue(pool, dev, "seen", "unseen")
    await pool.execute("UPDATE deliveries SET state = 'cancelled' WHERE title = 'tunseen'")
    await settled(pool)
    pages, cursor = await sync_all(api, me)
    assert titles(pages) == ["tseen"]
    seen = pages[0]["alerts"][0]["id"]
    await pool.execute("UPDATE deliveries SET state = 'cancelled' WHERE title = 'tseen'")
    await settled(pool)
    pages, cursor = await sync_all(api, me, cursor)
    assert [a for p in pages for a in p["alerts"]] == [{"id": seen, "deleted": True}]
    assert (await (await api.get("/v1/me/alerts", headers=me)).json())["alerts"] == []
    assert (await api.put(f"/v1/me/alerts/{seen}/read", headers=me)).status == 404
    pages, _ = await sync_all(api, me, cursor)
    assert titles(pages) == []
    fresh, _ = await sync_all(api, me)
    assert titles(fresh) == []



async def test_an_order_lifted_before_its_push_went_out_leaves_as_a_tombstone(
        api: TestClient, pool: asyncpg.Pool) -> None:
    """A phone that synced an order whose push had not gone out yet learns, once staff lift the
    order (the push is cancelled, and no 解除 follows a push never sent), that the entry is
    gone: its next sync holds the tombstone and nothing else."""
    operator = {"Authorization": f"Bearer {await staff.create(pool, 'operator')}"}
    me, _ = await register(api)
    assert (await api.put("/v1/me/location", json={"lat": 37.75, "lon": 140.47},
                          headers=me)).status == 204
    r = await api.post("/v1/staff/orders", headers=operator, json={
        "level": 4, "hazard": "flood", "headline": {"ja": "避難"},
        "area": {"circle": {"lat": 37.75, "lon": 140.47, "radius_m": 500}}})
    assert r.status == 201, await r.text()
    order_id = (await r.json())["id"]
    await settled(pool)
    pages, cursor = await sync_all(api, me)
    seen = [a for p in pages for a in p["alerts"]]
    assert [(a["alert_id"], a["kind"]) for a in seen] == [(order_id, "order")]
    assert (await api.post(f"/v1/staff/orders/{order_id}/lift", headers=operator)).status == 200
    await settled(pool)
    pages, _ = await sync_all(api, me, cursor)
    assert [a for p in pages for a in p["alerts"]] == [{"id": seen[0]["id"], "deleted": True}]

def shelter(sid: str, lat: float, lon: float, code: str = "072010") -> Any:
    return SimpleNamespace(id=sid, name=f"避難所{sid}", address="福島県", lat=lat, lon=lon,
                           hazards=["flood"], capacity=100, municipality_code=code,
                           kind="shelter", source_format="test")


async def test_shelters_near_and_named_come_once_then_their_changes(
        api: TestClient, pool: asyncpg.Pool) -> None:
    """The first sync sends every shelter near the location or a sheet place, in a watched
    municipality, or named in a sheet, with its status (paged once each); then only a shelter
    whose state changed, once; a report that restates the state is no change; a new place
    sends the new set again."""
    me, _ = await register(api)
    await shelters.upsert(pool, [
        shelter("near-1", 37.751, 140.471), shelter("near-2", 37.76, 140.48),
        shelter("edge-out", 37.75 + 3.2 / 111.2, 140.47), shelter("far", *FAR, code="072044"),
        shelter("named", FAR[0] + 0.1, FAR[1], code="072044"),
        shelter("by-work", 37.40, 140.36, code="072036"),
        shelter("in-town", 37.0, 140.0, code="072079")])
    assert (await api.put("/v1/me/location", json={"lat": 37.75, "lon": 140.47},
                          headers=me)).status == 204
    assert (await api.put("/v1/me/places/town", json={"label": "町", "area_code": "072079"},
                          headers=me)).status == 200
    sheet = {"name": "家", "places": [HOME, {"kind": "work", "lat": 37.401, "lon": 140.361}],
             "destinations": [{"kind": "shelter", "shelter_id": "named"}]}
    assert (await api.put(f"/v1/me/sheets/{uuid.uuid4()}", json=sheet,
                          headers=me)).status == 201
    async with pool.acquire() as conn:
        await shelters.set_status(conn, "near-2", "open", "low", 10, "staff:x", None)
    await settled(pool)
    pages, cursor = await sync_all(api, me, limit=2)
    got = [s for p in pages for s in p["shelters"]]
    assert sorted(s["id"] for s in got) == ["by-work", "in-town", "named", "near-1", "near-2"]
    assert {s["id"]: (s["status"], s["crowding"]) for s in got}["near-2"] == ("open", "low")
    for one in got:  # the same objects as every other shelter answer
        assert one == (await shelters.get(pool, one["id"])).as_json()
    async with pool.acquire() as conn:
        await shelters.set_status(conn, "near-1", "open", "medium", 5, "staff:x", None)
        await shelters.set_status(conn, "far", "open", "low", 5, "staff:x", None)
        await shelters.set_status(conn, "near-2", "open", "low", 10, "staff:y", None)  # same
    await settled(pool)
    pages, cursor = await sync_all(api, me, cursor, limit=2)
    assert [(s["id"], s["crowding"]) for p in pages for s in p["shelters"]] == [
        ("near-1", "medium")]
    pages, cursor = await sync_all(api, me, cursor)
    assert [s for p in pages for s in p["shelters"]] == []
    assert (await api.put("/v1/me/places/iwaki", json={"label": "実家", "lat": FAR[0],
                                                       "lon": FAR[1]}, headers=me)).status == 200
    await settled(pool)
    pages, cursor = await sync_all(api, me, cursor)
    assert sorted(s["id"] for p in pages for s in p["shelters"]) == [
        "by-work", "far", "in-town", "named", "near-1", "near-2"]


async def test_a_shelter_that_changes_mid_catch_up_comes_once_per_state(
        api: TestClient, pool: asyncpg.Pool) -> None:
    """A shelter not yet sent when it changes during a paged first sync is sent once, in its
    new state; one already sent comes again once with its new state."""
    me, _ = await register(api)
    await shelters.upsert(pool, [shelter(f"s{n}", 37.75 + n * 0.001, 140.47) for n in range(4)])
    await api.put("/v1/me/location", json={"lat": 37.75, "lon": 140.47}, headers=me)
    await settled(pool)
    page = await (await api.get("/v1/me/sync", params={"limit": "2"}, headers=me)).json()
    first = [s["id"] for s in page["shelters"]]
    assert page["more"] and len(first) == 2
    later = sorted({"s0", "s1", "s2", "s3"} - set(first))
    async with pool.acquire() as conn:
        await shelters.set_status(conn, first[0], "open", "low", 1, "staff:x", None)
        await shelters.set_status(conn, later[0], "open", "high", 1, "staff:x", None)
    await settled(pool)
    pages, _ = await sync_all(api, me, page["cursor"], limit=2)
    rest = [(s["id"], s["status"]) for p in pages for s in p["shelters"]]
    assert sorted(rest) == sorted([(later[1], "not_open"), (first[0], "open"),
                                   (later[0], "open")])


async def test_old_and_foreign_cursors_are_410_with_a_reason(
        api: TestClient, pool: asyncpg.Pool, context: Context) -> None:
    """A cursor older than sync.cursor_max_age_s, or in the layout of an older server, is 410
    with a reason; a fresh one is served."""
    me, dev = await register(api)
    key = await sync.cursor_key(pool)
    max_age = context.cfg.sync.cursor_max_age_s
    old = sync.write_cursor(positions.Position(issued=int(time.time()) - max_age - 60), key, dev)
    r = await api.get("/v1/me/sync", params={"cursor": old}, headers=me)
    assert r.status == 410
    assert f"older than {max_age} s" in (await r.json())["error"]
    from sheets import cursor as cursors
    legacy = cursors.encode((5,), key, dev.bytes)
    r = await api.get("/v1/me/sync", params={"cursor": legacy}, headers=me)
    assert r.status == 410 and "older server" in (await r.json())["error"]
    fresh = sync.write_cursor(positions.Position(issued=int(time.time()) - 60), key, dev)
    assert (await api.get("/v1/me/sync", params={"cursor": fresh}, headers=me)).status == 200


async def test_erasing_the_device_erases_its_inbox(api: TestClient, pool: asyncpg.Pool) -> None:
    """DELETE /v1/me leaves none of the device's inbox rows behind (another device's stay)."""
    me, dev = await register(api)
    _, other = await register(api)
    await enqueue(pool, dev, 1, 2)
    await enqueue(pool, other, 3)
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE device_id = $1", dev) == 2
    assert (await api.delete("/v1/me", headers=me)).status == 204
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE device_id = $1", dev) == 0
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE device_id = $1",
                               other) == 1
    assert (await api.get("/v1/me/alerts", headers=me)).status == 401


async def test_a_cursor_is_read_by_another_node(api: TestClient, pool: asyncpg.Pool,
                                                context: Context, db_url: str) -> None:
    """A cursor from one node (its own pool) continues on a second node started afterwards:
    the second sends only what came after."""
    me, dev = await register(api)
    await enqueue(pool, dev, 1)
    await settled(pool)
    _, cursor = await sync_all(api, me)
    await enqueue(pool, dev, 2)
    await settled(pool)
    second_pool = await db.connect(db_url, min_size=1, max_size=2)
    second = TestClient(TestServer(routes.build_app(  # type: ignore[type-arg]
        dataclasses.replace(context, pool=second_pool))))
    await second.start_server()
    try:
        pages, _ = await sync_all(second, me, cursor)
        assert titles(pages) == ["t2"]
    finally:
        await second.close()
        await second_pool.close()


async def test_many_writers_committing_in_shuffled_order_lose_and_repeat_nothing(
        api: TestClient, pool: asyncpg.Pool, db_url: str) -> None:
    """Six fan-outs open at once, each writing rows in turn, commit in a shuffled order with a
    small-page sync between every two commits: every row arrives exactly once."""
    me, dev = await register(api)
    conns = [await db.connect_one(db_url) for _ in range(6)]
    seen: list[str] = []
    cursor: str | None = None
    try:
        txs = [c.transaction() for c in conns]
        for tx in txs:
            await tx.start()
        for round_ in range(3):
            for n, conn in enumerate(conns):
                await outbox.enqueue(conn, [row(dev, f"{n}.{round_}.{k}") for k in range(2)])
        for n in (3, 0, 5, 1, 4, 2):
            await txs[n].commit()
            pages, cursor = await sync_all(api, me, cursor, limit=2)
            seen += titles(pages)
    finally:
        for conn in conns:
            await conn.close()
    await settled(pool)
    pages, cursor = await sync_all(api, me, cursor, limit=2)
    seen += titles(pages)
    expected = {f"t{n}.{r}.{k}" for n in range(6) for r in range(3) for k in range(2)}
    assert len(seen) == len(expected) and set(seen) == expected


async def test_timestamps_built_in_sql_read_as_python_writes_them(pool: asyncpg.Pool) -> None:
    """db.iso_sql writes a timestamptz as datetime.isoformat() does: UTC, microseconds only
    when there are any, NULL for NULL, whatever the session's time zone."""
    await pool.execute("SET timezone = 'Asia/Tokyo'")
    for value in (datetime(2026, 12, 2, 15, 4, 5, 120, tzinfo=UTC),
                  datetime(2026, 12, 2, 15, 4, 5, tzinfo=UTC),
                  datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=timezone(timedelta(hours=9))),
                  None):
        async with pool.acquire() as conn:
            await conn.execute("SET timezone = 'Asia/Tokyo'")
            text = await conn.fetchval(f"SELECT {db.iso_sql('$1::timestamptz')}", value)
            back = await conn.fetchval("SELECT $1::timestamptz", value)
        assert text == (back.isoformat() if back is not None else None)
