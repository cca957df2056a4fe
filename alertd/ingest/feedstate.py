"""Feed state: each polled feed's validators, health and schedule, and the entries seen (SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
MAX_ERROR = 2000  # characters of an error kept


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional GET sends back: the index's ETag and Last-Modified."""

    etag: str | None
    last_modified: str | None


@dataclass(frozen=True, slots=True)
class FeedState:
    """One polled feed as stored: validators, health and when it is next due."""

    name: str
    kind: str
    url: str
    validators: Validators
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int
    items_seen: int
    items_skipped: int
    next_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> FeedState:
        """Build from a feed_state row."""
        return cls(name=row["name"], kind=row["kind"], url=row["url"],
                   validators=Validators(row["etag"], row["last_modified"]),
                   last_success=row["last_success"], last_error=row["last_error"],
                   last_error_at=row["last_error_at"], failures=row["failures"],
                   items_seen=row["items_seen"], items_skipped=row["items_skipped"],
                   next_at=row["next_at"])

    def as_json(self) -> dict[str, Any]:
        """The feed's health as the staff API shows it."""
        return {"name": self.name, "kind": self.kind, "url": self.url,
                "last_success": self.last_success.isoformat() if self.last_success else None,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
                "failures": self.failures, "items_seen": self.items_seen,
                "items_skipped": self.items_skipped, "next_at": self.next_at.isoformat()}


async def register(conn: Conn, name: str, kind: str, url: str) -> None:
    """Make sure the feed has a state row (a changed URL is taken over)."""
    await conn.execute(
        "INSERT INTO feed_state (name, kind, url) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url", name, kind, url)


async def try_lock(conn: asyncpg.Connection, name: str) -> bool:
    """Take the feed's advisory lock for this session if no other node holds it."""
    got = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", "feed|" + name)
    return bool(got)


async def get(conn: Conn, name: str) -> FeedState:
    """The stored state of a registered feed."""
    row = await conn.fetchrow("SELECT * FROM feed_state WHERE name = $1", name)
    return FeedState.from_row(row)


async def listing(conn: Conn) -> list[FeedState]:
    """Every feed's state, by name."""
    rows = await conn.fetch("SELECT * FROM feed_state ORDER BY name")
    return [FeedState.from_row(r) for r in rows]


async def seconds_until_due(conn: Conn, name: str) -> float:
    """How long until the feed is next due; 0 when it is due now."""
    due = await conn.fetchval(
        "SELECT greatest(0, extract(epoch FROM next_at - now())) FROM feed_state"
        " WHERE name = $1", name)
    return float(due) if due else 0.0


async def schedule(conn: Conn, name: str, delay_s: float) -> None:
    """Make the feed due `delay_s` seconds from now."""
    await conn.execute(
        "UPDATE feed_state SET next_at = now() + make_interval(secs => $2)"
        " WHERE name = $1", name, delay_s)


async def record_failure(conn: Conn, name: str, reason: str) -> int:
    """Count a failed poll with its reason; returns the failures in a row so far."""
    failures: int = await conn.fetchval(
        "UPDATE feed_state SET last_error = $2, last_error_at = now(),"
        " failures = failures + 1 WHERE name = $1 RETURNING failures", name, reason)
    return failures


async def record_success(conn: Conn, name: str, items: int,
                         validators: Validators | None) -> None:
    """Count a successful poll and its items; None keeps the stored validators."""
    await conn.execute(
        "UPDATE feed_state SET last_success = now(), failures = 0,"
        " items_seen = items_seen + $2,"
        " etag = CASE WHEN $5 THEN $3 ELSE etag END,"
        " last_modified = CASE WHEN $5 THEN $4 ELSE last_modified END WHERE name = $1",
        name, items, validators.etag if validators else None,
        validators.last_modified if validators else None, validators is not None)


async def note_error(conn: Conn, name: str, error: str) -> None:
    """Record a problem that does not count as a failed poll (e.g. unreachable entries)."""
    await conn.execute(
        "UPDATE feed_state SET last_error = $2, last_error_at = now() WHERE name = $1",
        name, error[:MAX_ERROR])


async def count_skipped(conn: Conn, name: str) -> None:
    """Count an entry of the feed's index that had nothing to take."""
    await conn.execute(
        "UPDATE feed_state SET items_skipped = items_skipped + 1 WHERE name = $1", name)


async def entry_seen(conn: Conn, feed: str, entry_id: str) -> bool:
    """Whether this entry of the feed's index was handled already."""
    seen = await conn.fetchval(
        "SELECT 1 FROM feed_entries_seen WHERE feed = $1 AND entry_id = $2", feed, entry_id)
    return seen is not None


async def mark_seen(conn: Conn, feed: str, entry_id: str) -> None:
    """Remember that this entry of the feed's index was handled."""
    await conn.execute(
        "INSERT INTO feed_entries_seen (feed, entry_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING", feed, entry_id)
