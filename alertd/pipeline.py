"""Accepting orders: one transaction from order version to rendered outbox rows and NOTIFY.

An order reaching more devices than `chunk` (orders.fanout_chunk) is accepted with the rows of
its first chunk and a fan-out row naming the devices it matched beyond (migration 0027); once
it commits, a fan-out runner (alertd.fanout) writes the rest a chunk per transaction through
continue_fanout, so the first pushes go out without waiting for a million rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
import structlog

from alertd import db, errors, households, logs, orders, plans, progress, render, settings
from alertd.delivery import outbox
from alertd.orders import Order, OrderSpec
from alertd.points import Points
from geo import municipalities

log = structlog.get_logger(__name__)

LIFT_TTL = timedelta(hours=24)
# Fan-out runners LISTEN on it; accepting an order that streams NOTIFYs it (delivered at commit).
FANOUT_CHANNEL = "alertd_fanout"
# The owner of a fan-out set aside after its chunk failed: no runner is named so, so it waits
# out its lease (orders.fanout_lease_s) before any runner tries it again.
FANOUT_SET_ASIDE = "(set aside after a failure)"


@dataclass(frozen=True, slots=True)
class Accepted:
    """What accepting an order (or a version of it) did."""

    order_id: uuid.UUID
    version: int
    devices: int
    created: bool
    notified: progress.Notified = field(default_factory=progress.Notified)  # pushes queued


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An order's current version as the staff list shows it, with the order's counts."""

    id: uuid.UUID
    version: int
    state: str
    source: str
    level: int
    hazard: str
    headline: dict[str, str]
    expires_at: datetime
    created_at: datetime
    counts: progress.OrderCounts

    @classmethod
    def from_row(cls, row: asyncpg.Record, counts: progress.OrderCounts) -> OrderSummary:
        """Build from an orders row joined with its current version."""
        return cls(id=row["id"], version=row["version"], state=row["state"],
                   source=row["source"], level=row["level"], hazard=row["hazard"],
                   headline=row["headline"], expires_at=row["expires_at"],
                   created_at=row["created_at"], counts=counts)

    def as_json(self) -> dict[str, Any]:
        """The summary as the staff API shows it."""
        return {"id": str(self.id), "version": self.version, "state": self.state,
                "source": self.source, "level": self.level, "hazard": self.hazard,
                "headline": self.headline, "expires_at": self.expires_at.isoformat(),
                "created_at": self.created_at.isoformat(),
                # the order as a whole, as GET /v1/staff/orders/{id} counts it
                **{k: v for k, v in self.counts.as_json().items() if k in orders.COUNTS}}


async def _devices(conn: asyncpg.Connection, seqs: np.ndarray, *,
                   drill_only: bool = False) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        # FOR KEY SHARE: a device erased meanwhile must wait for this order's rows, not make
        # the whole order fail on the reference check of its deliveries (migration 0026).
        "SELECT id, platform, locale FROM devices WHERE seq = ANY($1::bigint[])"
        " AND token_state = 'active' AND ($2::boolean IS FALSE OR drill) FOR KEY SHARE",
        seqs.tolist(), drill_only,
    )
    return rows


async def _reachable(conn: asyncpg.Connection, seqs: np.ndarray, *,
                     drill_only: bool = False) -> int:
    """How many of these devices _devices would take (nothing locked: a count for the answer
    and the progress; the rows are written from what holds when each chunk is written)."""
    n: int = await conn.fetchval(
        "SELECT count(*) FROM devices WHERE seq = ANY($1::bigint[])"
        " AND token_state = 'active' AND ($2::boolean IS FALSE OR drill)",
        seqs.tolist(), drill_only,
    )
    return n


async def _plans(conn: asyncpg.Connection, spec: OrderSpec, devices: list[asyncpg.Record]
                 ) -> dict[uuid.UUID, render.Plan]:
    """The households' plans of the devices with live sheets (the others are left out)."""
    alert = plans.Alert(spec.area.geometry, spec.level, spec.hazard)
    return await households.plans_for(conn, [d["id"] for d in devices], alert)


def _rows(order_id: uuid.UUID, version: int, spec: OrderSpec, kind: str,
          devices: list[asyncpg.Record], expires_at: datetime,
          plan_of: Mapping[uuid.UUID, render.Plan] | None = None
          ) -> Iterator[outbox.NewDelivery]:
    # One text per language, and one per language and plan for households with sheets (many
    # share a plan: the same shelter, the same trigger).
    # A generator: enqueue consumes it while its COPY streams.
    texts: dict[tuple[str, render.Plan | None], render.Text] = {}
    for dev in devices:
        locale = dev["locale"]
        plan = plan_of.get(dev["id"]) if plan_of else None
        text = texts.get((locale, plan))
        if text is None:
            text = render.order_text(kind, locale, spec.level, spec.hazard, spec.headline,
                                     spec.instruction, plan)
            texts[locale, plan] = text
        yield outbox.NewDelivery(
            device_id=dev["id"], service=outbox.service_for(dev["platform"]), kind=kind,
            title=text.title, body=text.body, expires_at=expires_at, level=spec.level,
            order_id=order_id, version=version)


async def _insert_version(conn: asyncpg.Connection, order_id: uuid.UUID, version: int,
                          spec: OrderSpec, matched: int) -> None:
    await conn.execute(
        "INSERT INTO order_versions (order_id, version, level, hazard, area_kind, area,"
        " area_codes, headline, instruction, expires_at, matched)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        order_id, version, spec.level, spec.hazard, spec.area.kind, spec.area_json,
        list(spec.area.area_codes), spec.headline, spec.instruction, spec.expires_at, matched,
    )


async def accept(conn: asyncpg.Connection, points: Points, spec: OrderSpec, *,
                 source: str = "staff", source_key: str | None = None,
                 created_by: uuid.UUID | None = None, exercise: bool = False,
                 order_id: uuid.UUID | None = None, chunk: int | None = None) -> Accepted:
    """Store a new order (under `order_id` when given: the id a held order was promised)
    and its deliveries in one transaction; a known source_key is a no-op. With `chunk`, an
    order matching more devices than that writes the first `chunk` here and leaves the rest
    to the fan-out runners once the caller's transaction commits (see the module)."""
    matched = points.match(spec.area.geometry, spec.area.area_codes)
    first, rest = matched.seqs, None
    if chunk is not None and len(first) > chunk:
        first, rest = first[:chunk], first[chunk:]
    order_id = order_id or uuid.uuid4()
    async with conn.transaction(), db.bulk(conn):
        inserted = await conn.fetchval(
            "INSERT INTO orders (id, source, source_key, created_by, exercise)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source_key) DO NOTHING RETURNING id",
            order_id, source, source_key, created_by, exercise,
        )
        if inserted is None:
            row = await conn.fetchrow(
                "SELECT o.id, o.version, v.matched FROM orders o JOIN order_versions v"
                " ON v.order_id = o.id AND v.version = o.version WHERE o.source_key = $1",
                source_key,
            )
            return Accepted(row["id"], row["version"], row["matched"], created=False)
        # An exercise reaches only the devices enrolled in drills.
        devices = await _devices(conn, first, drill_only=exercise)
        reach = len(devices)
        if rest is not None:
            reach += await _reachable(conn, rest, drill_only=exercise)
        await _insert_version(conn, order_id, 1, spec, reach)
        plan_of = await _plans(conn, spec, devices)
        await outbox.enqueue(conn, _rows(order_id, 1, spec, "order", devices, spec.expires_at,
                                         plan_of))
        if rest is not None:
            await conn.execute("INSERT INTO fanouts (order_id, version, seqs) VALUES ($1, 1, $2)",
                               order_id, rest.tolist())
            await conn.execute("SELECT pg_notify($1, '')", FANOUT_CHANNEL)
    log.info("order_accepted", order_id=str(order_id), version=1, devices=reach,
             level=spec.level, streamed=rest is not None)
    return Accepted(order_id, 1, reach, created=True)


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one step of a streamed fan-out did."""

    order_id: uuid.UUID
    written: int  # delivery rows written
    finished: bool  # the fan-out is over (all written, or the order changed or ended)


async def continue_fanout(pool: asyncpg.Pool, table: municipalities.Table,
                          cfg: settings.Settings, owner: str) -> Chunk | None:
    """Write the next chunk of one streamed fan-out that no other runner holds, in one
    transaction with its progress; None when there is none to take.

    The fan-out row is locked first, then the order (FOR SHARE): amending, lifting and
    expiring an order lock only the order, so each waits for a chunk in progress, and the next
    chunk sees the change and ends the fan-out. That is all they need: an amendment covers
    its whole area itself (a device not reached yet gets the new version as a new order), a
    lifting tells the devices reached so far, and an ended order is sent nothing more."""
    async with pool.acquire() as conn:
        picked: tuple[uuid.UUID, int] | None = None
        try:
            async with conn.transaction(), db.bulk(conn):
                row = await conn.fetchrow(
                    "SELECT order_id, version, done, cardinality(seqs) AS total FROM fanouts"
                    " WHERE owner IS NULL OR owner = $1 OR lease_until < now()"
                    " ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED", owner)
                if row is None:
                    return None
                picked = (row["order_id"], row["version"])
                step, end = await _chunk(conn, row, table, cfg, owner)
        except db.UNAVAILABLE:
            raise
        except Exception as exc:
            if picked is None:
                raise
            # A fan-out that cannot be written (a bug, a stored order that no longer loads)
            # must not hold back the others: it waits a lease, then is tried again. Loudly.
            log.error("fanout_chunk_failed", order_id=str(picked[0]), version=picked[1],
                      error=logs.describe(exc), exc_info=exc)
            with contextlib.suppress(Exception):
                await conn.execute(
                    "UPDATE fanouts SET owner = $3, lease_until = now() + make_interval(secs =>"
                    " $4) WHERE order_id = $1 AND version = $2",
                    *picked, FANOUT_SET_ASIDE, cfg.orders.fanout_lease_s)
            raise
    if not (step.finished and step.written == 0):
        log.info("fanout_chunk", order_id=str(step.order_id), version=picked[1],
                 devices=step.written, done=end, of=row["total"])
    return step


async def _chunk(conn: asyncpg.Connection, row: asyncpg.Record, table: municipalities.Table,
                 cfg: settings.Settings, owner: str) -> tuple[Chunk, int]:
    """One step of continue_fanout, on the fan-out row it locked: the step and how many of
    the fan-out's devices are written after it."""
    order_id, version = row["order_id"], row["version"]
    current = await conn.fetchrow(
        "SELECT state, version FROM orders WHERE id = $1 FOR SHARE", order_id)
    if current is None or current["state"] != "active" or current["version"] != version:
        await conn.execute("DELETE FROM fanouts WHERE order_id = $1 AND version = $2",
                           order_id, version)
        log.info("fanout_ended", order_id=str(order_id), version=version,
                 written=row["done"], of=row["total"],
                 because=current["state"] if current else "gone")
        return Chunk(order_id, 0, finished=True), row["done"]
    end = min(row["done"] + cfg.orders.fanout_chunk, row["total"])
    seqs = await conn.fetchval(
        "SELECT seqs[$3:$4] FROM fanouts WHERE order_id = $1 AND version = $2",
        order_id, version, row["done"] + 1, end)
    order = await load(conn, order_id, table, cfg.orders)
    devices = await _devices(conn, np.asarray(seqs, dtype=np.int64), drill_only=order.exercise)
    plan_of = await _plans(conn, order.spec, devices)
    written = await outbox.enqueue(conn, _rows(order_id, version, order.spec, "order", devices,
                                               order.spec.expires_at, plan_of))
    finished = end >= row["total"]
    if finished:
        await conn.execute("DELETE FROM fanouts WHERE order_id = $1 AND version = $2",
                           order_id, version)
    else:
        await conn.execute(
            "UPDATE fanouts SET done = $3, owner = $4,"
            " lease_until = now() + make_interval(secs => $5)"
            " WHERE order_id = $1 AND version = $2",
            order_id, version, end, owner, cfg.orders.fanout_lease_s)
    return Chunk(order_id, written, finished), end


async def queuing(conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID) -> int:
    """Devices the order's streamed fan-out has still to queue (0: none, or all queued)."""
    n: int = await conn.fetchval(
        "SELECT coalesce(sum(cardinality(seqs) - done), 0) FROM fanouts WHERE order_id = $1",
        order_id)
    return n


async def release_fanouts(conn: asyncpg.Connection | asyncpg.Pool, owner: str) -> None:
    """Hand the fan-outs this runner holds to any runner at once (a clean stop)."""
    await conn.execute("UPDATE fanouts SET owner = NULL, lease_until = now() WHERE owner = $1",
                       owner)


async def _current_recipients(conn: asyncpg.Connection, order_id: uuid.UUID) -> set[uuid.UUID]:
    # A device holds the order when an order or update of it was sent (or is being sent)
    # after the last lifting it was told about; later rows that failed change nothing.
    rows = await conn.fetch(
        "SELECT d.device_id FROM deliveries d"
        " WHERE d.order_id = $1 AND d.kind IN ('order', 'order_update')"
        "   AND d.state IN ('sent', 'sending')"
        " GROUP BY d.device_id"
        " HAVING max(d.id) > coalesce((SELECT max(l.id) FROM deliveries l"
        "   WHERE l.order_id = $1 AND l.device_id = d.device_id AND l.kind = 'order_lifted'"
        "   AND l.state <> 'cancelled'), 0)",
        order_id,
    )
    return {r["device_id"] for r in rows}


async def _cancel_unsent(conn: asyncpg.Connection, order_id: uuid.UUID, why: str) -> None:
    # Order pushes not sent yet would arrive after what replaces them: drop them.
    await conn.execute(
        "UPDATE deliveries SET state = 'cancelled', reason = $2, done_at = now()"
        " WHERE order_id = $1 AND state = 'pending' AND kind IN ('order', 'order_update')",
        order_id, why,
    )


async def load(conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID,
               table: municipalities.Table, cfg: settings.Orders) -> Order:
    """The order with its current version."""
    row = await conn.fetchrow(
        "SELECT o.id, o.version, o.state, o.source, o.exercise, o.created_at, v.* FROM orders o"
        " JOIN order_versions v ON v.order_id = o.id AND v.version = o.version"
        " WHERE o.id = $1",
        order_id,
    )
    if row is None:
        raise errors.NotFound(f"no order {order_id}")
    return Order(id=row["id"], version=row["version"], state=row["state"], source=row["source"],
                 spec=orders.spec_from_row(row, table, cfg), created_at=row["created_at"],
                 exercise=row["exercise"])


def ensure_active(order: Order) -> None:
    """Conflict unless the order is active (an expired or lifted order takes no change)."""
    if order.state != "active":
        ended = "expired" if order.state == "expired" else "been lifted"
        raise errors.Conflict(f"the order has {ended}; issue a new one")


async def amend(conn: asyncpg.Connection, points: Points, order: Order,
                spec: OrderSpec) -> Accepted:
    """Store a new version: newly covered devices get the order, covered ones an update
    when the level rises, devices no longer covered get the lifting."""
    ensure_active(order)
    matched = points.match(spec.area.geometry, spec.area.area_codes)
    version = order.version + 1
    async with conn.transaction(), db.bulk(conn):
        bumped = await conn.fetchval(
            "UPDATE orders SET version = $2 WHERE id = $1 AND version = $3 AND state = 'active'"
            " RETURNING version", order.id, version, order.version,
        )
        if bumped is None:
            raise errors.Conflict("the order changed meanwhile; read it again and retry")
        devices = await _devices(conn, matched.seqs, drill_only=order.exercise)
        covered = {d["id"] for d in devices}
        await _cancel_unsent(conn, order.id, f"superseded by version {version}")
        holders = await _current_recipients(conn, order.id)
        new = [d for d in devices if d["id"] not in holders]
        raised = [d for d in devices if d["id"] in holders] if spec.level > order.spec.level \
            else []
        plan_of = await _plans(conn, spec, new + raised)
        rows = list(_rows(order.id, version, spec, "order", new, spec.expires_at, plan_of))
        rows += _rows(order.id, version, spec, "order_update", raised, spec.expires_at, plan_of)
        dropped = holders - covered
        if dropped:
            gone = await conn.fetch("SELECT id, platform, locale FROM devices"
                                    " WHERE id = ANY($1::uuid[]) FOR KEY SHARE", list(dropped))
            rows += _rows(order.id, version, order.spec, "order_lifted", gone,
                          datetime.now(UTC) + LIFT_TTL)
        await _insert_version(conn, order.id, version, spec, len(devices))
        await outbox.enqueue(conn, rows)
    log.info("order_amended", order_id=str(order.id), version=version, devices=len(devices))
    return Accepted(order.id, version, len(devices), created=True,
                    notified=progress.Notified.of(r.kind for r in rows))


async def lift(conn: asyncpg.Connection, order: Order) -> int:
    """Lift (解除) the order: pending sends are cancelled, every device that holds it is told."""
    async with conn.transaction(), db.bulk(conn):
        state = await conn.fetchval(
            "UPDATE orders SET state = 'lifted', lifted_at = now() WHERE id = $1"
            " AND state = 'active' RETURNING state", order.id,
        )
        if state is None:
            now = await conn.fetchval("SELECT state FROM orders WHERE id = $1", order.id)
            raise errors.Conflict("the order has expired" if now == "expired"
                                  else "the order has already been lifted")
        await _cancel_unsent(conn, order.id, "order lifted")
        holders = await _current_recipients(conn, order.id)
        devices = await conn.fetch("SELECT id, platform, locale FROM devices"
                                   " WHERE id = ANY($1::uuid[]) FOR KEY SHARE", list(holders))
        await outbox.enqueue(conn, _rows(order.id, order.version, order.spec, "order_lifted",
                                         devices, datetime.now(UTC) + LIFT_TTL))
    log.info("order_lifted", order_id=str(order.id), devices=len(devices))
    return len(devices)


async def summaries(conn: asyncpg.Connection | asyncpg.Pool, *, state: str | None,
                    limit: int = 200) -> list[OrderSummary]:
    """Orders newest first: those in `state` (`active`, `lifted`, `expired`), or all (None)."""
    rows = await conn.fetch(
        "SELECT o.id, o.version, o.state, o.source, o.created_at, v.level, v.hazard,"
        " v.headline, v.expires_at FROM orders o JOIN order_versions v"
        " ON v.order_id = o.id AND v.version = o.version"
        " WHERE $1::text IS NULL OR o.state = $1 ORDER BY o.created_at DESC LIMIT $2",
        state, limit,
    )
    counts = await progress.of_orders(conn, [r["id"] for r in rows])
    return [OrderSummary.from_row(r, counts.get(r["id"], progress.OrderCounts())) for r in rows]
