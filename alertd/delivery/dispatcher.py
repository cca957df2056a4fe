"""The dispatcher: claims due deliveries, sends them with bounded concurrency, records outcomes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
import structlog

from alertd import db, metrics, settings
from alertd.delivery import outbox
from alertd.delivery.outbox import Claimed, Result
from alertd.delivery.push import Outcome, PushMessage, thread_id_for

log = structlog.get_logger(__name__)

LEASE_MARGIN_S = 2.0  # a claim with less lease left than this is handed back, not sent


class Sender(Protocol):
    async def send(self, msg: PushMessage) -> Outcome: ...

    def paused_for(self) -> float: ...

    async def close(self) -> None: ...


def _ids(c: Claimed) -> dict[str, object]:
    """What a log line about a delivery names (only built when something is logged: binding
    context for every delivery costs more than the rare line about one)."""
    key = "order_id" if c.order_id is not None else "alert_id"
    return {"delivery_id": c.id, key: c.alert_id}


def message(c: Claimed, critical_levels: tuple[int, ...]) -> PushMessage:
    """The push message of a claimed delivery."""
    return PushMessage(
        delivery_id=c.id, apns_id=str(c.apns_id),
        platform="ios" if c.service == "apns" else "android", token=c.push_token,
        kind=c.kind, alert_id=c.alert_id, level=c.level, title=c.title, body=c.body,
        collapse_id=c.alert_id,
        thread_id=thread_id_for(c.alert_id) if c.order_id is not None else c.alert_id,
        expires_at=c.expires_at,
        priority=c.priority,
        critical=c.level is not None and c.level in critical_levels and c.kind != "order_lifted",
    )


class Dispatcher:
    """One dispatcher process's claim/send/record loop over every configured service."""

    def __init__(self, pool: asyncpg.Pool, cfg: settings.Settings,
                 senders: dict[str, tuple[Sender, int]]) -> None:
        self.pool = pool
        self.cfg = cfg
        self.senders = senders  # service -> (sender, concurrency)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.wakes = {service: asyncio.Event() for service in senders}
        self.stopping = asyncio.Event()
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.ahead: dict[str, collections.deque[Claimed]] = {
            service: collections.deque() for service in senders}
        self.results: list[Result] = []
        self.held: list[asyncio.Semaphore] = []  # send slots freed when `results` are committed
        self.invalid: list[tuple[Any, str]] = []
        self._flush_now = asyncio.Event()
        self._closing = False
        # Labelled metric children looked up once, not per delivery.
        self._latency = {service: metrics.SEND_LATENCY.labels(service) for service in senders}
        self._counted: dict[tuple[str, str], Any] = {}

    async def run(self) -> None:
        """Run until stop() is called, then finish or release in-flight deliveries."""
        listener = asyncio.create_task(self._listen())
        flusher = asyncio.create_task(self._flusher())
        loops = [asyncio.create_task(self._service_loop(s, n))
                 for s, (_, n) in self.senders.items()]
        try:
            await self.stopping.wait()
        finally:
            self.stopping.set()
            self._wake_all()
            # Loops are not cancelled: a claim in progress must finish and hand its rows to
            # tasks, or they would stay leased to a process that is gone.
            await asyncio.gather(*loops, return_exceptions=True)
            await self._drain()
            # The flusher is not cancelled: a cancelled flush would drop the outcomes it holds.
            self._closing = True
            self._flush_now.set()
            await asyncio.gather(flusher, return_exceptions=True)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self._flush()

    def stop(self) -> None:
        """Stop claiming; run() then finishes in-flight sends within the grace period."""
        self.stopping.set()
        self._wake_all()

    def _wake_all(self) -> None:
        for event in self.wakes.values():
            event.set()

    async def _drain(self) -> None:
        tasks = list(self.inflight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.cfg.dispatch.shutdown_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        unfinished = list(self.inflight)
        for queue in self.ahead.values():  # claimed ahead, never started
            unfinished += [c.id for c in queue]
            queue.clear()
        await self._flush()
        if unfinished:
            with contextlib.suppress(Exception):
                await outbox.release(self.pool, unfinished, self.worker)
            log.info("dispatcher_released", deliveries=len(unfinished))

    async def _listen(self) -> None:
        while True:
            try:
                conn = await db.connect_one(self.cfg.database.url)
            except Exception as exc:
                log.warning("outbox_listen_failed", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            try:
                await conn.add_listener(outbox.CHANNEL, lambda *_: self._wake_all())
                self._wake_all()
                while not conn.is_closed():
                    await asyncio.sleep(5.0)
                    await conn.execute("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox_listener_lost", error=str(exc))
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _service_loop(self, service: str, concurrency: int) -> None:
        dcfg = self.cfg.dispatch
        sender, _ = self.senders[service]
        room = asyncio.Semaphore(concurrency)
        # Rows claimed ahead of free send slots: a slot that frees up is refilled at once from
        # here instead of waiting for a claim query's round trip. At most `concurrency` rows
        # wait here; their lease is far longer than the wait.
        ahead = self.ahead[service]
        top_up = max(1, min(dcfg.batch_size, concurrency) // 4)
        exhausted = False
        while not self.stopping.is_set():
            while ahead and room._value > 0:
                c = ahead.popleft()
                await room.acquire()
                self.inflight[c.id] = asyncio.create_task(self._deliver(sender, c, room))
            want = min(dcfg.batch_size, concurrency - len(ahead))
            if want >= top_up or (not ahead and want > 0):
                try:
                    claimed = await outbox.claim(self.pool, service, want, dcfg.lease_s,
                                                 self.worker)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("claim_failed", service=service, error=str(exc))
                    claimed = []
                ahead.extend(claimed)
                exhausted = len(claimed) < want
                if claimed:
                    continue  # start them, and there may be more due right now
            # Wait for a free slot (rows are waiting) or for new work (NOTIFY, poll).
            await self._wait(service, 0.05 if ahead or not exhausted else dcfg.poll_s)

    async def _wait(self, service: str, seconds: float) -> None:
        event = self.wakes[service]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()

    async def _deliver(self, sender: Sender, c: Claimed, room: asyncio.Semaphore) -> None:
        handed_over = False
        try:
            now = datetime.now(UTC)
            early = self._without_sending(c, sender, now)
            if early is not None:
                self.results.append(early)
                self.held.append(room)
                handed_over = True
                self._flush_now.set()
                self.inflight.pop(c.id, None)
                return
            if c.token_state != "active":
                outcome = Outcome("invalid_token", reason="push token disabled")
            elif c.expires_at <= now:
                outcome = Outcome("failed", reason="expired before it could be sent")
            else:
                start = time.perf_counter()
                try:
                    msg = message(c, self.cfg.apns.critical_levels)
                except ValueError as exc:  # a row that can never make a valid push
                    msg, outcome = None, Outcome("failed", reason=f"invalid message: {exc}")
                try:
                    if msg is not None:
                        outcome = await sender.send(msg)
                except Exception as exc:  # a sender bug must not lose the delivery
                    log.exception("send_crashed", **_ids(c))
                    outcome = Outcome("retry", reason=f"sender error: {type(exc).__name__}")
                self._latency[c.service].observe(time.perf_counter() - start)
            dcfg = self.cfg.dispatch
            result = outbox.decide(c, outcome, datetime.now(UTC),
                                   max_attempts=dcfg.max_attempts, base_s=dcfg.backoff_base_s,
                                   max_s=dcfg.backoff_max_s)
            self._count(c.service, result.state)
            if result.state == "invalid_token":
                self.invalid.append((c.device_id, c.push_token))
            if result.state != "sent":
                log.info("delivery_outcome", state=result.state, reason=result.reason,
                         attempts=c.attempts, **_ids(c))
            # The send slot stays taken until the outcome is committed (see _flush): at any
            # moment at most `concurrency` sends per service are unrecorded, which bounds what
            # a crash can make us send twice.
            self.results.append(result)
            self.held.append(room)
            handed_over = True
            # Group commit: the flusher writes as soon as it is free.
            self._flush_now.set()
            self.inflight.pop(c.id, None)
        finally:
            if not handed_over:
                room.release()
                self.wakes[c.service].set()

    def _without_sending(self, c: Claimed, sender: Sender, now: datetime) -> Result | None:
        """The outcome of a claimed delivery that must not be sent now, if so."""
        if c.kind in ("order", "order_update") and c.order_state == "lifted":
            # Lifted after this row was claimed (or by a node that died holding it): an
            # order that arrived after its 解除 would put a lifted order back on the phone.
            return Result(c.id, "cancelled", None, None, "order lifted before sending")
        margin = min(LEASE_MARGIN_S, self.cfg.dispatch.lease_s / 4)
        if (c.lease_until - now).total_seconds() < margin:
            # Held too long (the database was away?): another node may own it by now.
            return Result(c.id, "pending", now, None, "lease ran out before sending",
                          refund=True)
        pause = sender.paused_for()
        if pause > 0:
            # Waiting out a quota pause could outlast the lease: hand it back for later.
            due = now + timedelta(seconds=min(pause, self.cfg.dispatch.backoff_max_s))
            return Result(c.id, "pending", due, None, "service paused", refund=True)
        return None

    def _count(self, service: str, state: str) -> None:
        counter = self._counted.get((service, state))
        if counter is None:
            counter = self._counted[(service, state)] = metrics.DELIVERIES.labels(service, state)
        counter.inc()

    async def _flusher(self) -> None:
        interval = self.cfg.dispatch.flush_ms / 1000
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), interval)
            self._flush_now.clear()
            await self._flush()

    async def _flush(self) -> None:
        if not self.results and not self.invalid:
            return
        results, self.results = self.results, []
        held, self.held = self.held, []
        invalid, self.invalid = self.invalid, []
        try:
            async with self.pool.acquire() as conn:
                if invalid:
                    async with conn.transaction():
                        await outbox.record(conn, results, self.worker)
                        await outbox.invalidate_tokens(conn, invalid)
                else:
                    await outbox.record(conn, results, self.worker)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Keep them for the next flush; the lease protects the rows meanwhile.
            log.warning("record_failed", error=str(exc), results=len(results))
            self.results[:0] = results
            self.held[:0] = held
            self.invalid[:0] = invalid
            return
        for room in held:
            room.release()
        if held:
            self._wake_all()
