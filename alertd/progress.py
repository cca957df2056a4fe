"""Delivery progress of orders (SQL): for the order as a whole, and for each of its versions.

The order as a whole counts devices. A device is matched once an order push (`order` or
`order_update`) was queued for it, and is counted once, by the state of its latest such push
that was not cancelled; a device whose every order push was cancelled (lifted or superseded
before it went out) is `cancelled`. So `matched = sent + pending + failed + invalid_token +
cancelled`, however many versions the order has.

A version counts what it did: `matched` is the devices its area covered, `notified` the pushes
it queued by kind (new recipients, updates because the level rose, liftings; the pushes of
`lift` count in the version it lifted), and `sent` … `cancelled` what became of those pushes.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

KINDS = ("order", "order_update", "order_lifted")
STATES = ("sent", "pending", "failed", "invalid_token", "cancelled")


@dataclass(frozen=True, slots=True)
class Notified:
    """Pushes an order version queued, by kind."""

    order: int = 0
    order_update: int = 0
    order_lifted: int = 0

    @classmethod
    def of(cls, kinds: Iterable[str]) -> Notified:
        """Count the kinds of the pushes queued."""
        n = Counter(kinds)
        return cls(order=n["order"], order_update=n["order_update"],
                   order_lifted=n["order_lifted"])

    def as_json(self) -> dict[str, int]:
        """As the staff API shows it."""
        return {"order": self.order, "order_update": self.order_update,
                "order_lifted": self.order_lifted}


@dataclass(frozen=True, slots=True)
class OrderCounts:
    """The order as a whole: devices, each counted once by the state of its latest order push;
    `lifted` is the devices a lifting was queued for."""

    matched: int = 0
    sent: int = 0
    pending: int = 0
    failed: int = 0
    invalid_token: int = 0
    cancelled: int = 0
    lifted: int = 0

    def as_json(self) -> dict[str, int]:
        """As the staff API shows it."""
        return {"matched": self.matched, "sent": self.sent, "pending": self.pending,
                "failed": self.failed, "invalid_token": self.invalid_token,
                "cancelled": self.cancelled, "lifted": self.lifted}


@dataclass(frozen=True, slots=True)
class VersionCounts:
    """One version: the devices its area covered and what became of the pushes it queued."""

    version: int
    level: int
    created_at: datetime
    matched: int
    notified: Notified
    sent: int
    pending: int
    failed: int
    invalid_token: int
    cancelled: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> VersionCounts:
        """Build from a row of the per-version query."""
        return cls(version=row["version"], level=row["level"], created_at=row["created_at"],
                   matched=row["matched"],
                   notified=Notified(row["n_order"], row["n_order_update"],
                                     row["n_order_lifted"]),
                   **{state: int(row[state]) for state in STATES})

    def as_json(self) -> dict[str, Any]:
        """As the staff API shows it."""
        return {"version": self.version, "level": self.level,
                "created_at": self.created_at.isoformat(), "matched": self.matched,
                "notified": self.notified.as_json(),
                **{state: getattr(self, state) for state in STATES}}


async def of_orders(conn: asyncpg.Connection | asyncpg.Pool,
                    order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, OrderCounts]:
    """The counts of each order as a whole (orders with no push yet are left out)."""
    rows = await conn.fetch(
        "SELECT order_id,"
        " count(*) FILTER (WHERE matched) AS matched,"
        " count(*) FILTER (WHERE matched AND latest = 'sent') AS sent,"
        " count(*) FILTER (WHERE matched AND latest IN ('pending', 'sending')) AS pending,"
        " count(*) FILTER (WHERE matched AND latest = 'failed') AS failed,"
        " count(*) FILTER (WHERE matched AND latest = 'invalid_token') AS invalid_token,"
        " count(*) FILTER (WHERE matched AND latest IS NULL) AS cancelled,"
        " count(*) FILTER (WHERE lifted) AS lifted"
        " FROM (SELECT order_id, device_id,"
        "   bool_or(kind <> 'order_lifted') AS matched,"
        "   (array_agg(state ORDER BY id DESC) FILTER (WHERE kind <> 'order_lifted'"
        "     AND state <> 'cancelled'))[1] AS latest,"
        "   bool_or(kind = 'order_lifted' AND state <> 'cancelled') AS lifted"
        "   FROM deliveries WHERE order_id = ANY($1::uuid[]) AND kind = ANY($2::text[])"
        "   GROUP BY order_id, device_id) per_device"
        " GROUP BY order_id",
        list(order_ids), list(KINDS),
    )
    return {r["order_id"]: OrderCounts(**{k: int(v) for k, v in r.items() if k != "order_id"})
            for r in rows}


async def of_order(conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID) -> OrderCounts:
    """The counts of one order as a whole."""
    return (await of_orders(conn, [order_id])).get(order_id, OrderCounts())


async def of_versions(conn: asyncpg.Connection | asyncpg.Pool,
                      order_id: uuid.UUID) -> list[VersionCounts]:
    """The counts of each version of an order, oldest first."""
    rows = await conn.fetch(
        "SELECT v.version, v.level, v.created_at, v.matched,"
        " count(d.id) FILTER (WHERE d.kind = 'order') AS n_order,"
        " count(d.id) FILTER (WHERE d.kind = 'order_update') AS n_order_update,"
        " count(d.id) FILTER (WHERE d.kind = 'order_lifted') AS n_order_lifted,"
        " count(d.id) FILTER (WHERE d.state = 'sent') AS sent,"
        " count(d.id) FILTER (WHERE d.state IN ('pending', 'sending')) AS pending,"
        " count(d.id) FILTER (WHERE d.state = 'failed') AS failed,"
        " count(d.id) FILTER (WHERE d.state = 'invalid_token') AS invalid_token,"
        " count(d.id) FILTER (WHERE d.state = 'cancelled') AS cancelled"
        " FROM order_versions v LEFT JOIN deliveries d ON d.order_id = v.order_id"
        "   AND d.version = v.version AND d.kind = ANY($2::text[])"
        " WHERE v.order_id = $1"
        " GROUP BY v.version, v.level, v.created_at, v.matched ORDER BY v.version",
        order_id, list(KINDS),
    )
    return [VersionCounts.from_row(r) for r in rows]
