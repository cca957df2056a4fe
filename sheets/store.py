"""Sheets in PostgreSQL (SQL): get, put and delete under the version rules of `sheets.merge`,
the changes a device's sync has not seen, and who names a shelter.

Writes for one device hold a transaction advisory lock on it (see migration 0010), so the
10-sheet limit holds under concurrent creates and change_seq follows commit order per device.
Bodies are stored as the validated sheet's JSON and read back through `sheets.validate`.
Every write of a sheet's body also rewrites its places in ``device_points`` (a trigger of
migration 0014, in the same transaction), where the point index watches them for orders.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from sheets import merge, validate
from sheets.errors import SheetMissing
from sheets.merge import IfMatch
from sheets.model import Sheet, StoredSheet

# The advisory lock class of sheet writes ("shee"); the two-key form keeps it apart from the
# single-key locks other modules take.
_LOCK_CLASS: Final = 0x73686565
_COLUMNS: Final = "id, version, deleted, body, change_seq"


@dataclass(frozen=True, slots=True)
class Change:
    """A sheet's latest state as sync reports it, at its place in the change order."""

    seq: int
    sheet: StoredSheet


def _stored(row: asyncpg.Record) -> StoredSheet:
    body = row["body"]
    return StoredSheet(id=row["id"], version=row["version"], deleted=row["deleted"],
                       sheet=validate.parse(body) if body is not None else None)


async def _lock(conn: asyncpg.Connection, device_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))",
                       _LOCK_CLASS, str(device_id))


async def get(conn: asyncpg.Connection | asyncpg.Pool, device_id: uuid.UUID,
              sheet_id: uuid.UUID) -> StoredSheet | None:
    """The sheet (live or a tombstone) under this id, or None when it was never written."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM sheets WHERE device_id = $1 AND id = $2",
                              device_id, sheet_id)
    return _stored(row) if row is not None else None


async def put(conn: asyncpg.Connection, device_id: uuid.UUID, sheet_id: uuid.UUID,
              sheet: Sheet, if_match: IfMatch | None) -> tuple[StoredSheet, bool]:
    """Write the sheet if `merge.put` allows it; the stored sheet and whether it was created.
    Raises IfMatchRequired, StaleVersion (with the server's copy) or TooManySheets."""
    async with conn.transaction():
        await _lock(conn, device_id)
        current = await get(conn, device_id, sheet_id)
        others = await conn.fetchval(
            "SELECT count(*) FROM sheets WHERE device_id = $1 AND id <> $2 AND NOT deleted",
            device_id, sheet_id)
        write = merge.put(current, if_match, others)
        if current is None:
            try:
                await conn.execute(
                    "INSERT INTO sheets (device_id, id, version, body) VALUES ($1, $2, $3, $4)",
                    device_id, sheet_id, write.version, sheet.as_json())
            except asyncpg.ForeignKeyViolationError as exc:  # the device was just erased
                raise SheetMissing("no such device") from exc
        else:
            await conn.execute(
                "UPDATE sheets SET version = $3, deleted = false, body = $4, updated_at = now(),"
                " change_seq = nextval('sync_seq') WHERE device_id = $1 AND id = $2",
                device_id, sheet_id, write.version, sheet.as_json())
    return StoredSheet(sheet_id, write.version, False, sheet), write.created


async def delete(conn: asyncpg.Connection, device_id: uuid.UUID, sheet_id: uuid.UUID,
                 if_match: IfMatch | None) -> StoredSheet:
    """Leave a tombstone if `merge.delete` allows it; the tombstone (the same one when the
    sheet was deleted before). Raises SheetMissing or StaleVersion."""
    async with conn.transaction():
        await _lock(conn, device_id)
        current = await get(conn, device_id, sheet_id)
        version = merge.delete(current, if_match)
        if version is None:
            assert current is not None
            return current
        await conn.execute(
            "UPDATE sheets SET version = $3, deleted = true, body = NULL, updated_at = now(),"
            " change_seq = nextval('sync_seq') WHERE device_id = $1 AND id = $2",
            device_id, sheet_id, version)
    return StoredSheet(sheet_id, version, True, None)


async def changes(conn: asyncpg.Connection | asyncpg.Pool, device_id: uuid.UUID, after: int,
                  limit: int) -> list[Change]:
    """The device's sheets changed after position `after` (0: all), tombstones included, in
    change order, at most `limit`; each sheet once, in its latest state."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM sheets WHERE device_id = $1 AND change_seq > $2"
        " ORDER BY change_seq LIMIT $3", device_id, after, limit)
    return [Change(row["change_seq"], _stored(row)) for row in rows]


async def live(conn: asyncpg.Connection | asyncpg.Pool,
               device_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[StoredSheet]]:
    """The live sheets of these devices, by device (devices without one left out)."""
    rows = await conn.fetch(
        f"SELECT device_id, {_COLUMNS} FROM sheets WHERE device_id = ANY($1::uuid[])"
        " AND NOT deleted ORDER BY device_id, change_seq", list(device_ids))
    out: dict[uuid.UUID, list[StoredSheet]] = {}
    for row in rows:
        out.setdefault(row["device_id"], []).append(_stored(row))
    return out


async def holders(conn: asyncpg.Connection | asyncpg.Pool, shelter_id: str) -> list[uuid.UUID]:
    """The devices whose live sheets name this shelter as a destination (told of its opening)."""
    if "\x00" in shelter_id:  # never a shelter id; PostgreSQL text cannot hold it
        return []
    rows = await conn.fetch(
        "SELECT DISTINCT device_id FROM sheets WHERE NOT deleted"
        " AND body @> jsonb_build_object('destinations',"
        " jsonb_build_array(jsonb_build_object('kind', 'shelter', 'shelter_id', $1::text)))"
        " ORDER BY device_id", shelter_id)
    return [row["device_id"] for row in rows]


async def cursor_key(conn: asyncpg.Connection | asyncpg.Pool) -> bytes:
    """The HMAC key of sync cursors (the same on every node, across restarts)."""
    key: bytes = await conn.fetchval(
        "SELECT secret FROM server_secrets WHERE name = 'sync_cursor'")
    return key
