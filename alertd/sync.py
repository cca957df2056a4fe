"""A device's sync (GET /v1/me/sync): one page of what changed in its sheets, inbox and
shelters since a position (alertd.positions), read from PostgreSQL in one statement.

Each stream pages on its own: a page holds at most `limit` changes of each, and `more` says
that one of them has more waiting.
"""

from __future__ import annotations

import json
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

import asyncpg

from alertd import inbox, positions, shelters
from sheets import cursor, store

_KEYS: weakref.WeakKeyDictionary[asyncpg.Pool, bytes] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a device's sync and where it leaves the device."""

    sheets: list[tuple[int, dict[str, Any]]]
    alerts: list[inbox.InboxChange]
    shelters: list[shelters.StoredShelter]
    position: positions.Position
    more: bool

    def as_json(self, cursor_text: str) -> dict[str, Any]:
        """The page as the API shows it, with the cursor that continues from it."""
        return {"cursor": cursor_text, "more": self.more,
                "sheets": [doc for _, doc in self.sheets],
                "alerts": [c.as_json() for c in self.alerts],
                "shelters": [s.as_json() for s in self.shelters]}


async def cursor_key(pool: asyncpg.Pool) -> bytes:
    """The cursors' HMAC key (stored once for every node; read once per pool)."""
    key = _KEYS.get(pool)
    if key is None:
        key = _KEYS[pool] = await store.cursor_key(pool)
    return key


def read_cursor(text: str | None, key: bytes, device_id: uuid.UUID, now: float,
                max_age_s: int) -> positions.Position:
    """The position a cursor holds (none: the beginning). CursorUnreadable for one this server
    cannot read, CursorExpired for one older than it serves."""
    if not text:
        return positions.Position()
    found = positions.Position.from_numbers(cursor.decode(text, key, device_id.bytes))
    positions.check_age(found, int(now), max_age_s)
    return found


def write_cursor(position: positions.Position, key: bytes, device_id: uuid.UUID) -> str:
    """The cursor of a position, for this device only."""
    return cursor.encode(position.numbers(), key, device_id.bytes)


# The whole page in one statement (one round trip, one snapshot: the horizon, the xmin of that
# snapshot, is the same for the inbox and the shelters). $1 device, $2 sheets position,
# $3/$4 inbox position, $5 rows per stream (limit + 1: one more tells `more`), $6 radius (m).
# Rows travel as anonymous records (columns in _SHEET, _ENTRY and _SHELTER order); a sheet body
# as text, since a record's jsonb reaches the client in binary form.
_SHEET = ("change_seq", "id", "version", "deleted", "body")
_ENTRY = ("id", "order_id", "alert_id", "version", "kind", "level", "title", "body", "state",
          "created_at", "read_at", "change_xid", "order_state")
_SHELTER = ("id", "name", "address", "lat", "lon", "hazards", "capacity", "status", "crowding",
            "evacuees", "status_at", "openings", "change_xid", "seq")
_PAGE = f"""
WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),
live AS (SELECT body FROM sheets WHERE device_id = $1 AND NOT deleted),
pts AS (  -- the location, watched points and sheet places (migration 0014)
    SELECT DISTINCT lat, lon FROM device_points WHERE device_id = $1 AND lat IS NOT NULL
), near AS (
    SELECT s.id FROM pts JOIN LATERAL (
        SELECT id, lat, lon FROM shelters
        WHERE lat BETWEEN pts.lat - $6 / 110000.0 AND pts.lat + $6 / 110000.0
          AND lon BETWEEN pts.lon - $6 / (111000.0 * greatest(cos(radians(pts.lat)), 0.01))
                      AND pts.lon + $6 / (111000.0 * greatest(cos(radians(pts.lat)), 0.01))
    ) s ON {shelters.distance_sql("pts.lat", "pts.lon", "s.")} <= $6
    UNION
    SELECT id FROM shelters WHERE municipality_code IN (
        SELECT area_code FROM device_points
        WHERE device_id = $1 AND lat IS NULL AND area_code IS NOT NULL)
    UNION
    SELECT d->>'shelter_id' FROM live, jsonb_array_elements(live.body->'destinations') d
    WHERE d->>'kind' = 'shelter'
)
SELECT h.x AS horizon,
ARRAY(
    SELECT row(change_seq, id, version, deleted, body::text) FROM sheets
    WHERE device_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $5
) AS sheets,
ARRAY(
    -- A cancelled row is a tombstone only for a cursor past its creation (xid, id): one
    -- that may have seen it.
    SELECT row({", ".join("d." + c for c in _ENTRY if c != "order_state")}, o.state)
    FROM deliveries d LEFT JOIN orders o ON o.id = d.order_id
    WHERE d.device_id = $1 AND (d.change_xid, d.id) > ($3::xid8, $4::bigint)
      AND d.change_xid < h.x
      AND (d.state <> 'cancelled' OR (d.xid, d.id) <= ($3::xid8, $4::bigint))
    ORDER BY d.change_xid, d.id LIMIT $5
) AS alerts,
ARRAY(
    SELECT row({", ".join(_SHELTER)}) FROM shelters WHERE id IN (SELECT id FROM near)
) AS shelters
FROM h
"""


async def page(conn: asyncpg.Connection | asyncpg.Pool, device_id: uuid.UUID,
               after: positions.Position, limit: int, radius_m: float) -> Page:
    """What changed for the device after the position: at most `limit` of each stream."""
    row = await conn.fetchrow(_PAGE, device_id, after.sheets, after.inbox[0], after.inbox[1],
                              limit + 1, radius_m)
    assert row is not None
    horizon: int = row["horizon"]
    sheet_rows = [dict(zip(_SHEET, r, strict=True)) for r in row["sheets"]]
    alert_rows = [dict(zip(_ENTRY, r, strict=True)) for r in row["alerts"]]
    watched = [dict(zip(_SHELTER, r, strict=True)) for r in row["shelters"]]

    sheet_page = [(r["change_seq"], _sheet_doc(r)) for r in sheet_rows[:limit]]
    alert_page = [inbox.InboxChange(
        (r["change_xid"], r["id"]), r["id"],
        None if r["state"] == "cancelled" else inbox.InboxEntry.from_row(r))
        for r in alert_rows[:limit]]
    alerts_full = len(alert_rows) > limit
    fingerprint = positions.fingerprint(w["id"] for w in watched)
    picked = positions.shelter_page(after, [(w["change_xid"], w["seq"]) for w in watched],
                                    fingerprint, horizon, limit)
    position = positions.Position(
        sheets=sheet_page[-1][0] if sheet_page else after.sheets,
        inbox=positions.next_inbox(after.inbox, [c.mark for c in alert_page], alerts_full,
                                   horizon),
        fingerprint=picked.fingerprint, phase=picked.phase, shelters=picked.mark,
        issued=int(time.time()))
    return Page(sheet_page, alert_page,
                [shelters.StoredShelter.from_row(watched[i]) for i in picked.served], position,
                more=len(sheet_rows) > limit or alerts_full or picked.more)


def _sheet_doc(row: dict[str, Any]) -> dict[str, Any]:
    # Bodies were validated when written (sheets.store.put): served as stored.
    doc = {"id": str(row["id"]), "version": row["version"], "deleted": row["deleted"]}
    if row["body"] is not None:
        doc["sheet"] = json.loads(row["body"])
    return doc
