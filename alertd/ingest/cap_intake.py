"""CAP intake: a message (posted or polled) becomes an order, a new version or a lifting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from alertd import errors, pipeline, points, scheduler, settings
from alertd.context import Context
from alertd.ingest import cap_mapping, cap_trust, quarantine
from feeds import cap
from feeds import errors as feed_errors

log = structlog.get_logger(__name__)


class Rejected(errors.InvalidInput):
    """The message was refused and quarantined."""

    def __init__(self, reason: str, quarantine_id: int) -> None:
        super().__init__(reason)
        self.quarantine_id = quarantine_id


@dataclass(frozen=True, slots=True)
class Intake:
    """What became of a CAP message."""

    outcome: str  # order, updated, lifted, waiting, duplicate, recorded, ignored
    order_id: uuid.UUID | None
    detail: str = ""


async def ingest(c: Context, raw: bytes, source: str, *, release: bool = True) -> Intake:
    """Parse, check and apply one CAP message; bad ones are quarantined and Rejected.

    NotReady (the location index cannot confirm the latest locations) is not the message's
    fault: it is raised as it is, nothing is recorded, and the message is to be sent again."""
    trust = cap_trust.for_source(c.cfg, source)
    try:
        # Verifying, parsing and the area's geometry cost CPU that grows with the document:
        # off the loop. What is read is what was signed, when the source requires signatures.
        prepared = await c.compute.run(cap_trust.prepare, c.table,
                                       (raw, c.cfg, datetime.now(UTC), trust.anchors),
                                       inline=len(raw) <= c.cfg.compute.inline_max_bytes,
                                       what="the message")
        trust.check_sender(prepared.alert)
        if prepared.alert.status == "Draft":
            raise errors.InvalidInput("status Draft is not accepted: drafts are never issued")
        result = await _apply(c, prepared, raw, source)
    except (feed_errors.FeedError, errors.InvalidInput) as exc:
        qid = await quarantine.put(c.pool, source, raw, exc.reason)
        raise Rejected(exc.reason, qid) from exc
    log.info("cap_ingested", outcome=result.outcome, source=source,
             order_id=str(result.order_id) if result.order_id else None)
    if release and result.outcome != "waiting":
        await _release_waiting(c)
    return result


async def _apply(c: Context, prepared: cap_mapping.Prepared, raw: bytes, source: str) -> Intake:
    alert = prepared.alert
    sender, identifier = alert.key
    # A message re-delivered under another URI of its sender (cap.sender_aliases) is the
    # same message: keyed by the group, so that it never becomes a second order.
    group = sorted(cap_mapping.speaks_for(sender, c.cfg.cap))
    async with c.pool.acquire() as conn, conn.transaction():
        # One message key at a time, across nodes: re-delivery in parallel stays a no-op.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                           f"cap|{group[0]}|{identifier}")
        seen = await conn.fetchrow(
            "SELECT order_id, outcome FROM cap_messages WHERE sender = ANY($1::text[])"
            " AND identifier = $2 LIMIT 1",
            group, identifier,
        )
        if seen is not None:
            return Intake("duplicate", seen["order_id"], f"already {seen['outcome']}")
        result = await _decide(c, conn, prepared, raw, source)
        if result.outcome == "waiting":
            return result  # recorded when it is applied, so that it can be applied then
        await conn.execute(
            "INSERT INTO cap_messages (sender, identifier, sent, status, msg_type, source,"
            " order_id, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            sender, identifier, alert.sent, alert.status, alert.msg_type, source,
            result.order_id, result.outcome, result.detail,
        )
        return result


async def _decide(c: Context, conn: asyncpg.Connection, prepared: cap_mapping.Prepared,
                  raw: bytes, source: str) -> Intake:
    alert = prepared.alert
    if alert.status in ("Test", "System"):
        return Intake("recorded", None, f"status {alert.status}: acknowledged, not sent")
    if alert.msg_type in ("Ack", "Error"):
        return Intake("recorded", None, f"msgType {alert.msg_type}")
    now = datetime.now(UTC)
    all_clear = cap_mapping.is_all_clear(alert)
    if alert.msg_type == "Alert" and not (all_clear and alert.references):
        return await _new_order(c, conn, prepared, now)
    # An Update, a Cancel, or an Alert declaring the all-clear for the orders it names.
    refs = cap_mapping.references(alert, c.cfg.cap)
    target = await _referenced_order(conn, refs, c.cfg)
    if target is None:
        return await _wait_for_reference(c, conn, prepared, refs, raw, source, now)
    order = await pipeline.load(conn, target, c.table, c.cfg.orders)
    if (alert.status == "Exercise") != order.exercise:
        return Intake("ignored", order.id, "an exercise cannot change a real order, "
                                           "nor a real message an exercise")
    newest = await conn.fetchval(
        "SELECT max(sent) FROM cap_messages WHERE order_id = $1"
        " AND outcome IN ('order', 'updated', 'lifted')", order.id)
    if newest is not None and alert.sent < newest:
        return Intake("ignored", order.id, "older than the last message applied to the order")
    if alert.msg_type == "Cancel" or all_clear:
        if order.state != "active":
            return Intake("ignored", order.id, f"the order was already {order.state}")
        devices = await pipeline.lift(conn, order)
        return Intake("lifted", order.id, f"{devices} devices")
    spec = cap_mapping.to_spec(alert, c.table, c.cfg, now, current=order.spec,
                               prepared=prepared)
    if spec is None:
        return Intake("ignored", order.id, "update without Evacuate or level: order unchanged")
    if order.state != "active":
        return Intake("ignored", order.id, f"the order was already {order.state}")
    if spec == order.spec:
        return Intake("recorded", order.id, "no change")
    await points.catch_up(c.points)
    accepted = await pipeline.amend(conn, c.points, order, spec)
    return Intake("updated", order.id, f"version {accepted.version}")


async def _new_order(c: Context, conn: asyncpg.Connection, prepared: cap_mapping.Prepared,
                     now: datetime) -> Intake:
    alert = prepared.alert
    if cap_mapping.is_all_clear(alert):
        return Intake("ignored", None, "an all-clear that names no order: nothing to lift")
    spec = cap_mapping.to_spec(alert, c.table, c.cfg, now, prepared=prepared)
    if spec is None:
        return Intake("ignored", None, "not an evacuation order (no Evacuate, no level)")
    await points.catch_up(c.points)  # takes no pool connection: safe inside our transaction
    accepted = await pipeline.accept(
        conn, c.points, spec, source="cap", source_key=" ".join(alert.key),
        exercise=alert.status == "Exercise", chunk=c.cfg.orders.fanout_chunk,
    )
    return Intake("order", accepted.order_id, f"{accepted.devices} devices")


async def _referenced_order(conn: asyncpg.Connection, refs: list[cap.CapReference],
                            cfg: settings.Settings) -> uuid.UUID | None:
    for ref in refs:
        order_id = await conn.fetchval(
            "SELECT order_id FROM cap_messages WHERE sender = ANY($1::text[])"
            " AND identifier = $2 AND order_id IS NOT NULL LIMIT 1",
            sorted(cap_mapping.speaks_for(ref.sender, cfg.cap)), ref.identifier,
        )
        if order_id is not None:
            return order_id  # type: ignore[no-any-return]
    return None


async def _wait_for_reference(c: Context, conn: asyncpg.Connection,
                              prepared: cap_mapping.Prepared, refs: list[cap.CapReference],
                              raw: bytes, source: str, now: datetime) -> Intake:
    alert = prepared.alert
    known = await conn.fetch(
        "SELECT sender, identifier FROM cap_messages WHERE (sender, identifier) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))",
        [r.sender for r in refs], [r.identifier for r in refs],
    )
    missing = [r for r in refs if (r.sender, r.identifier) not in
               {(k["sender"], k["identifier"]) for k in known}]
    if not missing:
        if alert.msg_type == "Update" and not cap_mapping.is_all_clear(alert):
            # An update that turns a message without an order into an evacuation issues it.
            return await _new_order(c, conn, prepared, now)
        why = "references no message" if not refs else "its references carry no order"
        return Intake("ignored", None, f"{alert.msg_type} {why}")
    sender, identifier = alert.key
    for ref in missing:
        await conn.execute(
            "INSERT INTO cap_waiting (ref_sender, ref_identifier, sender, identifier, source, raw)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            ref.sender, ref.identifier, sender, identifier, source, raw,
        )
    return Intake("waiting", None, "referenced message not received yet; kept to apply later")


async def _release_waiting(c: Context) -> None:
    """Apply every kept message whose referenced message has arrived, oldest first.

    A kept row is deleted only after its message was applied (or refused), so a crash in
    between leaves it to be applied by the next message's release."""
    while True:
        row = await c.pool.fetchrow(
            "SELECT w.sender, w.identifier, w.source, w.raw FROM cap_waiting w"
            " JOIN cap_messages m ON m.sender = w.ref_sender AND m.identifier = w.ref_identifier"
            " ORDER BY w.received_at LIMIT 1")
        if row is None:
            return
        try:
            result = await ingest(c, bytes(row["raw"]), row["source"], release=False)
            still_waiting = result.outcome == "waiting"
        except Rejected as exc:
            log.warning("cap_waiting_rejected", reason=exc.reason)
            still_waiting = False
        if still_waiting:  # it waits for another message too: keep only those rows
            await c.pool.execute(
                "DELETE FROM cap_waiting w USING cap_messages m WHERE w.sender = $1"
                " AND w.identifier = $2 AND m.sender = w.ref_sender"
                " AND m.identifier = w.ref_identifier", row["sender"], row["identifier"])
        else:
            await c.pool.execute(
                "DELETE FROM cap_waiting WHERE sender = $1 AND identifier = $2",
                row["sender"], row["identifier"])


async def expire_waiting(pool: asyncpg.Pool, received_before: datetime, limit: int) -> int:
    """Quarantine up to `limit` kept messages that have waited since before `received_before`
    for a reference that never came, each with the reason; returns how many.

    Only messages whose awaited references are all still missing go: one whose reference came
    is being applied by the release that follows that reference."""
    rows = await pool.fetch(
        "SELECT w.sender, w.identifier FROM cap_waiting w GROUP BY w.sender, w.identifier"
        " HAVING min(w.received_at) < $1 AND NOT bool_or(EXISTS (SELECT 1 FROM cap_messages m"
        "   WHERE m.sender = w.ref_sender AND m.identifier = w.ref_identifier))"
        " ORDER BY min(w.received_at) LIMIT $2", received_before, limit)
    expired = 0
    for row in rows:
        sender, identifier = row["sender"], row["identifier"]
        async with pool.acquire() as conn, conn.transaction():
            # The intake's lock of the message's key: never while it is being applied.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"cap|{sender}|{identifier}")
            kept = await conn.fetch(
                "DELETE FROM cap_waiting WHERE sender = $1 AND identifier = $2"
                " RETURNING ref_sender, ref_identifier, source, raw, received_at",
                sender, identifier)
            if not kept:
                continue
            refs = ", ".join(sorted({f"{k['ref_sender']},{k['ref_identifier']}" for k in kept}))
            since = min(k["received_at"] for k in kept)
            await quarantine.put(
                conn, kept[0]["source"], bytes(kept[0]["raw"]),
                f"referenced message never received (waited since {since.isoformat()}"
                f" for {refs}); {sender},{identifier} was not applied")
            expired += 1
    return expired


async def expire_waiting_job(ctx: scheduler.JobContext) -> dict[str, int]:
    """The expire_cap_waiting job: every kept message older than housekeeping.cap_waiting_max_s
    goes to the quarantine, a batch at a time."""
    hk = ctx.cfg.housekeeping
    before = ctx.now - timedelta(seconds=hk.cap_waiting_max_s)
    total = 0
    while True:
        n = await expire_waiting(ctx.pool, before, hk.batch_size)
        total += n
        if n < hk.batch_size:
            return {"cap_messages_expired": total}
