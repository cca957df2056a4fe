"""Four-eyes: staff orders held until a second operator approves them (SQL, and the pure rule
of what is held).

An order at a level of `orders.approval_levels`, or reaching more than
`orders.approval_over_devices` devices, and a change raising an order to such a level (or
widening it beyond that many devices) is not applied: the request is kept here, pending, with
the numbers its preview showed, until another staff token approves it (then it is applied as
if just sent) or someone rejects it. Decided requests stay, as history. CAP and JMA messages
were issued by their authority and never come here.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from alertd import errors, orders, settings, staff

KINDS = ("issue", "amend")
DECISIONS = ("approved", "rejected")
PENDING = "pending_approval"
MAX_REASON = 500


def hold_reasons(cfg: settings.Orders, level: int, devices: int, *,
                 before_level: int | None = None, before_devices: int | None = None
                 ) -> list[str]:
    """Why an order (or, given what it was before, a change of one) needs a second operator's
    approval; empty: it does not."""
    reasons = []
    if level in cfg.approval_levels and (before_level is None or level > before_level):
        reasons.append(f"level {level} needs a second operator's approval "
                       "(orders.approval_levels)")
    limit = cfg.approval_over_devices
    if limit > 0 and devices > limit and (before_devices is None or devices > before_devices):
        reasons.append(f"it reaches {devices} devices, more than {limit} "
                       "(orders.approval_over_devices)")
    return reasons


@dataclass(frozen=True, slots=True)
class Request:
    """A held request to issue or change an order, and what became of it."""

    id: int
    order_id: uuid.UUID
    kind: str
    body: Any
    base_version: int | None
    requested_by: uuid.UUID
    requested_label: str
    requested_at: datetime
    level: int
    hazard: str
    area: Any
    headline: dict[str, str]
    expires_at: datetime
    devices: int
    by_area: dict[str, int]
    reasons: tuple[str, ...]
    decision: str | None
    decided_by: uuid.UUID | None
    decided_label: str | None
    decided_at: datetime | None
    reason: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Request:
        """Build from an order_approvals row."""
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        return cls(**{**values, "reasons": tuple(values["reasons"])})

    @property
    def state(self) -> str:
        """`pending_approval`, `approved` or `rejected`."""
        return self.decision or PENDING

    def as_json(self, preview_min_count: int, now: datetime) -> dict[str, Any]:
        """The request as the staff API shows it (counts as coarse as a preview's)."""
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None
        return {
            "id": str(self.order_id), "state": self.state, "kind": self.kind,
            "version": self.base_version, "level": self.level, "hazard": self.hazard,
            "area": self.area, "headline": self.headline,
            "expires_at": self.expires_at.isoformat(), "expired": self.expires_at <= now,
            **self.preview(preview_min_count),
            "reasons": list(self.reasons),
            "requested_by": str(self.requested_by), "requested_label": self.requested_label,
            "requested_at": self.requested_at.isoformat(),
            "decided_by": str(self.decided_by) if self.decided_by else None,
            "decided_label": self.decided_label, "decided_at": iso(self.decided_at),
            "decision_reason": self.reason,
        }

    def preview(self, preview_min_count: int) -> dict[str, Any]:
        """The preview numbers: devices reached, in all and by municipality."""
        return {"devices": orders.coarse(self.devices, preview_min_count),
                "by_area": {code: orders.coarse(n, preview_min_count)
                            for code, n in self.by_area.items()}}

    def audit_view(self) -> dict[str, Any]:
        """The request as the audit trail keeps it."""
        return {"state": self.state, "kind": self.kind, "version": self.base_version,
                "level": self.level, "hazard": self.hazard, "devices": self.devices,
                "reasons": list(self.reasons), "requested_by": str(self.requested_by),
                "requested_label": self.requested_label}


async def hold(conn: asyncpg.Connection, order_id: uuid.UUID, kind: str, body: Any,
               base_version: int | None, who: staff.Staff, spec: orders.OrderSpec,
               devices: int, by_area: dict[str, int], reasons: list[str]) -> Request:
    """Keep a request for approval; Conflict when a change of this order waits already."""
    assert kind in KINDS
    row = await conn.fetchrow(
        "INSERT INTO order_approvals (order_id, kind, body, base_version, requested_by,"
        " requested_label, level, hazard, area, headline, expires_at, devices, by_area,"
        " reasons) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        " ON CONFLICT (order_id) WHERE decision IS NULL DO NOTHING RETURNING *",
        order_id, kind, body, base_version, who.id, who.label, spec.level, spec.hazard,
        spec.area_json, spec.headline, spec.expires_at, devices, by_area, reasons,
    )
    if row is None:
        raise _waiting(await pending(conn, order_id))
    return Request.from_row(row)


def _waiting(other: Request | None) -> errors.Conflict:
    who = (f" (asked by {other.requested_label or other.requested_by} at "
           f"{other.requested_at.isoformat()})") if other else ""
    return errors.Conflict(f"a change of this order already waits for approval{who}; approve "
                           "or reject it first")


async def pending(conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID, *,
                  lock: bool = False) -> Request | None:
    """The request of this order waiting for approval, if any (locked: FOR UPDATE)."""
    row = await conn.fetchrow(
        "SELECT * FROM order_approvals WHERE order_id = $1 AND decision IS NULL"
        + (" FOR UPDATE" if lock else ""), order_id)
    return Request.from_row(row) if row else None


async def waiting(conn: asyncpg.Connection | asyncpg.Pool, order_id: uuid.UUID, *,
                  lock: bool = False) -> Request:
    """The request of this order waiting for approval: Conflict when the last one was
    decided already or the order has none, NotFound when there is no such order at all."""
    found = await pending(conn, order_id, lock=lock)
    if found is not None:
        return found
    last = await latest(conn, order_id)
    if last is None:
        if await conn.fetchval("SELECT true FROM orders WHERE id = $1", order_id):
            raise errors.Conflict(f"nothing of order {order_id} waits for approval")
        raise errors.NotFound(f"no order {order_id}")
    by = last.decided_label or last.decided_by
    raise errors.Conflict(f"the request was {last.decision} already, by {by} at "
                          f"{last.decided_at.isoformat() if last.decided_at else '?'}")


async def latest(conn: asyncpg.Connection | asyncpg.Pool,
                 order_id: uuid.UUID) -> Request | None:
    """The last request held for this order, decided or not."""
    row = await conn.fetchrow("SELECT * FROM order_approvals WHERE order_id = $1"
                              " ORDER BY id DESC LIMIT 1", order_id)
    return Request.from_row(row) if row else None


async def decide(conn: asyncpg.Connection, request: Request, decision: str, who: staff.Staff,
                 reason: str | None = None) -> Request:
    """Record the decision on a waiting request; Conflict when it was decided meanwhile."""
    assert decision in DECISIONS
    row = await conn.fetchrow(
        "UPDATE order_approvals SET decision = $2, decided_by = $3, decided_label = $4,"
        " decided_at = now(), reason = $5 WHERE id = $1 AND decision IS NULL RETURNING *",
        request.id, decision, who.id, who.label, reason,
    )
    if row is None:
        raise errors.Conflict("the request was decided meanwhile")
    return Request.from_row(row)


async def listing(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 200) -> list[Request]:
    """The requests waiting for approval, newest first."""
    rows = await conn.fetch("SELECT * FROM order_approvals WHERE decision IS NULL"
                            " ORDER BY id DESC LIMIT $1", limit)
    return [Request.from_row(r) for r in rows]
