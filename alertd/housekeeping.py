"""Housekeeping jobs (SQL): expired orders, stale locations, idle devices, and retention.

Each job works in small batches, each batch its own short transaction that skips rows others
hold (`FOR UPDATE SKIP LOCKED`): a purge or an erasure never waits behind an order's fan-out
or a dispatcher's claim, and never makes them wait for long. Each returns counts of what it
did (the scheduler records them and adds them to `alertd_job_items_total`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

import asyncpg
import structlog

from alertd import db, devices
from alertd.scheduler import JobContext

log = structlog.get_logger(__name__)

# Deliveries that reached their end; rows of an order still active are kept whatever their
# age (they say who holds the order, and so who is told when it is lifted).
_FINISHED: Final = "('sent', 'invalid_token', 'failed', 'cancelled')"


def _ago(ctx: JobContext, seconds: float) -> datetime:
    return ctx.now - timedelta(seconds=seconds)


async def expire_orders(ctx: JobContext) -> dict[str, int]:
    """Orders whose current version's expires_at has passed become `expired` (the inbox shows
    it), and their order pushes not sent yet are cancelled; one order per transaction."""
    expired = cancelled = 0
    while True:
        async with ctx.pool.acquire() as conn, conn.transaction(), db.bulk(conn):
            order_id = await conn.fetchval(
                "WITH due AS (SELECT o.id FROM orders o JOIN order_versions v"
                "   ON v.order_id = o.id AND v.version = o.version"
                "   WHERE o.state = 'active' AND v.expires_at <= $1"
                "   ORDER BY v.expires_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED)"
                " UPDATE orders SET state = 'expired', expired_at = now() FROM due"
                " WHERE orders.id = due.id RETURNING orders.id", ctx.now)
            if order_id is None:
                break
            status = await conn.execute(
                "UPDATE deliveries SET state = 'cancelled', reason = 'order expired',"
                " done_at = now() WHERE order_id = $1 AND state = 'pending'"
                " AND kind IN ('order', 'order_update')", order_id)
        n = _count(status)
        expired += 1
        cancelled += n
        log.info("order_expired", order_id=str(order_id), cancelled=n)
    return {"orders_expired": expired, "pushes_cancelled": cancelled}


async def _in_batches(ctx: JobContext,
                      step: Callable[[asyncpg.Pool, datetime, int], Awaitable[int]],
                      cutoff: datetime) -> int:
    """Run `step` (rows older than cutoff, at most batch_size a call) until a call does less
    than a whole batch; the rows it did in all. Each call is its own short transaction."""
    size = ctx.cfg.housekeeping.batch_size
    total = 0
    while True:
        n = await step(ctx.pool, cutoff, size)
        total += n
        if n < size:
            return total
        await asyncio.sleep(0)  # let the fan-out and requests in between batches


async def drop_stale_locations(ctx: JobContext) -> dict[str, int]:
    """Current locations not refreshed for housekeeping.location_max_age_s are dropped, as
    `DELETE /v1/me/location` drops one (the point index hears of each)."""
    cutoff = _ago(ctx, ctx.cfg.housekeeping.location_max_age_s)
    return {"locations_dropped": await _in_batches(ctx, devices.drop_stale_locations, cutoff)}


async def erase_idle_devices(ctx: JobContext) -> dict[str, int]:
    """Devices that have not used their credentials for housekeeping.device_max_idle_s are
    erased with everything they own, as `DELETE /v1/me` erases one."""
    cutoff = _ago(ctx, ctx.cfg.housekeeping.device_max_idle_s)
    return {"devices_erased": await _in_batches(ctx, devices.erase_idle, cutoff)}


async def purge(ctx: JobContext) -> dict[str, int]:
    """Finished deliveries, idempotency keys and quarantined items older than their retention
    are deleted."""
    hk = ctx.cfg.housekeeping
    return {
        "deliveries_purged": await _walk(
            ctx.pool, "deliveries", "created_at",
            f"state IN {_FINISHED} AND done_at < $3 AND NOT EXISTS (SELECT 1 FROM orders o"
            " WHERE o.id = t.order_id AND o.state = 'active')",
            _ago(ctx, hk.deliveries_retention_s), hk.batch_size),
        "idempotency_keys_purged": await _purge_idempotency(
            ctx.pool, _ago(ctx, hk.idempotency_retention_s), hk.batch_size),
        "quarantine_purged": await _walk(
            ctx.pool, "quarantine", "received_at", "received_at < $3",
            _ago(ctx, hk.quarantine_retention_s), hk.batch_size),
    }


async def _walk(pool: asyncpg.Pool, table: str, created: str, purgeable: str, cutoff: datetime,
                batch: int) -> int:
    """Delete the `purgeable` rows of a table keyed by an ever-growing id, oldest first, a
    range of `batch` ids at a time (read through the primary key, never a full scan), until a
    range reaches rows created after `cutoff` (all later ones are newer still)."""
    after, total = 0, 0
    while True:
        ids = await pool.fetch(f"SELECT id, {created} AS at FROM {table} WHERE id > $1"
                               " ORDER BY id LIMIT $2", after, batch)
        if not ids:
            return total
        last = ids[-1]["id"]
        status = await pool.execute(
            f"DELETE FROM {table} WHERE id = ANY(ARRAY(SELECT t.id FROM {table} t"
            f" WHERE t.id > $1 AND t.id <= $2 AND {purgeable} FOR UPDATE OF t SKIP LOCKED))",
            after, last, cutoff)
        total += _count(status)
        if ids[-1]["at"] >= cutoff:
            return total
        after = last
        await asyncio.sleep(0)


async def _purge_idempotency(pool: asyncpg.Pool, cutoff: datetime, batch: int) -> int:
    total = 0
    while True:
        status = await pool.execute(
            "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM"
            " idempotency_keys WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
            cutoff, batch)
        n = _count(status)
        total += n
        if n < batch:
            return total
        await asyncio.sleep(0)


def _count(status: str) -> int:
    """Rows a DELETE/UPDATE status string ("DELETE 12") names."""
    return int(status.rsplit(" ", 1)[-1])
