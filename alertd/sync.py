"""A device's sync (GET /v1/me/sync): one page of what changed in its sheets, inbox and
shelters since a position (alertd.positions), read from PostgreSQL.

Each stream pages on its own: a page holds at most `limit` changes of each, and `more` says
that one of them has more waiting.
"""

from __future__ import annotations

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

    sheets: list[store.Change]
    alerts: list[inbox.InboxChange]
    shelters: list[shelters.StoredShelter]
    position: positions.Position
    more: bool

    def as_json(self, cursor_text: str) -> dict[str, Any]:
        """The page as the API shows it, with the cursor that continues from it."""
        return {"cursor": cursor_text, "more": self.more,
                "sheets": [c.sheet.as_json() for c in self.sheets],
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


async def page(conn: asyncpg.Connection, device_id: uuid.UUID, after: positions.Position,
               limit: int, radius_m: float) -> Page:
    """What changed for the device after the position: at most `limit` of each stream."""
    sheet_changes = await store.changes(conn, device_id, after.sheets, limit + 1)
    alert_changes, horizon = await inbox.changes(conn, device_id, after.inbox, limit + 1)
    watched, shelter_horizon = await shelters.watched(conn, device_id, radius_m)

    sheet_page = sheet_changes[:limit]
    alert_page = alert_changes[:limit]
    alerts_full = len(alert_changes) > limit
    fingerprint = positions.fingerprint(w.shelter.id for w in watched)
    picked = positions.shelter_page(after, [w.mark for w in watched], fingerprint,
                                    shelter_horizon, limit)
    position = positions.Position(
        sheets=sheet_page[-1].seq if sheet_page else after.sheets,
        inbox=positions.next_inbox(after.inbox, [c.mark for c in alert_page], alerts_full,
                                   horizon),
        fingerprint=picked.fingerprint, phase=picked.phase, shelters=picked.mark,
        issued=int(time.time()))
    return Page(sheet_page, alert_page, [watched[i].shelter for i in picked.served], position,
                more=len(sheet_changes) > limit or alerts_full or picked.more)
