"""A device's alert inbox (SQL): what was sent to it, newest first, and its read state; an
entry as JSON built in SQL, for sync (alertd.sync reads the changes, see migration 0013).

An entry is a deliveries row that was not cancelled. Its `id` is the row's, as a string.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from alertd import db

LIMIT = 200  # entries an inbox shows

_ENTRY = ("d.id, d.order_id, d.alert_id, d.version, d.kind, d.level, d.title, d.body, d.state,"
          " d.created_at, d.read_at, o.state AS order_state")


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One alert as the device's inbox shows it."""

    id: int
    alert_id: str
    version: int
    kind: str
    level: int | None
    title: str
    body: str
    order_state: str | None  # None for alerts that are not an order (a shelter opening)
    at: datetime
    read: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> InboxEntry:
        """Build from a deliveries row joined with its order's state (a record or a dict)."""
        # Order deliveries carry no alert_id of their own: the order is the alert.
        return cls(id=row["id"], alert_id=row["alert_id"] or str(row["order_id"]),
                   version=row["version"], kind=row["kind"], level=row["level"],
                   title=row["title"], body=row["body"], order_state=row["order_state"],
                   at=row["created_at"], read=row["read_at"] is not None)

    def as_json(self) -> dict[str, Any]:
        """The entry as the mobile API shows it."""
        return {"id": str(self.id), "alert_id": self.alert_id, "version": self.version,
                "kind": self.kind, "level": self.level, "title": self.title, "body": self.body,
                "order_state": self.order_state, "at": self.at.isoformat(), "read": self.read}


def entry_json(d: str, o: str, extra: str = "") -> str:
    """SQL: the entry of deliveries row `d` (joined with its order `o`) as JSON, the same
    object as InboxEntry.as_json (plus `extra` pairs): sync builds its pages from it."""
    return (f"json_build_object('id', {d}.id::text,"
            f" 'alert_id', coalesce({d}.alert_id, {d}.order_id::text), 'version', {d}.version,"
            f" 'kind', {d}.kind, 'level', {d}.level, 'title', {d}.title, 'body', {d}.body,"
            f" 'order_state', {o}.state, 'at', {db.iso_sql(d + '.created_at')},"
            f" 'read', {d}.read_at IS NOT NULL" + (f", {extra})" if extra else ")"))


async def entries(conn: asyncpg.Connection | asyncpg.Pool, device_id: uuid.UUID,
                  limit: int = LIMIT) -> list[InboxEntry]:
    """The device's inbox: alerts sent (or being sent) to it, newest first."""
    rows = await conn.fetch(
        f"SELECT {_ENTRY} FROM deliveries d LEFT JOIN orders o ON o.id = d.order_id"
        " WHERE d.device_id = $1 AND d.state <> 'cancelled'"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT $2",
        device_id, limit,
    )
    return [InboxEntry.from_row(r) for r in rows]


async def mark_read(conn: asyncpg.Connection | asyncpg.Pool, device_id: uuid.UUID,
                    entry_id: int) -> bool:
    """Mark the device's entry read (a change sync reports once); False when the device has
    no such entry. Reading it again changes nothing."""
    mine = "id = $2 AND device_id = $1 AND state <> 'cancelled'"
    if await conn.fetchval(f"UPDATE deliveries SET read_at = now() WHERE {mine}"
                           " AND read_at IS NULL RETURNING id", device_id, entry_id):
        return True
    return bool(await conn.fetchval(f"SELECT EXISTS (SELECT FROM deliveries WHERE {mine})",
                                    device_id, entry_id))
