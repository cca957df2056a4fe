"""A device's alert inbox: what was sent to it, newest first (SQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

LIMIT = 200  # entries an inbox shows


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One alert as the device's inbox shows it."""

    alert_id: str
    version: int
    kind: str
    level: int | None
    title: str
    body: str
    order_state: str | None  # None for alerts that are not an order (a shelter opening)
    at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> InboxEntry:
        """Build from a deliveries row joined with its order's state."""
        # Order deliveries carry no alert_id of their own: the order is the alert.
        return cls(alert_id=row["alert_id"] or str(row["order_id"]), version=row["version"],
                   kind=row["kind"], level=row["level"], title=row["title"], body=row["body"],
                   order_state=row["order_state"], at=row["created_at"])

    def as_json(self) -> dict[str, Any]:
        """The entry as the mobile API shows it."""
        return {"alert_id": self.alert_id, "version": self.version, "kind": self.kind,
                "level": self.level, "title": self.title, "body": self.body,
                "order_state": self.order_state, "at": self.at.isoformat()}


async def entries(conn: asyncpg.Connection | asyncpg.Pool, device_id: uuid.UUID,
                  limit: int = LIMIT) -> list[InboxEntry]:
    """The device's inbox: alerts sent (or being sent) to it, newest first."""
    rows = await conn.fetch(
        "SELECT d.order_id, d.alert_id, d.version, d.kind, d.level, d.title, d.body, d.state,"
        " d.created_at, o.state AS order_state"
        " FROM deliveries d LEFT JOIN orders o ON o.id = d.order_id"
        " WHERE d.device_id = $1 AND d.state NOT IN ('cancelled')"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT $2",
        device_id, limit,
    )
    return [InboxEntry.from_row(r) for r in rows]
