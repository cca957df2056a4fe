"""The dispatcher on a real PostgreSQL with scripted senders: retries, slots, loud bugs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from structlog.testing import capture_logs

from alertd import devices, settings
from alertd.delivery import outbox
from alertd.delivery.dispatcher import Dispatcher, Sender
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


async def _queue(pool: asyncpg.Pool, n: int) -> list[int]:
    """n order deliveries to iOS devices; their ids."""
    order_id = uuid.uuid4()
    await pool.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
    rows = []
    for i in range(n):
        device_id, _ = await devices.register(pool, "ios", f"tok-{i}", "ja")
        rows.append(outbox.NewDelivery(
            device_id=device_id, service="apns", kind="order", title="t", body="b",
            expires_at=datetime.now(UTC) + timedelta(hours=1), level=4, order_id=order_id,
            version=1))
    async with pool.acquire() as conn:
        await outbox.enqueue(conn, rows)
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
