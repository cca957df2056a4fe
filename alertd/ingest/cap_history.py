"""The CAP messages received, newest first, with the orders they made or changed (SQL)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from alertd import errors


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page of the history ends: the last message's arrival and key (opaque to
    clients as a cursor)."""

    received_at: datetime
    sender: str
    identifier: str

    def cursor(self) -> str:
        """The position as an opaque cursor."""
        doc = [self.received_at.isoformat(), self.sender, self.identifier]
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    @classmethod
    def from_cursor(cls, text: str) -> Position:
        """Read a cursor this module wrote (InvalidInput otherwise)."""
        try:
            doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            at, sender, identifier = doc
            if not (isinstance(sender, str) and isinstance(identifier, str)):
                raise ValueError("not a key")
            return cls(datetime.fromisoformat(at), sender, identifier)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise errors.InvalidInput("cursor is not one this server gave") from exc


@dataclass(frozen=True, slots=True)
class Received:
    """A CAP message as recorded: its key, type, what became of it and the order it touched."""

    sender: str
    identifier: str
    sent: datetime
    status: str
    msg_type: str
    source: str
    outcome: str
    detail: str
    order_id: uuid.UUID | None
    received_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Received:
        """Build from a cap_messages row."""
        return cls(sender=row["sender"], identifier=row["identifier"], sent=row["sent"],
                   status=row["status"], msg_type=row["msg_type"], source=row["source"],
                   outcome=row["outcome"], detail=row["detail"], order_id=row["order_id"],
                   received_at=row["received_at"])

    def as_json(self) -> dict[str, Any]:
        """The message as the staff API shows it."""
        return {"sender": self.sender, "identifier": self.identifier,
                "sent": self.sent.isoformat(), "status": self.status,
                "msg_type": self.msg_type, "source": self.source, "outcome": self.outcome,
                "detail": self.detail,
                "order_id": str(self.order_id) if self.order_id else None,
                "received_at": self.received_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Page:
    """Messages newest first, the orders they name (each once, as it stands now), and the
    position of the last message when there may be more."""

    messages: list[Received]
    orders: dict[str, dict[str, Any]]
    next: Position | None


async def recent(conn: asyncpg.Connection | asyncpg.Pool, limit: int,
                 after: Position | None = None, with_areas: bool = True) -> Page:
    """The CAP messages received, newest first, from after a position, with the current
    version of each order they name (its area as stored: GeoJSON, when `with_areas`)."""
    # Two statements, not one with "$n IS NULL OR": only a plain row comparison is an index
    # condition, so that a later page starts where the last ended instead of walking to it.
    where = ("WHERE (m.received_at, m.sender, m.identifier) < ($3, $4::text, $5::text)"
             if after else "")
    keys = (after.received_at, after.sender, after.identifier) if after else ()
    rows = await conn.fetch(
        "SELECT m.*, o.state AS order_state, o.version AS order_version,"
        " o.exercise AS order_exercise, v.level, v.hazard, v.headline, v.expires_at,"
        " CASE WHEN $2 THEN v.area END AS area"
        " FROM cap_messages m LEFT JOIN orders o ON o.id = m.order_id"
        " LEFT JOIN order_versions v ON v.order_id = o.id AND v.version = o.version"
        f" {where} ORDER BY m.received_at DESC, m.sender DESC, m.identifier DESC LIMIT $1",
        limit, with_areas, *keys)
    messages = [Received.from_row(r) for r in rows]
    orders: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["order_id"] is None or r["order_state"] is None or str(r["order_id"]) in orders:
            continue
        orders[str(r["order_id"])] = {
            "state": r["order_state"], "version": r["order_version"],
            "exercise": r["order_exercise"], "level": r["level"], "hazard": r["hazard"],
            "headline": r["headline"], "expires_at": r["expires_at"].isoformat(),
            **({"area": r["area"]} if with_areas else {})}
    last = messages[-1] if len(messages) == limit else None
    position = Position(last.received_at, last.sender, last.identifier) if last else None
    return Page(messages, orders, position)
