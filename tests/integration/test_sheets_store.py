"""sheets.store on a real PostgreSQL: versions, If-Match, tombstones, change order, holders."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from alertd import devices
from sheets import store, validate
from sheets.errors import IfMatchRequired, SheetMissing, StaleVersion, TooManySheets
from sheets.merge import IfMatch
from sheets.model import StoredSheet
from tests.waiting import wait_for


def sheet(name: str = "家", *destinations: dict[str, Any]) -> Any:
    doc: dict[str, Any] = {"name": name, "places": [{"kind": "home", "lat": 37.75,
                                                     "lon": 140.47}]}
    if destinations:
        doc["destinations"] = list(destinations)
    return validate.parse(doc)


def at(version: int) -> IfMatch:
    return IfMatch(versions=frozenset({version}))


async def device(pool: asyncpg.Pool) -> uuid.UUID:
    device_id, _ = await devices.register(pool, "ios", f"tok-{uuid.uuid4().hex}", "ja")
    return device_id


async def test_put_get_replace_and_stale(pool: asyncpg.Pool) -> None:
    """A new sheet is version 1; replacing needs If-Match; a stale one carries the server copy;
    the current one writes version 2."""
    dev, sid = await device(pool), uuid.uuid4()
    async with pool.acquire() as conn:
        assert await store.put(conn, dev, sid, sheet("一"), None) == (
            StoredSheet(sid, 1, False, sheet("一")), True)
        assert await store.get(conn, dev, sid) == StoredSheet(sid, 1, False, sheet("一"))
        with pytest.raises(IfMatchRequired):
            await store.put(conn, dev, sid, sheet("二"), None)
        with pytest.raises(StaleVersion) as caught:
            await store.put(conn, dev, sid, sheet("二"), at(7))
        assert caught.value.current == StoredSheet(sid, 1, False, sheet("一"))
        assert await store.put(conn, dev, sid, sheet("二"), at(1)) == (
            StoredSheet(sid, 2, False, sheet("二")), False)
        assert await store.get(conn, dev, sid) == StoredSheet(sid, 2, False, sheet("二"))


async def test_sheets_belong_to_their_device(pool: asyncpg.Pool) -> None:
    """The same sheet id under two devices is two sheets; neither sees the other's."""
    one, two, sid = await device(pool), await device(pool), uuid.uuid4()
    async with pool.acquire() as conn:
        await store.put(conn, one, sid, sheet("一"), None)
        assert await store.get(conn, two, sid) is None
        assert (await store.put(conn, two, sid, sheet("二"), None))[0].version == 1
        assert (await store.get(conn, one, sid)) == StoredSheet(sid, 1, False, sheet("一"))


async def test_delete_leaves_a_tombstone_and_the_count_goes_on(pool: asyncpg.Pool) -> None:
    """DELETE leaves a tombstone (next version, no body); deleting again changes nothing; a
    write after it continues the versions; deleting an unknown id is missing."""
    dev, sid = await device(pool), uuid.uuid4()
    async with pool.acquire() as conn:
        await store.put(conn, dev, sid, sheet(), None)
        with pytest.raises(StaleVersion):
            await store.delete(conn, dev, sid, at(5))
        gone = StoredSheet(sid, 2, True, None)
        assert await store.delete(conn, dev, sid, None) == gone
        assert await store.get(conn, dev, sid) == gone
        assert await store.delete(conn, dev, sid, at(1)) == gone
        assert await conn.fetchval("SELECT body FROM sheets WHERE id = $1", sid) is None
        assert (await store.put(conn, dev, sid, sheet(), None)) == (
            StoredSheet(sid, 3, False, sheet()), True)
        with pytest.raises(SheetMissing):
            await store.delete(conn, dev, uuid.uuid4(), None)


async def test_changes_page_in_server_order_each_sheet_once(pool: asyncpg.Pool) -> None:
    """Changes come in write order from a position, tombstones included, a sheet written
    twice once in its latest state, and paging by the last position misses nothing."""
    dev = await device(pool)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        await store.put(conn, dev, a, sheet("a1"), None)
        await store.put(conn, dev, b, sheet("b1"), None)
        await store.put(conn, dev, c, sheet("c1"), None)
        await store.put(conn, dev, a, sheet("a2"), at(1))
        await store.delete(conn, dev, b, None)
        everything = await store.changes(conn, dev, 0, 100)
        assert [ch.sheet for ch in everything] == [
            StoredSheet(c, 1, False, sheet("c1")), StoredSheet(a, 2, False, sheet("a2")),
            StoredSheet(b, 2, True, None)]
        seqs = [ch.seq for ch in everything]
        assert seqs == sorted(seqs)
        first = await store.changes(conn, dev, 0, 2)
        rest = await store.changes(conn, dev, first[-1].seq, 2)
        assert first + rest == everything
        assert await store.changes(conn, dev, everything[-1].seq, 2) == []
        other = await device(pool)
        assert await store.changes(conn, other, 0, 100) == []


async def test_ten_live_sheets_at_most_even_when_created_at_once(pool: asyncpg.Pool) -> None:
    """With nine live sheets (and a tombstone, which does not count), a create that starts
    while another is still open waits for it, and is then refused as the eleventh."""
    dev = await device(pool)
    async with pool.acquire() as conn:
        for _ in range(9):
            await store.put(conn, dev, uuid.uuid4(), sheet(), None)
        dead = uuid.uuid4()
        await store.put(conn, dev, dead, sheet(), None)
        await store.delete(conn, dev, dead, None)
    async with pool.acquire() as first, pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        await store.put(first, dev, uuid.uuid4(), sheet(), None)
        later = asyncio.create_task(store.put(second, dev, uuid.uuid4(), sheet(), None))
        await wait_for(waiting_on_a_lock(pool, second), "the second create to wait")
        await tx.commit()
        with pytest.raises(TooManySheets):
            await later
    assert await pool.fetchval(
        "SELECT count(*) FROM sheets WHERE device_id = $1 AND NOT deleted", dev) == 10


def waiting_on_a_lock(pool: asyncpg.Pool, conn: asyncpg.Connection) -> Any:
    """A check that this connection's backend is waiting for a lock."""
    pid = conn.get_server_pid()

    async def check() -> bool:
        return bool(await pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))
    return check


async def test_writes_of_one_device_commit_in_change_order(pool: asyncpg.Pool) -> None:
    """A second write to the device's sheets waits for an open first one, so a sync between
    them sees neither and the first commit gets the lower position."""
    dev, a, b = await device(pool), uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as first, pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        await store.put(first, dev, a, sheet("a"), None)
        later = asyncio.create_task(store.put(second, dev, b, sheet("b"), None))
        await wait_for(waiting_on_a_lock(pool, second), "the second write to wait")
        assert await store.changes(pool, dev, 0, 10) == []
        await tx.commit()
        await later
    assert [ch.sheet.id for ch in await store.changes(pool, dev, 0, 10)] == [a, b]


async def test_live_sheets_and_shelter_holders(pool: asyncpg.Pool) -> None:
    """Live sheets are listed by device; a shelter's holders are the devices whose live sheets
    name it (not a tombstone, not a sheet naming another)."""
    one, two, three = await device(pool), await device(pool), await device(pool)
    s1, s2, s3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    to = {"kind": "shelter", "shelter_id": "07201-001"}
    async with pool.acquire() as conn:
        await store.put(conn, one, s1, sheet("一", {"kind": "stay"}, to), None)
        await store.put(conn, two, s2, sheet("二", to), None)
        await store.delete(conn, two, s2, None)
        await store.put(conn, three, s3, sheet("三", {**to, "shelter_id": "07201-002"}), None)
        assert await store.holders(conn, "07201-001") == [one]
        assert await store.holders(conn, "07201-002") == [three]
        assert await store.holders(conn, "nope\x00") == []
        assert await store.live(conn, [one, two]) == {
            one: [StoredSheet(s1, 1, False, sheet("一", {"kind": "stay"}, to))]}


async def test_erasing_the_device_erases_its_sheets(pool: asyncpg.Pool) -> None:
    """Deleting the device removes its sheets and tombstones; a write for it then is missing."""
    dev, sid = await device(pool), uuid.uuid4()
    async with pool.acquire() as conn:
        await store.put(conn, dev, sid, sheet(), None)
        await store.put(conn, dev, uuid.uuid4(), sheet(), None)
        await store.delete(conn, dev, sid, None)
        await devices.delete(pool, dev)
        assert await conn.fetchval("SELECT count(*) FROM sheets") == 0
        with pytest.raises(SheetMissing):
            await store.put(conn, dev, uuid.uuid4(), sheet(), None)


async def test_cursor_key_is_shared_and_stable(pool: asyncpg.Pool) -> None:
    """The cursor key is 32 random bytes drawn at migration, the same on every read."""
    key = await store.cursor_key(pool)
    assert len(key) == 32 and key == await store.cursor_key(pool)
    assert key != bytes(32)
