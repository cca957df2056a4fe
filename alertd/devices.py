"""Registered phones: registration, credentials, settings, location and watched places (SQL)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import asyncpg
import structlog

from alertd import credentials, errors

log = structlog.get_logger(__name__)

MAX_PLACES = 3
# device_points slots of watched places (0 is the location; sheet places follow, see
# alertd.points).
_PLACE_SLOTS = f"slot BETWEEN 1 AND {MAX_PLACES}"


@dataclass(frozen=True, slots=True)
class Device:
    id: uuid.UUID
    seq: int
    platform: str
    push_token: str
    token_state: str
    locale: str
    tips: bool
    quiet_start: time | None
    quiet_end: time | None
    drill: bool
    time_zone: str | None = None  # IANA name the quiet hours are in (None: scheduler.timezone)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Device:
        """Build from a devices row."""
        return cls(
            id=row["id"], seq=row["seq"], platform=row["platform"],
            push_token=row["push_token"], token_state=row["token_state"],
            locale=row["locale"], tips=row["tips"], quiet_start=row["quiet_start"],
            quiet_end=row["quiet_end"], drill=row["drill"], time_zone=row["time_zone"],
        )


@dataclass(frozen=True, slots=True)
class Place:
    place_id: str
    label: str
    lat: float | None
    lon: float | None
    area_code: str | None

    def as_json(self) -> dict[str, Any]:
        """The place as the API shows it."""
        out: dict[str, Any] = {"place_id": self.place_id, "label": self.label}
        if self.area_code is not None:
            out["area_code"] = self.area_code
        else:
            out["lat"], out["lon"] = self.lat, self.lon
        return out


@dataclass(frozen=True, slots=True)
class Watched:
    """Where a device is watched for orders: its shared location or one of its places."""

    lon: float | None
    lat: float | None
    area_code: str | None  # a municipality place has a code and no point


_DEVICE_COLUMNS = (
    "id, seq, platform, push_token, token_state, locale, tips, quiet_start, quiet_end, drill,"
    " time_zone"
)


async def _take_token(conn: asyncpg.Connection, platform: str, push_token: str,
                      holder: uuid.UUID) -> None:
    """Make ``holder`` the one device with this push token (on this platform's service):
    every other device holding it loses it and gets nothing more. Run in the transaction that
    gives ``holder`` the token. Claims of one token wait for each other (a transaction lock),
    so two at once cannot both keep it; the unique index of migration 0011 guarantees it."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       "push_token|" + push_token)
    taken = await conn.fetch(
        "UPDATE devices SET token_state = 'invalid', updated_at = now()"
        " WHERE platform = $1 AND md5(push_token) = md5($2) AND push_token = $2"
        " AND token_state = 'active' AND id <> $3 RETURNING id",
        platform, push_token, holder,
    )
    for row in taken:  # the phone was reinstalled (or the token moved): the old device is mute
        log.info("push_token_moved", device_id=str(holder), from_device_id=str(row["id"]))


async def register(pool: asyncpg.Pool, platform: str, push_token: str,
                   locale: str) -> tuple[uuid.UUID, str]:
    """Create a device and return its id and its (only ever shown once) secret. A push token
    another device holds is taken from it: one phone never gets an alert twice."""
    device_id = uuid.uuid4()
    secret = credentials.new_secret("ds_")
    async with pool.acquire() as conn, conn.transaction():
        await _take_token(conn, platform, push_token, device_id)
        await conn.execute(
            "INSERT INTO devices (id, platform, push_token, secret_hash, locale)"
            " VALUES ($1, $2, $3, $4, $5)",
            device_id, platform, push_token, credentials.digest(secret), locale,
        )
    return device_id, secret


# devices.last_seen_at is written at most this often per device (by authenticate): a device
# unseen for housekeeping.device_max_idle_s is erased, so a day's precision is plenty, and
# authentication stays a read almost always.
LAST_SEEN_EVERY = timedelta(days=1)


async def authenticate(conn: asyncpg.Connection | asyncpg.Pool, secret: str) -> Device | None:
    """The device holding this secret, or None; notes that it was seen (at most once per
    LAST_SEEN_EVERY, in the same statement)."""
    row = await conn.fetchrow(
        f"WITH found AS (SELECT {_DEVICE_COLUMNS}, last_seen_at FROM devices"
        "   WHERE secret_hash = $1),"
        " seen AS (UPDATE devices d SET last_seen_at = now() FROM found"
        "   WHERE d.id = found.id AND found.last_seen_at <= now() - $2::interval)"
        f" SELECT {_DEVICE_COLUMNS} FROM found",
        credentials.digest(secret), LAST_SEEN_EVERY,
    )
    return Device.from_row(row) if row else None


async def get(pool: asyncpg.Pool, device_id: uuid.UUID) -> Device | None:
    """The device with this id, or None."""
    row = await pool.fetchrow(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = $1", device_id)
    return Device.from_row(row) if row else None


# The settings a device may change: update() names these columns, and no others, in its SQL.
SETTINGS = frozenset({"push_token", "locale", "tips", "quiet_start", "quiet_end", "drill",
                      "time_zone"})


async def update(pool: asyncpg.Pool, device_id: uuid.UUID, changes: dict[str, Any]) -> None:
    """Apply settings changes; a new push token re-enables sending (and is taken from any
    other device holding it). Keys outside SETTINGS are refused before any SQL is built from
    them."""
    unknown = sorted(set(changes) - SETTINGS)
    if unknown:
        raise errors.InvalidInput(f"unknown device settings: {', '.join(unknown)}")
    sets: list[str] = []
    args: list[Any] = [device_id]
    for column, value in changes.items():
        args.append(value)
        sets.append(f"{column} = ${len(args)}")
    if "push_token" in changes:
        sets.append("token_state = 'active'")
    if not sets:
        return
    async with pool.acquire() as conn, conn.transaction():
        if "push_token" in changes:
            platform = await conn.fetchval("SELECT platform FROM devices WHERE id = $1",
                                           device_id)
            if platform is not None:
                await _take_token(conn, platform, changes["push_token"], device_id)
        await conn.execute(
            f"UPDATE devices SET {', '.join(sets)}, updated_at = now() WHERE id = $1", *args
        )


async def delete(pool: asyncpg.Pool, device_id: uuid.UUID) -> None:
    """Erase the device and everything about it (places, location, deliveries cascade)."""
    await pool.execute("DELETE FROM devices WHERE id = $1", device_id)


async def erase_idle(pool: asyncpg.Pool, unseen_since: datetime, limit: int) -> int:
    """Erase up to `limit` devices not seen since `unseen_since` as :func:`delete` erases one
    (everything they own cascades); devices an order's fan-out is reading are left for the
    next pass. Returns how many were erased."""
    status = await pool.execute(
        "DELETE FROM devices WHERE id = ANY(ARRAY(SELECT id FROM devices"
        " WHERE last_seen_at < $1 ORDER BY last_seen_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
        unseen_since, limit,
    )
    return int(str(status).rsplit(" ", 1)[-1])


async def set_location(pool: asyncpg.Pool, device: Device, lat: float, lon: float,
                       accuracy_m: float | None) -> None:
    """Store the device's current location (slot 0)."""
    await pool.execute(
        "INSERT INTO device_points (device_id, device_seq, slot, lon, lat, accuracy_m)"
        " VALUES ($1, $2, 0, $3, $4, $5)"
        " ON CONFLICT (device_id, slot) DO UPDATE SET lon = EXCLUDED.lon, lat = EXCLUDED.lat,"
        " accuracy_m = EXCLUDED.accuracy_m, updated_at = now()",
        device.id, device.seq, lon, lat, accuracy_m,
    )


async def clear_location(pool: asyncpg.Pool, device: Device) -> None:
    """Stop sharing the current location: it is erased."""
    await pool.execute("DELETE FROM device_points WHERE device_id = $1 AND slot = 0", device.id)


async def drop_stale_locations(pool: asyncpg.Pool, older_than: datetime, limit: int) -> int:
    """Stop sharing, as :func:`clear_location` does, up to `limit` current locations not
    refreshed since `older_than` (each deletion is heard by every point index). Returns how
    many were dropped."""
    status = await pool.execute(
        "DELETE FROM device_points WHERE ctid = ANY(ARRAY(SELECT ctid FROM device_points"
        " WHERE slot = 0 AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        older_than, limit,
    )
    return int(str(status).rsplit(" ", 1)[-1])


async def put_place(pool: asyncpg.Pool, device: Device, place: Place) -> bool:
    """Create or replace a watched place; True when it was created. A 4th place conflicts."""
    async with pool.acquire() as conn, conn.transaction():
        # Serialise place changes of one device so two requests cannot both take the last slot.
        await conn.execute("SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", device.id)
        rows = await conn.fetch(
            f"SELECT slot, place_id FROM device_points WHERE device_id = $1 AND {_PLACE_SLOTS}",
            device.id,
        )
        existing = {r["place_id"]: r["slot"] for r in rows}
        slot = existing.get(place.place_id)
        created = slot is None
        if slot is None:
            free = sorted(set(range(1, MAX_PLACES + 1)) - set(existing.values()))
            if not free:
                raise errors.Conflict(
                    f"a device may watch at most {MAX_PLACES} places; delete one first"
                )
            slot = free[0]
        await conn.execute(
            "INSERT INTO device_points"
            " (device_id, device_seq, slot, place_id, label, lon, lat, area_code)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (device_id, slot) DO UPDATE SET place_id = EXCLUDED.place_id,"
            " label = EXCLUDED.label, lon = EXCLUDED.lon, lat = EXCLUDED.lat,"
            " area_code = EXCLUDED.area_code, updated_at = now()",
            device.id, device.seq, slot, place.place_id, place.label, place.lon, place.lat,
            place.area_code,
        )
    return created


async def delete_place(pool: asyncpg.Pool, device: Device, place_id: str) -> bool:
    """Remove a watched place; False when there was none."""
    status = await pool.execute(
        f"DELETE FROM device_points WHERE device_id = $1 AND place_id = $2 AND {_PLACE_SLOTS}",
        device.id, place_id,
    )
    return str(status) != "DELETE 0"


async def places(pool: asyncpg.Pool, device: Device) -> list[Place]:
    """The device's watched places."""
    rows = await pool.fetch(
        "SELECT place_id, label, lat, lon, area_code FROM device_points"
        f" WHERE device_id = $1 AND {_PLACE_SLOTS} ORDER BY slot",
        device.id,
    )
    return [Place(r["place_id"], r["label"], r["lat"], r["lon"], r["area_code"]) for r in rows]


async def watched(pool: asyncpg.Pool, device: Device) -> list[Watched]:
    """The device's location (when shared), places and the places of its live sheets."""
    rows = await pool.fetch(
        "SELECT lon, lat, area_code FROM device_points WHERE device_id = $1", device.id)
    return [Watched(r["lon"], r["lat"], r["area_code"]) for r in rows]


async def count_reachable(pool: asyncpg.Pool, seqs: Sequence[int]) -> int:
    """How many of these devices (by seq) can be sent to: their push token is active."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM devices WHERE seq = ANY($1::bigint[]) AND token_state = 'active'",
        list(seqs),
    )
    return count
