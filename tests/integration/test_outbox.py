"""The outbox on a real PostgreSQL: claims, leases, outcomes, token invalidation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from alertd import db, devices
from alertd.delivery import outbox
from tests.waiting import wait_for

COLUMNS = ("apns_id", "order_id", "version", "device_id", "kind", "service", "level", "title",
           "body", "priority", "expires_at")


async def _seed(pool: asyncpg.Pool, n: int,
                token: str = "tok") -> tuple[uuid.UUID, list[uuid.UUID]]:
    order_id = uuid.uuid4()
    await pool.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
    ids = []
    rows = []
    for i in range(n):
        device_id, _ = await devices.register(pool, "ios", f"{token}-{i}", "ja")
        ids.append(device_id)
        rows.append((uuid.uuid4(), order_id, 1, device_id, "order", "apns", 4, "t", "b", 10,
                     datetime.now(UTC) + timedelta(hours=1)))
    await pool.copy_records_to_table("deliveries", records=rows, columns=COLUMNS)
    return order_id, ids


async def test_claim_takes_each_row_once(pool: asyncpg.Pool) -> None:
    """Two dispatchers claiming at once get disjoint sets covering every due row."""
    await _seed(pool, 50)
    a, b = await asyncio.gather(
        outbox.claim(pool, "apns", 30, 30.0, "a"), outbox.claim(pool, "apns", 30, 30.0, "b")
    )
    ids_a, ids_b = {c.id for c in a}, {c.id for c in b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 50
    assert await outbox.claim(pool, "apns", 100, 30.0, "c") == []


async def test_claim_respects_service(pool: asyncpg.Pool) -> None:
    """An FCM dispatcher does not take APNs rows."""
    await _seed(pool, 3)
    assert await outbox.claim(pool, "fcm", 10, 30.0, "a") == []


async def test_expired_lease_is_reclaimed(pool: asyncpg.Pool) -> None:
    """Rows of a dispatcher that died become claimable once their lease ends."""
    await _seed(pool, 5)
    first = await outbox.claim(pool, "apns", 10, 30.0, "dead")
    assert len(first) == 5
    assert await outbox.claim(pool, "apns", 10, 30.0, "alive") == []
    await pool.execute("UPDATE deliveries SET due_at = now() - interval '1 second'")
    again = await outbox.claim(pool, "apns", 10, 30.0, "alive")
    assert {c.id for c in again} == {c.id for c in first}
    assert all(c.attempts == 2 for c in again)


async def test_only_the_holder_records(pool: asyncpg.Pool) -> None:
    """An outcome from a dispatcher whose lease was taken over is ignored."""
    await _seed(pool, 1)
    (c,) = await outbox.claim(pool, "apns", 10, 30.0, "old")
    await pool.execute("UPDATE deliveries SET due_at = now() - interval '1 second'")
    (again,) = await outbox.claim(pool, "apns", 10, 30.0, "new")
    stale = outbox.Result(c.id, "failed", None, None, "stale")
    assert await outbox.record(pool, [stale], ["old"]) == 0
    fresh = outbox.Result(again.id, "sent", None, "p-1", None)
    assert await outbox.record(pool, [fresh], ["new"]) == 1
    row = await pool.fetchrow("SELECT state, provider_id, done_at FROM deliveries")
    assert (row["state"], row["provider_id"]) == ("sent", "p-1")
    assert row["done_at"] is not None


async def test_outcomes_beyond_one_statement_are_all_written(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """More outcomes than one statement takes are all written, each with its own state and
    provider id, and writing them all again (a retried flush) writes none twice."""
    monkeypatch.setattr(outbox, "RECORD_CHUNK", 3)
    await _seed(pool, 8)
    claimed = await outbox.claim(pool, "apns", 10, 30.0, "w")
    results = [outbox.Result(c.id, "sent" if i % 2 else "failed", None, f"p-{c.id}", None)
               for i, c in enumerate(claimed)]
    assert await outbox.record(pool, results, ["w"]) == 8
    rows = await pool.fetch("SELECT id, state, provider_id FROM deliveries")
    assert {(r["id"], r["state"], r["provider_id"]) for r in rows} == {
        (r.id, r.state, r.provider_id) for r in results}
    assert await outbox.record(pool, results, ["w"]) == 0


async def test_retry_is_not_due_before_its_time(pool: asyncpg.Pool) -> None:
    """A delivery put back for retry is not claimed again before due_at."""
    await _seed(pool, 1)
    (c,) = await outbox.claim(pool, "apns", 10, 30.0, "w")
    later = datetime.now(UTC) + timedelta(minutes=5)
    await outbox.record(pool, [outbox.Result(c.id, "pending", later, None, "503")], ["w"])
    assert await outbox.claim(pool, "apns", 10, 30.0, "w") == []
    assert await pool.fetchval("SELECT state FROM deliveries") == "pending"


async def test_invalid_token_disables_device(pool: asyncpg.Pool) -> None:
    """A refused token disables the device and drops its other queued deliveries."""
    _, (device_id,) = await _seed(pool, 1, token="gone")
    other_order = uuid.uuid4()
    await pool.execute("INSERT INTO orders (id) VALUES ($1)", other_order)
    await pool.execute(
        "INSERT INTO deliveries (apns_id, order_id, version, device_id, kind, service, title,"
        " body, expires_at) VALUES ($1, $2, 1, $3, 'order', 'apns', 't', 'b',"
        " now() + interval '1 hour')", uuid.uuid4(), other_order, device_id,
    )
    claimed = await outbox.claim(pool, "apns", 1, 30.0, "w")
    await outbox.invalidate_tokens(pool, [(device_id, claimed[0].push_token)])
    assert await pool.fetchval("SELECT token_state FROM devices") == "invalid"
    states = await pool.fetch("SELECT state FROM deliveries WHERE state <> 'sending'")
    assert [r["state"] for r in states] == ["invalid_token"]


async def test_rotated_token_is_not_disabled(pool: asyncpg.Pool) -> None:
    """A refusal for an old token does not disable the device's new token."""
    _, (device_id,) = await _seed(pool, 1, token="old")
    await devices.update(pool, device_id, {"push_token": "new-token"})
    await outbox.invalidate_tokens(pool, [(device_id, "old-0")])
    assert await pool.fetchval("SELECT token_state FROM devices") == "active"


async def test_release_makes_rows_due_now(pool: asyncpg.Pool) -> None:
    """Released claims are immediately claimable by another dispatcher, attempt not counted."""
    await _seed(pool, 3)
    claimed = await outbox.claim(pool, "apns", 10, 30.0, "leaving")
    await outbox.release(pool, [c.id for c in claimed], ["leaving"])
    again = await outbox.claim(pool, "apns", 10, 30.0, "staying")
    assert len(again) == 3
    assert all(c.attempts == 1 for c in again)


async def test_refunded_claim_does_not_count_as_an_attempt(pool: asyncpg.Pool) -> None:
    """A claim handed back without sending gives its attempt back."""
    await _seed(pool, 1)
    (c,) = await outbox.claim(pool, "apns", 10, 30.0, "w")
    assert c.attempts == 1
    now = datetime.now(UTC)
    await outbox.record(pool, [outbox.Result(c.id, "pending", now, None, "paused", refund=True)],
                        ["w"])
    assert await pool.fetchval("SELECT attempts FROM deliveries") == 0


async def test_claim_columns_match_the_claimed_fields(pool: asyncpg.Pool) -> None:
    """The claim query returns its columns in the order of Claimed's fields (built positionally)."""
    await _seed(pool, 1)
    rows = await pool.fetch(outbox._CLAIM, "apns", 1, 30.0, "w", 10)
    assert list(rows[0].keys()) == list(outbox.Claimed.__slots__)


async def test_enqueue_writes_rows_and_wakes_dispatchers_at_commit(pool: asyncpg.Pool) -> None:
    """enqueue writes every row, claimable as given, and NOTIFYs the channel once committed."""
    order_id = uuid.uuid4()
    await pool.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
    ios, _ = await devices.register(pool, "ios", "tok-ios", "ja")
    android, _ = await devices.register(pool, "android", "tok-android", "ja")
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    rows = [
        outbox.NewDelivery(device_id=ios, service=outbox.service_for("ios"), kind="order",
                           title="t", body="b", expires_at=expires, level=4,
                           order_id=order_id, version=1),
        outbox.NewDelivery(device_id=android, service=outbox.service_for("android"),
                           kind="shelter_opened", title="s", body="o", expires_at=expires,
                           alert_id="shelter-S1", ref="shelter:S1:1"),
    ]
    woken: asyncio.Queue[str] = asyncio.Queue()
    async with pool.acquire() as listener, pool.acquire() as conn:

        def wake(_conn: object, _pid: int, channel: str, _payload: str) -> None:
            woken.put_nowait(channel)

        await listener.add_listener(outbox.CHANNEL, wake)
        async with conn.transaction():
            assert await outbox.enqueue(conn, rows) == 2
            assert woken.empty()
        assert await asyncio.wait_for(woken.get(), 10) == outbox.CHANNEL
        await listener.remove_listener(outbox.CHANNEL, wake)
    apns_row = await outbox.claim(pool, "apns", 10, 30.0, "w")
    fcm_row = await outbox.claim(pool, "fcm", 10, 30.0, "w")
    assert [(c.device_id, c.kind, c.order_id, c.alert_id, c.level, c.expires_at)
            for c in apns_row + fcm_row] == [
        (ios, "order", order_id, str(order_id), 4, expires),
        (android, "shelter_opened", None, "shelter-S1", None, expires)]
    assert await pool.fetchval("SELECT ref FROM deliveries WHERE device_id = $1",
                               android) == "shelter:S1:1"


def _order_row(device_id: uuid.UUID, order_id: uuid.UUID | None,
               kind: str = "order") -> outbox.NewDelivery:
    return outbox.NewDelivery(device_id=device_id, service="apns", kind=kind, title="t",
                              body="b", expires_at=datetime.now(UTC) + timedelta(hours=1),
                              level=4, order_id=order_id, version=1,
                              alert_id=None if order_id else "shelter-S1",
                              ref=None if order_id else f"ref-{uuid.uuid4()}")


async def test_enqueue_draws_a_distinct_apns_id_per_row(pool: asyncpg.Pool) -> None:
    """The server draws each row's apns-id (version 4 UUIDs, all distinct), and a generator of
    rows is written whole."""
    order_id, _ = await _seed(pool, 0)
    ids = [(await devices.register(pool, "ios", f"gen-{i}", "ja"))[0] for i in range(30)]
    async with pool.acquire() as conn, conn.transaction():
        assert await outbox.enqueue(conn, (_order_row(d, order_id) for d in ids)) == 30
        assert await outbox.enqueue(conn, iter(())) == 0
    found = await pool.fetch("SELECT apns_id FROM deliveries WHERE order_id = $1", order_id)
    assert len({r["apns_id"] for r in found}) == 30
    assert {r["apns_id"].version for r in found} == {4}


@pytest.mark.parametrize("missing", ["device", "order"])
async def test_enqueue_refuses_rows_naming_what_does_not_exist(pool: asyncpg.Pool,
                                                               missing: str) -> None:
    """A delivery for a device or an order that does not exist is refused as a foreign key
    violation, and none of the statement's rows are written."""
    order_id, ids = await _seed(pool, 2)
    await pool.execute("DELETE FROM deliveries")
    rows = [_order_row(d, order_id, kind="order_update") for d in ids]
    if missing == "device":
        rows.append(_order_row(uuid.uuid4(), order_id, kind="order_update"))
    else:
        rows.append(_order_row(ids[0], uuid.uuid4()))
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError, match=missing):
            async with conn.transaction():
                await outbox.enqueue(conn, rows)
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0


async def test_the_keys_of_a_delivery_never_change(pool: asyncpg.Pool) -> None:
    """Moving a delivery to another device or order is refused (what the foreign keys checked
    on update)."""
    order_id, ids = await _seed(pool, 2)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE deliveries SET device_id = $1 WHERE device_id = $2",
                           uuid.uuid4(), ids[0])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE deliveries SET order_id = NULL")
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE order_id = $1",
                               order_id) == 2


async def test_erasing_devices_and_orders_erases_their_deliveries(pool: asyncpg.Pool) -> None:
    """Deleting a device, several at once, or an order deletes their deliveries (and no
    others)."""
    order_id, ids = await _seed(pool, 4)
    other_order, others = await _seed(pool, 2, token="other")
    await devices.delete(pool, ids[0])
    await pool.execute("DELETE FROM devices WHERE id = ANY($1::uuid[])", ids[1:3])
    assert {r["device_id"] for r in await pool.fetch("SELECT device_id FROM deliveries")} == {
        ids[3], *others}
    await pool.execute("DELETE FROM orders WHERE id = $1", order_id)
    assert {r["order_id"] for r in await pool.fetch("SELECT order_id FROM deliveries")} == {
        other_order}


async def test_an_erasure_waits_for_a_fan_out_writing_to_the_device(pool: asyncpg.Pool) -> None:
    """A device erased while a transaction is writing its delivery waits for that transaction,
    then erases the delivery too: nothing is left for a device that is gone."""
    order_id, ids = await _seed(pool, 1)
    await pool.execute("DELETE FROM deliveries")
    async with pool.acquire() as writer, pool.acquire() as eraser:
        tx = writer.transaction()
        await tx.start()
        await outbox.enqueue(writer, [_order_row(ids[0], order_id)])
        erasing = asyncio.create_task(devices.delete(eraser, ids[0]))
        pid = eraser.get_server_pid()

        async def erasure_waits() -> bool:
            return bool(await pool.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))
        await wait_for(erasure_waits, "the erasure to wait for the writer")
        assert not erasing.done()
        await tx.commit()
        await asyncio.wait_for(erasing, 10)
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE id = $1", ids[0]) == 0


async def test_a_fan_out_writing_to_a_device_being_erased_fails_whole(
        pool: asyncpg.Pool) -> None:
    """A transaction writing deliveries while a device's erasure is uncommitted waits for it,
    then fails whole once the device is gone."""
    order_id, ids = await _seed(pool, 2)
    await pool.execute("DELETE FROM deliveries")
    async with pool.acquire() as writer, pool.acquire() as eraser:
        tx = eraser.transaction()
        await tx.start()
        await eraser.execute("DELETE FROM devices WHERE id = $1", ids[0])

        async def write() -> None:
            async with writer.transaction():
                await outbox.enqueue(writer, [_order_row(d, order_id) for d in ids])
        writing = asyncio.create_task(write())
        pid = writer.get_server_pid()

        async def writer_waits() -> bool:
            return bool(await pool.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))
        await wait_for(writer_waits, "the writer to wait for the erasure")
        await tx.commit()
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await asyncio.wait_for(writing, 10)
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0


@asynccontextmanager
async def locked(db_url: str, worker: str) -> AsyncIterator[asyncpg.Connection]:
    """A session holding the lock of a registered dispatcher identity until the block ends."""
    conn = await db.connect_one(db_url)
    try:
        assert await outbox.register(conn, worker)
        yield conn
    finally:
        await conn.close()


async def _registered(pool: asyncpg.Pool) -> list[str]:
    return [r["worker"] for r in await pool.fetch("SELECT worker FROM dispatchers ORDER BY 1")]


async def test_rows_of_a_dispatcher_whose_lock_is_free_are_reaped(
        pool: asyncpg.Pool, db_url: str) -> None:
    """A registered dispatcher whose lock no session holds is dead: a reaper pass unregisters it
    and makes its leased rows due at their creation time, so they are claimed at once and
    before rows queued after them."""
    await _seed(pool, 2)
    async with locked(db_url, "dead"):
        leased = await outbox.claim(pool, "apns", 10, 300.0, "dead")
    await _seed(pool, 1, token="later")
    async with locked(db_url, "live") as live:
        assert await outbox.reap(live, "live") == outbox.Reaped(True, ("dead",), {"apns": 2})
        assert await _registered(pool) == ["live"]
        first = await outbox.claim(pool, "apns", 2, 30.0, "live")
        assert [c.id for c in first] == [c.id for c in leased]
        assert [c.attempts for c in first] == [2, 2]
        assert await outbox.reap(live, "live") == outbox.Reaped(True, (), {})


async def test_rows_of_a_dispatcher_holding_its_lock_are_not_reaped(
        pool: asyncpg.Pool, db_url: str) -> None:
    """A dispatcher whose lock is held on another connection keeps its registration and its
    leased rows: nobody else can claim them before their lease ends."""
    await _seed(pool, 2)
    async with locked(db_url, "alive"), locked(db_url, "other") as other:
        await outbox.claim(pool, "apns", 10, 300.0, "alive")
        assert await outbox.reap(other, "other") == outbox.Reaped(True, (), {})
        assert await _registered(pool) == ["alive", "other"]
        assert await outbox.claim(pool, "apns", 10, 30.0, "other") == []


async def test_a_feed_lock_on_the_same_numbers_does_not_keep_a_dead_dispatcher(
        pool: asyncpg.Pool, db_url: str) -> None:
    """A one-bigint advisory lock (feeds, migrations) whose key splits into the namespace and
    the identity's hash is not a dispatcher lock: the dead dispatcher is still reaped."""
    await _seed(pool, 1)
    async with locked(db_url, "dead"):
        await outbox.claim(pool, "apns", 10, 300.0, "dead")
    async with pool.acquire() as feed, locked(db_url, "live") as live:
        await feed.execute(
            "SELECT pg_advisory_lock(($1::bigint << 32) | (hashtext($2)::bigint & 4294967295))",
            outbox.DISPATCHER_LOCKS, "dead")
        try:
            assert await outbox.reap(live, "live") == outbox.Reaped(True, ("dead",), {"apns": 1})
        finally:
            await feed.execute("SELECT pg_advisory_unlock_all()")


async def test_a_reap_that_frees_rows_wakes_the_dispatchers(
        pool: asyncpg.Pool, db_url: str) -> None:
    """Rows made due by a reaper pass are announced on the outbox channel (every dispatcher
    wakes, whatever services it serves); a pass that frees nothing is silent."""
    await _seed(pool, 1)
    async with locked(db_url, "dead"):
        await outbox.claim(pool, "apns", 10, 300.0, "dead")
    woken: asyncio.Queue[str] = asyncio.Queue()
    async with pool.acquire() as listener, locked(db_url, "live") as live:

        def wake(_conn: object, _pid: int, channel: str, _payload: str) -> None:
            woken.put_nowait(channel)

        await listener.add_listener(outbox.CHANNEL, wake)
        await outbox.reap(live, "live")
        assert await asyncio.wait_for(woken.get(), 10) == outbox.CHANNEL
        await outbox.reap(live, "live")
        await listener.execute("SELECT 1")  # a notification would have arrived by now
        await listener.remove_listener(outbox.CHANNEL, wake)
    assert woken.empty()


async def test_a_dispatcher_unregistered_by_a_peer_is_told(pool: asyncpg.Pool,
                                                            db_url: str) -> None:
    """A reaper pass tells its caller when its own registration is gone (a peer once found its
    lock free), so it stops claiming as if it held the lock."""
    async with locked(db_url, "w") as conn:
        assert (await outbox.reap(conn, "w")).registered
        await pool.execute("DELETE FROM dispatchers")
        assert not (await outbox.reap(conn, "w")).registered


async def test_a_lock_session_has_short_server_keepalives(db_url: str) -> None:
    """The server is asked to probe a lock session's TCP connection after 5 s of silence,
    every 2 s, 3 times: a vanished host frees its lock in about 11 s, not hours."""
    async with locked(db_url, "w") as conn:
        shown = [await conn.fetchval(f"SHOW tcp_keepalives_{name}")
                 for name in ("idle", "interval", "count")]
    assert shown == ["5", "2", "3"]
