"""Quarantine: every rejected feed input kept with its source, raw bytes and reason (SQL)."""

from __future__ import annotations

import codecs
from datetime import datetime
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


LIST_RAW = 4096  # bytes of each item's raw input a listing shows
ITEM_RAW = 64 * 1024  # bytes of the raw input one item shows (the whole of it: raw_bytes)


def as_text(raw: bytes, size: int) -> dict[str, Any]:
    """Raw bytes shown to a person: as UTF-8 text (a byte that is not UTF-8 shown as U+FFFD;
    a character cut at the end of a kept beginning left out), whether it is valid UTF-8, and
    whether it is only the beginning of the input (`size` is the whole input's)."""
    cut = len(raw) < size
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(raw, final=not cut)
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(raw, final=not cut)
        valid = True
    except UnicodeDecodeError:
        valid = False
    return {"raw": text, "raw_utf8": valid, "raw_size": size, "truncated": cut}


def _item(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "source": row["source"], "reason": row["reason"],
            **as_text(bytes(row["raw"]), row["raw_size"]),
            "received_at": row["received_at"].isoformat()}


async def listing(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 100,
                  before: int | None = None, source: str | None = None
                  ) -> list[dict[str, Any]]:
    """Quarantined items, newest first, optionally of one source (the first LIST_RAW bytes of
    each raw input, as text, for a person to read)."""
    rows = await conn.fetch(
        "SELECT id, source, reason, substring(raw FROM 1 FOR $4) AS raw, raw_size, received_at"
        " FROM quarantine WHERE ($2::bigint IS NULL OR id < $2)"
        " AND ($3::text IS NULL OR source = $3) ORDER BY id DESC LIMIT $1",
        limit, before, source, LIST_RAW,
    )
    return [_item(r) for r in rows]


async def item(conn: asyncpg.Connection | asyncpg.Pool, qid: int) -> dict[str, Any] | None:
    """One quarantined item with its reason and the first ITEM_RAW bytes of its raw input as
    text; None when there is none (never was, or purged)."""
    row = await conn.fetchrow(
        "SELECT id, source, reason, substring(raw FROM 1 FOR $2) AS raw, raw_size, received_at"
        " FROM quarantine WHERE id = $1", qid, ITEM_RAW)
    return _item(row) if row is not None else None


async def raw_bytes(conn: asyncpg.Connection | asyncpg.Pool, qid: int) -> bytes | None:
    """The raw input of a quarantined item as kept (at most MAX_RAW bytes); None when there is
    no such item."""
    raw = await conn.fetchval("SELECT raw FROM quarantine WHERE id = $1", qid)
    return bytes(raw) if raw is not None else None


async def by_source(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, tuple[int, datetime]]:
    """Per source: the items kept (within the retention) and when the last came."""
    rows = await conn.fetch(
        "SELECT source, count(*) AS n, max(received_at) AS last FROM quarantine GROUP BY source")
    return {r["source"]: (r["n"], r["last"]) for r in rows}
