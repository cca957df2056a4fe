"""The durable outbox: writing delivery rows, claiming them with a lease, recording outcomes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from alertd import backoff
from alertd.delivery.push import Outcome

# Dispatchers LISTEN on it; whoever writes delivery rows NOTIFYs it after commit.
CHANNEL = "alertd_outbox"
FINAL = ("sent", "invalid_token", "failed", "cancelled")
# Namespace of the dispatchers' session locks, taken in the two-int form
# pg_advisory_lock(DISPATCHER_LOCKS, hashtext(worker)): pg_locks shows them with objsubid 2, so
# they cannot collide with the one-bigint locks of migrations and feeds (objsubid 1).
DISPATCHER_LOCKS = 0x616C6470  # "aldp"
SERVICES = {"ios": "apns", "android": "fcm"}  # device platform -> push service


def service_for(platform: str) -> str:
    """The push service that reaches a device of this platform."""
    return SERVICES[platform]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One rendered push to queue for one device (a row of the outbox)."""

    device_id: uuid.UUID
    service: str
    kind: str
    title: str
    body: str
    expires_at: datetime
    level: int | None = None
    priority: int = 10
    order_id: uuid.UUID | None = None  # None: the push belongs to no order (shelter openings)
    version: int = 0
    alert_id: str | None = None  # what the phone is told it is about when there is no order
    ref: str | None = None  # unique per device when set: the event the push is about
    due_at: datetime | None = None  # None: due at once (the transaction's time)


# apns_id is drawn by the server (migration 0026): a uuid4 per row here cost a fifth of a
# large order's acceptance.
_NEW_COLUMNS = ("order_id", "version", "device_id", "kind", "service", "level", "title", "body",
                "priority", "expires_at", "ref", "alert_id", "due_at")


async def enqueue(conn: asyncpg.Connection, rows: Iterable[NewDelivery]) -> int:
    """Write delivery rows (COPY) and wake the dispatchers once the transaction commits;
    returns how many were written.

    The only writer of delivery rows. Rows are unique per (order, version, device, kind) and
    per (ref, device): a duplicate raises, so the caller's transaction cannot half-happen. A
    device or order that does not exist raises asyncpg.ForeignKeyViolationError; the ones that
    do stay locked FOR KEY SHARE until the transaction ends (migration 0026: checked once per
    statement), so an erasure waits for the rows and then erases them too.
    Rows with a due time wait until then (tips outside quiet hours, paced); the others are due
    at the transaction's time. `rows` may be a generator: it is consumed while the COPY
    streams, so building the rows overlaps the server's writing them.
    """
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return 0
    now: datetime = await conn.fetchval("SELECT now()")  # the column default, in one COPY
    written = 0

    def records() -> Iterator[tuple[object, ...]]:
        nonlocal written
        for r in itertools.chain((first,), it):
            written += 1
            yield (r.order_id, r.version, r.device_id, r.kind, r.service, r.level, r.title,
                   r.body, r.priority, r.expires_at, r.ref, r.alert_id, r.due_at or now)

    await conn.copy_records_to_table("deliveries", columns=_NEW_COLUMNS, records=records())
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
    return written


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this dispatcher holds the lease of."""

    id: int
    apns_id: uuid.UUID
    order_id: uuid.UUID | None  # None for pushes that belong to no order (shelter openings)
    alert_id: str
    device_id: uuid.UUID
    kind: str
    service: str
    level: int | None
    title: str
    body: str
    priority: int
    expires_at: datetime
    attempts: int
    push_token: str
    token_state: str
    created_at: datetime
    order_state: str | None  # the order's state at claim time (None: no order)
    lease_until: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Claimed:
        """Build from a claim query row (its columns are in the fields' order: see _CLAIM)."""
        return cls(*row)


@dataclass(frozen=True, slots=True)
class Result:
    """An outcome to record for a claimed delivery."""

    id: int
    state: str  # pending (retry later) or a final state
    due_at: datetime | None
    provider_id: str | None
    reason: str | None
    refund: bool = False  # nothing was attempted: the claim does not count as an attempt


# One priority at a time, in due order: one range scan of the index deliveries_due (service,
# priority, due_at), with a constant LIMIT so that the planner joins just the rows it takes.
_CLAIM = """
WITH due AS (
    SELECT id, order_id FROM deliveries
    WHERE service = $1 AND priority = $5 AND state IN ('pending', 'sending') AND due_at <= now()
    ORDER BY due_at, id
    LIMIT $2
    FOR UPDATE OF deliveries SKIP LOCKED
)
UPDATE deliveries d
SET state = 'sending', due_at = now() + make_interval(secs => $3),
    attempts = d.attempts + 1, claimed_by = $4
FROM due LEFT JOIN orders o ON o.id = due.order_id, devices v
WHERE d.id = due.id AND v.id = d.device_id
RETURNING d.id, d.apns_id, d.order_id, coalesce(d.alert_id, d.order_id::text) AS alert_id,
          d.device_id, d.kind, d.service, d.level, d.title, d.body,
          d.priority, d.expires_at, d.attempts, v.push_token, v.token_state, d.created_at,
          o.state AS order_state,
          d.due_at AS lease_until
"""
# Claimed first to last: priority 10 (orders, liftings, openings, warnings), then 5 (tips), so
# a backlog of tips never delays an order.
CLAIM_ORDER = (10, 5)
TIP_PRIORITY = 5
# A tip is never sent to a device holding an active order (one queued before the order came,
# or held back by quiet hours): the due tips about to be claimed are cancelled first when so.
_WITHHOLD = """
UPDATE deliveries t SET state = 'cancelled', done_at = now(),
    reason = 'withheld: an active order covers the device'
WHERE t.id IN (
    SELECT id FROM deliveries
    WHERE service = $1 AND priority = 5 AND state IN ('pending', 'sending') AND due_at <= now()
    ORDER BY due_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
  AND EXISTS (
    SELECT FROM deliveries x
    JOIN orders o ON o.id = x.order_id
    JOIN order_versions v ON v.order_id = o.id AND v.version = o.version
    WHERE x.device_id = t.device_id AND x.kind IN ('order', 'order_update')
      AND x.state <> 'cancelled' AND o.state = 'active' AND NOT o.exercise
      AND v.expires_at > now())
"""


async def claim(conn: asyncpg.Connection | asyncpg.Pool, service: str, limit: int,
                lease_s: float, worker: str) -> list[Claimed]:
    """Take up to `limit` due deliveries of one service (expired leases included), pushes of
    priority 10 before tips; due tips to devices an active order covers are cancelled."""
    claimed: list[Claimed] = []
    for priority in CLAIM_ORDER:
        if len(claimed) >= limit:
            break
        if priority == TIP_PRIORITY:
            await conn.execute(_WITHHOLD, service, limit - len(claimed))
        rows = await conn.fetch(_CLAIM, service, limit - len(claimed), lease_s, worker,
                                priority)
        claimed += [Claimed.from_row(r) for r in rows]
    return claimed


# Outcomes written per statement at most. The planner sees almost no 'sending' rows in the
# table's statistics (there are few at any time), so it may scan the claimed rows first and
# evaluate the unnest again for each of them: a cost that grows with the square of the
# statement's rows (measured per row: 20-25 us up to 200 rows, 56-61 us at 600).
RECORD_CHUNK = 200


async def record(conn: asyncpg.Connection | asyncpg.Pool, results: list[Result],
                 workers: Sequence[str]) -> int:
    """Write outcomes of deliveries still claimed by one of these identities (a dispatcher's,
    old and current); returns rows written. Larger lists take one statement per RECORD_CHUNK
    outcomes: a failure part-way leaves the rest claimed, and writing them all again later
    skips the ones already written (they are no longer 'sending')."""
    written = 0
    for start in range(0, len(results), RECORD_CHUNK):
        chunk = results[start:start + RECORD_CHUNK]
        status = await conn.execute(
            "UPDATE deliveries d SET state = u.state, due_at = COALESCE(u.due_at, d.due_at),"
            " provider_id = COALESCE(u.provider_id, d.provider_id), reason = u.reason,"
            " attempts = d.attempts - u.refund::int,"
            " done_at = CASE WHEN u.state = ANY($7::text[]) THEN now() END"
            " FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],"
            "   $8::boolean[]) AS u(id, state, due_at, provider_id, reason, refund)"
            " WHERE d.id = u.id AND d.state = 'sending' AND d.claimed_by = ANY($6::text[])",
            [r.id for r in chunk], [r.state for r in chunk], [r.due_at for r in chunk],
            [r.provider_id for r in chunk], [r.reason for r in chunk], list(workers),
            list(FINAL), [r.refund for r in chunk],
        )
        written += int(str(status).split()[-1])
    return written


async def invalidate_tokens(conn: asyncpg.Connection | asyncpg.Pool,
                            pairs: list[tuple[uuid.UUID, str]]) -> None:
    """Disable the push tokens the services refused, and drop their queued deliveries."""
    if not pairs:
        return
    devices = [d for d, _ in pairs]
    tokens = [t for _, t in pairs]
    await conn.execute(
        "UPDATE devices v SET token_state = 'invalid', updated_at = now()"
        " FROM unnest($1::uuid[], $2::text[]) AS u(id, token)"
        " WHERE v.id = u.id AND v.push_token = u.token",
        devices, tokens,
    )
    await conn.execute(
        "UPDATE deliveries SET state = 'invalid_token', reason = 'push token refused earlier',"
        " done_at = now() WHERE device_id = ANY($1::uuid[]) AND state = 'pending'"
        " AND device_id IN (SELECT id FROM devices WHERE token_state = 'invalid')",
        devices,
    )


async def release(conn: asyncpg.Connection | asyncpg.Pool, ids: list[int],
                  workers: Sequence[str]) -> None:
    """Hand unfinished claims back so any dispatcher may send them at once."""
    if ids:
        await conn.execute(
            "UPDATE deliveries SET state = 'pending', due_at = now(), claimed_by = NULL,"
            " attempts = greatest(attempts - 1, 0)"
            " WHERE id = ANY($1::bigint[]) AND state = 'sending' AND claimed_by = ANY($2::text[])",
            ids, list(workers),
        )


# The server's TCP keepalive on a lock session: a host that vanishes without closing its sockets
# (power loss, partition) frees its lock after about 5 + 2 * 3 s instead of the system default
# of hours. Keepalive probes are answered by the kernel, so a busy dispatcher never loses its
# lock this way. No effect over a Unix socket (nothing can vanish there).
_LOCK_KEEPALIVE = ("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
                   " SET tcp_keepalives_count = 3")


async def register(conn: asyncpg.Connection, worker: str) -> bool:
    """Take a dispatcher's session lock on this connection, then register the dispatcher;
    False (nothing registered) when another session holds that lock (a hash collision)."""
    await conn.execute(_LOCK_KEEPALIVE)
    got = await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))",
                              DISPATCHER_LOCKS, worker)
    if got:
        await conn.execute("INSERT INTO dispatchers (worker) VALUES ($1)"
                           " ON CONFLICT (worker) DO UPDATE SET seen_at = now()", worker)
    return bool(got)


async def unregister(conn: asyncpg.Connection | asyncpg.Pool, workers: Sequence[str]) -> None:
    """Forget dispatcher identities that stop cleanly (nothing of theirs is left leased)."""
    await conn.execute("DELETE FROM dispatchers WHERE worker = ANY($1::text[])", list(workers))


@dataclass(frozen=True, slots=True)
class Reaped:
    """What one pass of the reaper found."""

    registered: bool  # the caller's own registration is still there
    workers: tuple[str, ...]  # dead dispatchers, now unregistered
    deliveries: dict[str, int]  # service -> their leased deliveries, made due again


# Dead: registered, its lock held by no session. Its leased rows (found through the partial
# index deliveries_due) go back to the due time they were created with, so they are claimed
# before the rest of their fan-out, not after it: they are the ones already late. The join on
# `dead` is skipped when nobody died (a one-time filter), so a pass costs two tiny statements.
_REAP = """
WITH seen AS (
    UPDATE dispatchers SET seen_at = now() WHERE worker = $2 RETURNING worker
), dead AS (
    DELETE FROM dispatchers
    WHERE hashtext(worker)::oid NOT IN (
        SELECT l.objid FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.classid = $1::int4::oid AND l.objid IS NOT NULL
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
    RETURNING worker
), freed AS (
    UPDATE deliveries SET due_at = created_at
    WHERE EXISTS (SELECT FROM dead) AND claimed_by = ANY (ARRAY(SELECT worker FROM dead))
      AND state = 'sending' AND due_at > now()
    RETURNING service
)
SELECT EXISTS (SELECT FROM seen) AS registered, ARRAY(SELECT worker FROM dead) AS workers,
       ARRAY(SELECT service FROM freed) AS services
"""


async def reap(conn: asyncpg.Connection, worker: str) -> Reaped:
    """Unregister dead dispatchers and make their leased deliveries due now (NOTIFYing the
    dispatchers when there are any); `worker` (the caller) is marked as seen."""
    row = await conn.fetchrow(_REAP, DISPATCHER_LOCKS, worker)
    assert row is not None
    freed: dict[str, int] = {}
    for service in row["services"]:
        freed[service] = freed.get(service, 0) + 1
    if freed:
        await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
    return Reaped(bool(row["registered"]), tuple(row["workers"]), freed)


async def depth(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Deliveries waiting to be sent, by service."""
    rows = await conn.fetch(
        "SELECT service, count(*) AS n FROM deliveries WHERE state IN ('pending', 'sending')"
        " GROUP BY service"
    )
    return {r["service"]: int(r["n"]) for r in rows}


def decide(claimed: Claimed, outcome: Outcome, now: datetime, *, max_attempts: int,
           base_s: float, max_s: float) -> Result:
    """What to record for an outcome: final, or pending again with the next attempt time."""
    if outcome.status != "retry":
        return Result(claimed.id, outcome.status, None, outcome.provider_id, outcome.reason or None)
    if claimed.attempts >= max_attempts:
        return Result(claimed.id, "failed", None, None,
                      f"gave up after {claimed.attempts} attempts: {outcome.reason}")
    due = now + timedelta(seconds=backoff.delay(claimed.attempts, base_s, max_s,
                                                 outcome.retry_after))
    if due >= claimed.expires_at:
        return Result(claimed.id, "failed", None, None,
                      f"expired before a retry could be sent: {outcome.reason}")
    return Result(claimed.id, "pending", due, None, outcome.reason or None)
