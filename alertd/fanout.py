"""Fan-out runners: they write the streamed fan-outs of large orders, a chunk per transaction
(pipeline.continue_fanout), in every process with the api or feeds role.

A runner wakes when an order that streams commits (NOTIFY on pipeline.FANOUT_CHANNEL) and every
POLL_S besides, so that a fan-out whose runner died (its lease passed) is taken over by
another. On a clean stop it hands what it holds back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from alertd import backoff, db, logs, pipeline
from alertd.context import Context
from alertd.delivery import presence

log = structlog.get_logger(__name__)

POLL_S = 5.0  # how often a runner looks for fan-outs left by a dead runner
RETRY_S = 1.0  # the wait before reconnecting after the database failed


class Runner:
    """Writes every streamed fan-out it can take until stopped."""

    def __init__(self, context: Context, owner: str | None = None) -> None:
        self.context = context
        self.owner = owner or presence.identity()  # never reused
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Write fan-outs until `stop` is set; the database failing is waited out."""
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self.wake.set())
        try:
            while not stop.is_set():
                try:
                    conn = await db.connect_one(self.context.cfg.database.url)
                except Exception as exc:
                    log.warning("fanout_connect_failed", error=logs.describe(exc))
                    await backoff.pause(stop, RETRY_S)
                    continue
                try:
                    await conn.add_listener(pipeline.FANOUT_CHANNEL, self._notified)
                    while not stop.is_set():
                        self.wake.clear()
                        await self.drain(stop)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.wake.wait(), POLL_S)
                except Exception as exc:  # the database went away: the leases keep the rows
                    log.warning("fanout_failed", error=logs.describe(exc))
                    await backoff.pause(stop, RETRY_S)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
        finally:
            stopping.cancel()
            with contextlib.suppress(Exception):
                await pipeline.release_fanouts(self.context.pool, self.owner)

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Write chunks until there is none to take (or stop is set); the rows written."""
        written = 0
        c = self.context
        while stop is None or not stop.is_set():
            step = await pipeline.continue_fanout(c.pool, c.table, c.cfg, self.owner)
            if step is None:
                break
            written += step.written
        return written

    def _notified(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.wake.set()
