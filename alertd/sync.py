"""A device's sync (GET /v1/me/sync): one page of what changed in its sheets, inbox and
shelters since a position (alertd.positions), read from PostgreSQL in one statement.

Each stream pages on its own: a page holds at most `limit` changes of each, and `more` says
that one of them has more waiting.
"""

from __future__ import annotations

import time
import uuid
import weakref
from dataclasses import dataclass

import asyncpg

from alertd import inbox, positions, shelters
from sheets import cursor, store

_KEYS: weakref.WeakKeyDictionary[asyncpg.Pool, bytes] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a device's sync, each change as JSON text, and where it leaves the
    device."""

    sheets: list[str]
    alerts: list[str]
    shelters: list[str]
    position: positions.Position
    more: bool

    def as_text(self, cursor_text: str) -> str:
        """The page as the API shows it (JSON), with the cursor that continues from it."""
        # Cursors are base64url: nothing in them needs escaping.
        return (f'{{"cursor": "{cursor_text}", "more": {"true" if self.more else "false"}, '
                f'"sheets": [{", ".join(self.sheets)}], "alerts": [{", ".join(self.alerts)}], '
                f'"shelters": [{", ".join(self.shelters)}]}}')


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
# Each change comes as (its marks..., its JSON as the API shows it) in an anonymous record: the
# JSON is built by PostgreSQL (inbox.ENTRY_JSON, shelters.JSON), so that a page costs the
# daemon string joins, not a decode and an encode of every row.
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
    SELECT row(change_seq, CASE WHEN deleted
        THEN json_build_object('id', id::text, 'version', version, 'deleted', true)
        ELSE json_build_object('id', id::text, 'version', version, 'deleted', false,
                               'sheet', body) END::text)
    FROM sheets WHERE device_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $5
) AS sheets,
ARRAY(
    -- A cancelled row is a tombstone only for a cursor past its creation (xid, id): one
    -- that may have seen it.
    SELECT row(d.change_xid, d.id, CASE WHEN d.state = 'cancelled'
        THEN json_build_object('id', d.id::text, 'deleted', true)
        ELSE {inbox.entry_json("d", "o", "'deleted', false")} END::text)
    FROM deliveries d LEFT JOIN orders o ON o.id = d.order_id
    WHERE d.device_id = $1 AND (d.change_xid, d.id) > ($3::xid8, $4::bigint)
      AND d.change_xid < h.x
      AND (d.state <> 'cancelled' OR (d.xid, d.id) <= ($3::xid8, $4::bigint))
    ORDER BY d.change_xid, d.id LIMIT $5
) AS alerts,
ARRAY(
    SELECT row(s.id, s.change_xid, s.seq, {shelters.json_sql("s")}::text)
    FROM shelters s WHERE s.id IN (SELECT id FROM near)
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
    sheets, alerts, watched = row["sheets"], row["alerts"], row["shelters"]
    sheet_page, alert_page = sheets[:limit], alerts[:limit]
    picked = positions.shelter_page(after, [(xid, seq) for _, xid, seq, _ in watched],
                                    positions.fingerprint(w[0] for w in watched), horizon,
                                    limit)
    position = positions.Position(
        sheets=sheet_page[-1][0] if sheet_page else after.sheets,
        inbox=positions.next_inbox(after.inbox, [(xid, i) for xid, i, _ in alert_page],
                                   len(alerts) > limit, horizon),
        fingerprint=picked.fingerprint, phase=picked.phase, shelters=picked.mark,
        issued=int(time.time()))
    return Page([doc for _, doc in sheet_page], [doc for _, _, doc in alert_page],
                [watched[i][3] for i in picked.served], position,
                more=len(sheets) > limit or len(alerts) > limit or picked.more)
