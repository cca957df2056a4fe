"""A dispatcher's presence: its session lock and registration, and the reaper of dead peers.

A dispatcher claims only while its presence holds the lock of its current identity. Peers
that find that lock free take its leased rows at once (outbox.reap), so a crash delays no one
by a lease; a dispatcher that loses its lock while it lives must therefore stop sending what it
claimed ahead, and claims again under a new identity once it holds a new lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Callable

import asyncpg
import structlog

from alertd import db, logs
from alertd.delivery import outbox

log = structlog.get_logger(__name__)

LOCK_CHECK_S = 10.0  # a lock connection that answers no query for this long counts as lost


def identity() -> str:
    """A new identity of a dispatcher or a fan-out runner (host:pid:random): never reused, not
    even by this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Presence:
    """Holds one dispatcher's lock on one connection (which also LISTENs for new rows) and reaps
    dead peers every `reap_s`; each pass also proves the connection, and so the lock, alive."""

    def __init__(self, url: str, reap_s: float, wake: Callable[[], None],
                 lost: Callable[[], list[int]]) -> None:
        self.url = url
        self.reap_s = reap_s
        self.wake = wake  # new rows may be due: every service loop looks
        self.lost = lost  # the lock is lost: the dispatcher stops, gives the rows it dropped
        self.worker = identity()  # the identity claims are made under
        self.identities: list[str] = []  # every identity that held a lock: rows still ours
        self.holding = asyncio.Event()  # set while the lock of self.worker is held
        self.dropped: list[int] = []  # claimed, never sent, when a lock was lost: to hand back
        self.stopping = False
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Let go: run() returns soon even if a cancellation of it was swallowed (3.11's
        wait_for can lose one that arrives as its inner call finishes)."""
        self.stopping = True
        self._stop.set()

    async def run(self) -> None:
        """Hold the lock until stopped or cancelled, connecting again whenever the connection
        is lost."""
        while not self.stopping:
            try:
                conn = await db.connect_one(self.url)
            except Exception as exc:
                log.warning("outbox_listen_failed", error=logs.describe(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                continue
            try:
                await self._hold(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox_listener_lost", error=logs.describe(exc))
            except Exception as exc:  # a bug here must not stop the claims for good
                log.error("dispatcher_lock_crashed", error=logs.describe(exc), exc_info=exc)
            finally:
                self._lose()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1.0)
                if not conn.is_closed():
                    conn.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(1.0, self.reap_s))

    async def unregister(self, conn: asyncpg.Pool | asyncpg.Connection) -> None:
        """Forget every identity of ours (a clean stop: nothing of ours is left leased)."""
        if self.identities:
            await outbox.unregister(conn, self.identities)

    async def _hold(self, conn: asyncpg.Connection) -> None:
        """Lock, then reap every reap_s until the connection closes or our lock is gone."""
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _: closed.set())
        await self._lock(conn)
        await self._hand_back(conn)
        await conn.add_listener(outbox.CHANNEL, lambda *_: self.wake())
        # Before the first claim: a previous run's rows (a restart) are made due first.
        if not await self._reap(conn) or self.stopping:
            return
        self.holding.set()
        self.wake()
        log.info("dispatcher_holding", worker=self.worker)
        ended = asyncio.ensure_future(closed.wait())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            while not conn.is_closed() and not self.stopping:
                await asyncio.wait({ended, stopped}, timeout=self.reap_s,
                                   return_when=asyncio.FIRST_COMPLETED)
                if conn.is_closed() or self.stopping or not await self._reap(conn):
                    return
        finally:
            ended.cancel()
            stopped.cancel()

    async def _lock(self, conn: asyncpg.Connection) -> None:
        """Take the session lock of a fresh identity on `conn` and register it."""
        if self.worker in self.identities:
            self.worker = identity()
        while not await asyncio.wait_for(outbox.register(conn, self.worker), LOCK_CHECK_S):
            self.worker = identity()  # hashtext collided with a live dispatcher's
        self.identities.append(self.worker)

    async def _hand_back(self, conn: asyncpg.Connection) -> None:
        """After a lost lock: release the rows we dropped, and unregister our old identities so
        that our own reaper does not make our sends still under way due again (a repeat)."""
        old = [w for w in self.identities if w != self.worker]
        if old:
            await outbox.release(conn, self.dropped, old)
            await outbox.unregister(conn, old)
            self.dropped.clear()

    async def _reap(self, conn: asyncpg.Connection) -> bool:
        """One reaper pass; False when our own registration is gone (a peer found our lock
        free: we must not go on claiming as if we held it)."""
        reaped = await asyncio.wait_for(outbox.reap(conn, self.worker), LOCK_CHECK_S)
        if reaped.workers:
            log.warning("dispatchers_reaped", workers=list(reaped.workers),
                        deliveries=reaped.deliveries)
            self.wake()
        return reaped.registered

    def _lose(self) -> None:
        """Peers may take our leased rows from now on: the dispatcher drops what it claimed
        ahead (a peer reaps it, or we hand it back once we hold a new lock) and lets the sends
        already started finish; claims after the next lock use a new identity."""
        if not self.holding.is_set():
            return
        self.holding.clear()
        dropped = self.lost()
        self.dropped += dropped
        old, self.worker = self.worker, identity()
        if not self.stopping:
            log.warning("dispatcher_lock_lost", worker=old, dropped=len(dropped))

    def drop(self, worker: str, ids: list[int]) -> bool:
        """Whether rows just claimed under `worker` must not be sent (the lock was lost while
        the claim ran); such rows are kept to be handed back."""
        if worker == self.worker:
            return False
        self.dropped += ids
        return True
