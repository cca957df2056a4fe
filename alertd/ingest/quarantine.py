"""Quarantine: every rejected feed input kept with its source, raw bytes and reason (SQL)."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)

MAX_RAW = 256 * 1024  # bytes of the raw input kept; the size is recorded in full


async def put(conn: asyncpg.Connection | asyncpg.Pool, source: str, raw: bytes,
              reason: str, *, size: int | None = None) -> int:
    """Store a rejected input, its raw bytes cut to MAX_RAW; returns its quarantine id.
    ``size`` is its whole size when only part of it was read (``raw`` is that part)."""
    qid: int = await conn.fetchval(
        "INSERT INTO quarantine (source, reason, raw, raw_size) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        source, reason[:2000], raw[:MAX_RAW], max(len(raw), min(size or 0, 2**31 - 1)),
    )
    log.warning("feed_item_quarantined", source=source, reason=reason, quarantine_id=qid)
    return qid


async def listing(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 100,
                  before: int | None = None) -> list[dict[str, Any]]:
    """Quarantined items, newest first (raw bytes as text, for a person to read)."""
    rows = await conn.fetch(
        "SELECT id, source, reason, raw, raw_size, received_at FROM quarantine"
        " WHERE $2::bigint IS NULL OR id < $2 ORDER BY id DESC LIMIT $1",
        limit, before,
    )
    return [
        {"id": r["id"], "source": r["source"], "reason": r["reason"],
         "raw": bytes(r["raw"][:4096]).decode("utf-8", errors="replace"),
         "raw_size": r["raw_size"], "truncated": r["raw_size"] > 4096,
         "received_at": r["received_at"].isoformat()}
        for r in rows
    ]
