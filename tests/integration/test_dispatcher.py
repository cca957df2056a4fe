"""The dispatcher on a real PostgreSQL with scripted senders: retries, slots, loud bugs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from structlog.testing import capture_logs

from alertd import db, devices, settings
from alertd.delivery import outbox
from alertd.delivery.dispatcher import Dispatcher, Sender
from alertd.delivery.presence import Presence
from alertd.delivery.push import Outcome, PushMessage
from tests.waiting import wait_for

FAST = {"ALERTD_DISPATCH_BACKOFF_BASE_S": "0.05", "ALERTD_DISPATCH_BACKOFF_MAX_S": "0.1",
        "ALERTD_DISPATCH_POLL_S": "0.05"}


class Scripted:
    """A sender whose answer to each send is given by a function of the send's number."""

    def __init__(self, answer: Callable[[int], Outcome]) -> None:
        self.answer = answer
        self.sends = 0
        self.running = 0
        self.most_at_once = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def start(self) -> None:
        """Nothing to start."""

    async def send(self, msg: PushMessage) -> Outcome:
        """Count the send, wait at the gate, answer as scripted (which may raise)."""
        self.sends += 1
        number = self.sends
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gate.wait()
            return self.answer(number)
        finally:
            self.running -= 1

    def paused_for(self) -> float:
        """Never paused."""
        return 0.0

    async def close(self) -> None:
        """Nothing to close."""


async def _queue(pool: asyncpg.Pool, n: int, leased_to: str | None = None) -> list[int]:
    """n order deliveries to iOS devices, claimed for 300 s by `leased_to` in the transaction
    that writes them when given (no dispatcher sees them due); their ids."""
    order_id = uuid.uuid4()
    await pool.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
    rows = []
    for i in range(n):
        device_id, _ = await devices.register(pool, "ios", f"tok-{i}", "ja")
        rows.append(outbox.NewDelivery(
            device_id=device_id, service="apns", kind="order", title="t", body="b",
            expires_at=datetime.now(UTC) + timedelta(hours=1), level=4, order_id=order_id,
            version=1))
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, rows)
        if leased_to is not None:
            await outbox.claim(conn, "apns", n, 300.0, leased_to)
    return [r["id"] for r in await pool.fetch("SELECT id FROM deliveries ORDER BY id")]


@asynccontextmanager
async def dispatching(pool: asyncpg.Pool, db_url: str, sender: Sender,
                      concurrency: int = 10) -> AsyncIterator[Dispatcher]:
    """A dispatcher running over the apns service with this sender, stopped afterwards."""
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": db_url, **FAST})
    dispatcher = Dispatcher(pool, cfg, {"apns": (sender, concurrency)})
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await task


async def _states(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    rows = await pool.fetch("SELECT state, attempts FROM deliveries ORDER BY id")
    return [(r["state"], r["attempts"]) for r in rows]


async def test_a_sender_bug_is_retried_and_logged_loudly(pool: asyncpg.Pool, db_url: str) -> None:
    """A sender that raises once then succeeds: the delivery ends sent, the bug is an ERROR."""
    [delivery] = await _queue(pool, 1)

    def answer(number: int) -> Outcome:
        if number == 1:
            raise KeyError("token")
        return Outcome("sent", provider_id="p-1")

    sender = Scripted(answer)
    with capture_logs() as logged:
        async with dispatching(pool, db_url, sender):
            async def sent() -> bool:
                return await _states(pool) == [("sent", 2)]

            await wait_for(sent, "the delivery sent on its second attempt")
    assert sender.sends == 2
    [crash] = [e for e in logged if e["event"] == "send_crashed"]
    assert (crash["log_level"], crash["delivery_id"], crash["error"]) == (
        "error", delivery, "KeyError: 'token'")
    assert isinstance(crash["exc_info"], KeyError)
    [retry] = [e for e in logged if e["event"] == "delivery_outcome"]
    assert (retry["state"], retry["reason"]) == ("pending", "sender error: KeyError: 'token'")


async def test_a_sender_that_always_fails_gives_up_after_max_attempts(
        pool: asyncpg.Pool, db_url: str) -> None:
    """A sender bug on every attempt ends failed after max_attempts, with the bug as reason."""
    await _queue(pool, 1)

    def answer(number: int) -> Outcome:
        raise RuntimeError("always")

    sender = Scripted(answer)
    with capture_logs():
        async with dispatching(pool, db_url, sender):
            async def failed() -> bool:
                return (await _states(pool))[0][0] == "failed"

            await wait_for(failed, "the delivery given up")
    reason = await pool.fetchval("SELECT reason FROM deliveries")
    assert reason == "gave up after 8 attempts: sender error: RuntimeError: always"
    assert sender.sends == 8


async def test_send_slots_bound_the_sends_in_flight(pool: asyncpg.Pool, db_url: str) -> None:
    """With concurrency 3, exactly 3 sends run at once while 10 are due; all end sent."""
    await _queue(pool, 10)
    sender = Scripted(lambda number: Outcome("sent"))
    sender.gate.clear()
    async with dispatching(pool, db_url, sender, concurrency=3) as dispatcher:
        async def three_waiting() -> bool:
            return sender.running == 3

        await wait_for(three_waiting, "three sends in flight")
        assert dispatcher.slots["apns"].free == 0
        sender.gate.set()

        async def all_sent() -> bool:
            return await _states(pool) == [("sent", 1)] * 10

        await wait_for(all_sent, "every delivery sent")
        assert dispatcher.slots["apns"].free == 3
    assert (sender.sends, sender.most_at_once) == (10, 3)


async def _dead_dispatcher(db_url: str, worker: str) -> None:
    """Register a dispatcher identity on a session that then ends: its lock is free."""
    conn = await db.connect_one(db_url)
    try:
        assert await outbox.register(conn, worker)
    finally:
        await conn.close()


async def test_rows_of_a_dead_dispatcher_go_out_at_start(pool: asyncpg.Pool, db_url: str) -> None:
    """A dispatcher starting (a restart) sends at once the rows a dead dispatcher leased for
    300 s: they are sent once each, and the dead registration is gone."""
    await _dead_dispatcher(db_url, "gone:1:dead")
    await _queue(pool, 4, leased_to="gone:1:dead")
    sender = Scripted(lambda number: Outcome("sent"))
    async with dispatching(pool, db_url, sender) as dispatcher:
        async def all_sent() -> bool:
            return await _states(pool) == [("sent", 2)] * 4

        await wait_for(all_sent, "the dead dispatcher's rows sent")
        workers = await pool.fetch("SELECT worker FROM dispatchers")
        assert [r["worker"] for r in workers] == [dispatcher.presence.worker]
    assert sender.sends == 4


async def test_rows_of_a_peer_that_dies_go_out_at_once(pool: asyncpg.Pool, db_url: str) -> None:
    """A running dispatcher sends the rows of a peer that dies holding a 300 s lease on them
    (its next reaper pass finds the peer's lock free)."""
    sender = Scripted(lambda number: Outcome("sent"))
    async with dispatching(pool, db_url, sender) as dispatcher:
        async def holding() -> bool:
            return dispatcher.presence.holding.is_set()

        await wait_for(holding, "the dispatcher holding its lock")
        peer = await db.connect_one(db_url)
        assert await outbox.register(peer, "peer:2:dying")
        await _queue(pool, 3, leased_to="peer:2:dying")
        assert await _states(pool) == [("sending", 1)] * 3
        await peer.close()  # the peer dies

        async def all_sent() -> bool:
            return await _states(pool) == [("sent", 2)] * 3

        await wait_for(all_sent, "the dead peer's rows sent")
    assert sender.sends == 3


async def test_a_lost_lock_stops_the_rows_claimed_ahead(pool: asyncpg.Pool, db_url: str) -> None:
    """When its lock session is killed, a dispatcher does not send the rows it claimed ahead
    (they are handed back), finishes the sends under way, and claims again under a new
    identity: every row is sent exactly once."""
    await _queue(pool, 6)
    sender = Scripted(lambda number: Outcome("sent"))
    sender.gate.clear()
    with capture_logs() as logged:
        async with dispatching(pool, db_url, sender, concurrency=2) as dispatcher:
            async def full() -> bool:
                return sender.running == 2 and len(dispatcher.ahead["apns"]) == 2

            await wait_for(full, "two sends under way and two rows claimed ahead")
            first = dispatcher.presence.worker
            killed = await pool.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid = $1::int4::oid AND objid = hashtext($2)::oid AND objsubid = 2",
                outbox.DISPATCHER_LOCKS, first)
            assert killed

            async def relocked() -> bool:
                return dispatcher.presence.holding.is_set() and dispatcher.presence.worker != first

            await wait_for(relocked, "a new lock under a new identity")
            # The sends under way stay ours: our own reaper did not make them due again.
            under_way = await pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE state = 'sending' AND claimed_by = $1",
                first)
            assert under_way == 2
            sender.gate.set()

            async def all_sent() -> bool:
                return [s for s, _ in await _states(pool)] == ["sent"] * 6

            await wait_for(all_sent, "every delivery sent")
    assert sender.sends == 6
    [lost] = [e for e in logged if e["event"] == "dispatcher_lock_lost"]
    assert (lost["worker"], lost["dropped"]) == (first, 2)


async def test_a_stopped_presence_returns_without_being_cancelled(db_url: str) -> None:
    """Presence.run returns once stop() is called, even when no cancellation reaches it (3.11's
    wait_for can swallow one), and the lock is then released for peers."""
    p = Presence(db_url, reap_s=30.0, wake=lambda: None, lost=list)
    task = asyncio.create_task(p.run())
    await asyncio.wait_for(p.holding.wait(), 30)
    p.stop()
    await asyncio.wait_for(task, 10)  # would wait a whole reap_s (30 s) without stop()
    assert not p.holding.is_set()
    conn = await asyncpg.connect(db_url)
    try:
        assert await outbox.register(conn, p.identities[-1])  # its lock is free again
    finally:
        await conn.close()


class Gated:
    """A sender that answers `sent` for a token once that token's gate opens."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        """Nothing to start."""

    async def send(self, msg: PushMessage) -> Outcome:
        """Wait for this token's gate."""
        await self.gates.setdefault(msg.token, asyncio.Event()).wait()
        return Outcome("sent")

    def paused_for(self) -> float:
        """Never paused."""
        return 0.0

    async def close(self) -> None:
        """Nothing to close."""


async def test_an_outcome_commits_while_an_earlier_group_commit_waits(
        pool: asyncpg.Pool, db_url: str) -> None:
    """Group commits overlap: while one outcome's commit waits on a row lock, a later outcome
    is committed (its send slot freed) by the next group commit instead of queueing behind."""
    await _queue(pool, 2)
    tokens = {r["push_token"]: r["id"] for r in await pool.fetch(
        "SELECT v.push_token, d.id FROM deliveries d JOIN devices v ON v.id = d.device_id")}
    sender = Gated()
    async with dispatching(pool, db_url, sender) as dispatcher:
        async def both_claimed() -> bool:
            return len(dispatcher.inflight) == 2
        await wait_for(both_claimed, "both deliveries in flight")
        first, second = sorted(tokens)
        async with pool.acquire() as blocker, blocker.transaction():
            await blocker.execute("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE",
                                  tokens[first])
            sender.gates.setdefault(first, asyncio.Event()).set()

            async def first_commit_waiting() -> bool:
                return bool(await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE deliveries d%'"))
            await wait_for(first_commit_waiting, "the first outcome's commit blocked")
            sender.gates.setdefault(second, asyncio.Event()).set()

            async def second_sent() -> bool:
                return await pool.fetchval("SELECT state FROM deliveries WHERE id = $1",
                                           tokens[second]) == "sent"
            await wait_for(second_sent, "the second outcome committed meanwhile")
            assert await pool.fetchval("SELECT state FROM deliveries WHERE id = $1",
                                       tokens[first]) == "sending"

        async def both_sent() -> bool:
            return await _states(pool) == [("sent", 1)] * 2
        await wait_for(both_sent, "the first outcome committed once the lock went")
