"""The dispatcher: claims due deliveries, sends them with bounded concurrency, records outcomes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
import structlog

from alertd import logs, metrics, settings
from alertd.delivery import outbox, outcomes
from alertd.delivery.outbox import Claimed, Result
from alertd.delivery.presence import LOCK_CHECK_S, Presence
from alertd.delivery.push import Outcome, PushMessage, thread_id_for

log = structlog.get_logger(__name__)

LEASE_MARGIN_S = 2.0  # a claim with less lease left than this is handed back, not sent
FLUSHES_IN_FLIGHT = 2  # group commits of outcomes under way at once (see Dispatcher._flusher)


class Sender(Protocol):
    """A push service client, as the daemon starts, uses and stops it.

    It does not limit its own concurrency: the dispatcher's send slots do (see Slots).
    """

    async def start(self) -> None:
        """Load credentials and open connections; raises ConfigError when misconfigured."""

    async def send(self, msg: PushMessage) -> Outcome:
        """Send one push; provider and network trouble is an Outcome, anything raised a bug."""

    def paused_for(self) -> float:
        """Seconds the whole service asked to be left alone for (0 when not paused)."""

    async def close(self) -> None:
        """Close connections and stop background tasks."""


class Slots:
    """The send slots of one service: the one place its concurrency limit is enforced.

    A slot is taken when a send starts and given back only once the send's outcome is
    committed (see Dispatcher._flush): at any moment at most `size` sends of the service are
    unrecorded, which bounds what a crash can make us send twice.
    """

    __slots__ = ("free", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size

    def take(self) -> None:
        """Take a free slot (the caller checked `free`)."""
        if self.free <= 0:
            raise RuntimeError("no free send slot")
        self.free -= 1

    def give_back(self, n: int = 1) -> None:
        """Return slots whose sends are over and recorded (or were never recorded)."""
        self.free = min(self.free + n, self.size)


@dataclass(slots=True)
class Batch:
    """Outcomes waiting for the next group commit, with what that commit settles.

    The invariant kept here and nowhere else: each result holds one send slot of its service
    until the batch is committed, and a refused token is disabled in the same commit as the
    outcome that refused it.
    """

    results: list[Result] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=dict)  # service -> send slots held
    invalid: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (device, token)

    def add(self, c: Claimed, result: Result) -> None:
        """Take over a claimed delivery's outcome and the send slot it holds."""
        self.results.append(result)
        self.slots[c.service] = self.slots.get(c.service, 0) + 1
        if result.state == "invalid_token":
            self.invalid.append((c.device_id, c.push_token))

    def __bool__(self) -> bool:
        return bool(self.results)

    def before(self, later: Batch) -> Batch:
        """This batch followed by a later one (a failed commit is tried again, in order)."""
        slots = dict(self.slots)
        for service, n in later.slots.items():
            slots[service] = slots.get(service, 0) + n
        return Batch(self.results + later.results, slots, self.invalid + later.invalid)


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
    """One dispatcher process's claim/send/record loop over every configured service.

    It claims only while its presence holds its lock (see presence): when the lock is lost
    while the process lives, the rows claimed ahead are not sent and the sends already started
    finish.
    """

    def __init__(self, pool: asyncpg.Pool, cfg: settings.Settings,
                 senders: dict[str, tuple[Sender, int]]) -> None:
        self.pool = pool
        self.cfg = cfg
        self.senders = senders  # service -> (sender, concurrency)
        self.presence = Presence(cfg.database.url, cfg.dispatch.reap_s, self._wake_all,
                                 self._lost_lock)
        self.wakes = {service: asyncio.Event() for service in senders}
        self.stopping = asyncio.Event()
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.ahead: dict[str, collections.deque[Claimed]] = {
            service: collections.deque() for service in senders}
        self.slots = {service: Slots(n) for service, (_, n) in senders.items()}
        self.batch = Batch()  # outcomes not committed yet
        self._flush_now = asyncio.Event()
        self._closing = False
        # Labelled metric children looked up once, not per delivery; outcomes are counted here
        # and added to the Prometheus counter once per flush, not per delivery.
        self._latency = {service: metrics.SEND_LATENCY.labels(service) for service in senders}
        self._counted: dict[tuple[str, str], Any] = {}
        self._tally: dict[tuple[str, str], int] = {}

    async def run(self) -> None:
        """Run until stop() is called, then finish or release in-flight deliveries."""
        listener = asyncio.create_task(self.presence.run())
        flusher = asyncio.create_task(self._flusher())
        loops = [asyncio.create_task(self._service_loop(s)) for s in self.senders]
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
            await self._flush()
            with contextlib.suppress(Exception):  # nothing of ours is left leased
                await self.presence.unregister(self.pool)
            self.presence.stop()
            listener.cancel()
            # Bounded: the presence returns on its own once stopped, even when the
            # cancellation was lost inside one of its waits.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(listener, return_exceptions=True),
                                       LOCK_CHECK_S)

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
                await outbox.release(self.pool, unfinished, self.presence.identities)
            log.info("dispatcher_released", deliveries=len(unfinished))

    def _lost_lock(self) -> list[int]:
        """Our lock is lost: the rows claimed ahead are not ours to send any more (see
        presence); their ids."""
        dropped = [c.id for queue in self.ahead.values() for c in queue]
        for queue in self.ahead.values():
            queue.clear()
        return dropped

    async def _service_loop(self, service: str) -> None:
        dcfg = self.cfg.dispatch
        sender, _ = self.senders[service]
        slots = self.slots[service]
        # Rows claimed ahead of free send slots: a slot that frees up is refilled at once from
        # here instead of waiting for a claim query's round trip. At most `slots.size` rows
        # wait here; their lease is far longer than the wait.
        ahead = self.ahead[service]
        # Claims of half the slots, not smaller: PostgreSQL spends a fixed ~0.5-0.8 ms on each
        # statement (planning, commit), and half the slots still wait here when a claim starts.
        top_up = max(1, min(dcfg.batch_size, slots.size) // 2)
        exhausted = False
        while not self.stopping.is_set():
            if not self.presence.holding.is_set():
                await self._wait(service, dcfg.poll_s)  # woken once the lock is held
                continue
            while ahead and slots.free > 0:
                c = ahead.popleft()
                slots.take()
                self.inflight[c.id] = asyncio.create_task(self._deliver(sender, c))
            want = min(dcfg.batch_size, slots.size - len(ahead))
            if want >= top_up or (not ahead and want > 0):
                worker = self.presence.worker
                try:
                    claimed = await outbox.claim(self.pool, service, want, dcfg.lease_s, worker)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("claim_failed", service=service, error=logs.describe(exc))
                    claimed = []
                if self.presence.drop(worker, [c.id for c in claimed]):
                    continue  # the lock was lost while claiming
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

    async def _deliver(self, sender: Sender, c: Claimed) -> None:
        """Send one claimed delivery and hand its outcome, with its send slot, to the batch."""
        try:
            result = await self._attempt(sender, c)
        except BaseException as exc:
            # Cancelled at shutdown, or a bug here: nothing to record. The slot is free again;
            # the row, still in `inflight`, is handed back by _drain (or its lease ends).
            self.slots[c.service].give_back()
            self.wakes[c.service].set()
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("deliver_crashed", error=logs.describe(exc), **_ids(c))
            raise
        self.batch.add(c, result)
        self.inflight.pop(c.id, None)
        self._flush_now.set()  # group commit: the flusher writes as soon as it is free

    async def _attempt(self, sender: Sender, c: Claimed) -> Result:
        """What to record for a claimed delivery: a reason not to send it, or its send."""
        now = datetime.now(UTC)
        early = self._without_sending(c, sender, now)
        if early is not None:
            return early
        outcome = await self._send(sender, c, now)
        dcfg = self.cfg.dispatch
        # Only a retry's due time needs the clock after the send.
        result = outbox.decide(c, outcome, datetime.now(UTC) if outcome.status == "retry" else now,
                               max_attempts=dcfg.max_attempts, base_s=dcfg.backoff_base_s,
                               max_s=dcfg.backoff_max_s)
        key = (c.service, result.state)
        self._tally[key] = self._tally.get(key, 0) + 1
        if result.state != "sent":
            log.info("delivery_outcome", state=result.state, reason=result.reason,
                     attempts=c.attempts, **_ids(c))
        return result

    async def _send(self, sender: Sender, c: Claimed, now: datetime) -> Outcome:
        if c.token_state != "active":
            return Outcome("invalid_token", reason="push token disabled")
        if c.expires_at <= now:
            return Outcome("failed", reason="expired before it could be sent")
        try:
            msg = message(c, self.cfg.apns.critical_levels)
        except ValueError as exc:  # a row that can never make a valid push
            return Outcome("failed", reason=f"invalid message: {exc}")
        start = time.perf_counter()
        try:
            return await sender.send(msg)
        except Exception as exc:
            # A sender bug must not lose an evacuation order: it is retried like a timeout
            # (bounded by max_attempts and the expiry), and said loudly.
            log.error("send_crashed", error=logs.describe(exc), exc_info=exc, **_ids(c))
            crashed = outcomes.from_exception(exc)
            return dataclasses.replace(crashed, reason=f"sender error: {crashed.reason}")
        finally:
            self._latency[c.service].observe(time.perf_counter() - start)

    def _without_sending(self, c: Claimed, sender: Sender, now: datetime) -> Result | None:
        """The outcome of a claimed delivery that must not be sent now, if so."""
        if c.kind in ("order", "order_update") and c.order_state == "lifted":
            # Lifted after this row was claimed (or by a node that died holding it): an
            # order that arrived after its 解除 would put a lifted order back on the phone.
            return Result(c.id, "cancelled", None, None, "order lifted before sending")
        if not self.presence.holding.is_set():
            # Peers may have taken it since our lock was lost: only sends already started go on.
            return Result(c.id, "pending", now, None, "dispatcher lost its lock", refund=True)
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

    def _publish_counts(self) -> None:
        """Add the outcomes counted since the last call to the Prometheus counter."""
        for key, n in self._tally.items():
            counter = self._counted.get(key)
            if counter is None:
                counter = self._counted[key] = metrics.DELIVERIES.labels(*key)
            counter.inc(n)
        self._tally.clear()

    async def _flusher(self) -> None:
        """Group commits of outcomes, FLUSHES_IN_FLIGHT at a time: a send slot is held until
        its outcome is committed, so while one commit is under way the next one starts with
        what came meanwhile instead of waiting for it. Rows of different flushes are distinct
        (each is held by one claim); a batch that disables tokens waits for the others to end,
        so two transactions never lock the same devices in turn."""
        interval = self.cfg.dispatch.flush_ms / 1000
        running: set[asyncio.Task[None]] = set()
        try:
            while not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_now.wait(), interval)
                self._flush_now.clear()
                if running and (len(running) >= FLUSHES_IN_FLIGHT or self.batch.invalid):
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    if self.batch.invalid and running:
                        await asyncio.wait(running)
                if not self.batch:
                    self._publish_counts()
                    continue
                task = asyncio.create_task(self._flush())
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            await asyncio.gather(*running, return_exceptions=True)

    async def _flush(self) -> None:
        self._publish_counts()
        if not self.batch:
            return
        batch, self.batch = self.batch, Batch()
        try:
            async with self.pool.acquire() as conn:
                if batch.invalid:
                    async with conn.transaction():
                        await outbox.record(conn, batch.results, self.presence.identities)
                        await outbox.invalidate_tokens(conn, batch.invalid)
                else:
                    await outbox.record(conn, batch.results, self.presence.identities)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Keep them for the next flush; the lease protects the rows meanwhile.
            log.warning("record_failed", error=logs.describe(exc), results=len(batch.results))
            self.batch = batch.before(self.batch)
            return
        for service, n in batch.slots.items():
            self.slots[service].give_back(n)
            self.wakes[service].set()
