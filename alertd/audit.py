"""The audit trail of staff actions: append-only rows in PostgreSQL, and their listing (SQL).

An action and its entry commit together: handlers call :func:`record` on the connection of
the action's transaction. Refused attempts (403, 4xx) are recorded on their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from alertd import staff

VIA = ("api", "console", "cli")
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an action came from: the channel (`api` with a bearer token, `console` with a
    session cookie, `cli`) and the client's address."""

    via: str = "api"
    remote: str = ""


CLI = Origin("cli", "local")


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row."""

    id: int
    at: datetime
    staff_id: uuid.UUID | None
    staff_label: str
    staff_role: str
    via: str
    remote: str
    action: str
    target: str | None
    status: int
    before: Any
    after: Any

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Entry:
        """Build from an audit_log row."""
        return cls(**{k: row[k] for k in _COLUMNS})

    def as_json(self) -> dict[str, Any]:
        """The entry as `GET /v1/staff/audit` shows it."""
        return {"id": self.id, "at": self.at.isoformat(),
                "staff_id": str(self.staff_id) if self.staff_id else None,
                "staff_label": self.staff_label, "staff_role": self.staff_role,
                "via": self.via, "remote": self.remote, "action": self.action,
                "target": self.target, "status": self.status, "before": self.before,
                "after": self.after}


_COLUMNS = ("id", "at", "staff_id", "staff_label", "staff_role", "via", "remote", "action",
            "target", "status", "before", "after")


async def record(conn: asyncpg.Connection | asyncpg.Pool, who: staff.Staff | None,
                 origin: Origin, action: str, *, target: str | None = None, status: int = 200,
                 before: Any = None, after: Any = None) -> int:
    """Append one entry (inside the caller's transaction when `conn` is in one) and return
    its id. `who` is None when no staff identity is known (a sign-in with a bad token)."""
    assert origin.via in VIA, origin.via
    entry_id: int = await conn.fetchval(
        "INSERT INTO audit_log (staff_id, staff_label, staff_role, via, remote, action, target,"
        " status, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        who.id if who else None, who.label if who else "", who.role if who else "",
        origin.via, origin.remote, action, target, status, before, after,
    )
    return entry_id


@dataclass(frozen=True, slots=True)
class Query:
    """Which entries to list: every filter optional; `before` pages (entries with a smaller
    id), newest first."""

    action: str | None = None
    target: str | None = None
    staff_id: uuid.UUID | None = None
    since: datetime | None = None
    before: int | None = None
    limit: int = 100


async def entries(conn: asyncpg.Connection | asyncpg.Pool, q: Query) -> list[Entry]:
    """Entries matching the query, newest first, at most `q.limit`."""
    rows = await conn.fetch(
        f"SELECT {', '.join(_COLUMNS)} FROM audit_log"
        " WHERE ($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR target = $2)"
        " AND ($3::uuid IS NULL OR staff_id = $3) AND ($4::timestamptz IS NULL OR at >= $4)"
        " AND ($5::bigint IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
        q.action, q.target, q.staff_id, q.since, q.before, min(q.limit, MAX_LIMIT),
    )
    return [Entry.from_row(r) for r in rows]
