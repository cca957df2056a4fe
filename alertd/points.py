"""The node's live point index: loaded from PostgreSQL, kept current by LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np
import structlog

from alertd import db, errors
from geo import index as geo_index
from geo import municipalities

log = structlog.get_logger(__name__)

CHANNEL = "alertd_points"
SLOTS = 4  # slot 0: current location; 1-3: watched places


def key(seq: int, slot: int) -> int:
    """The index key of one device point."""
    return seq * SLOTS + slot


@dataclass(frozen=True, slots=True)
class Match:
    """Devices an area reaches, as device sequence numbers."""

    seqs: np.ndarray  # int64, unique, sorted


@dataclass(slots=True)
class Points:
    """Every device's points (geometry index) and watched municipalities (code -> keys)."""

    index: geo_index.PointIndex
    table: municipalities.Table
    watchers: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    watched_code: dict[int, str] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    barriers: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def set_point(self, k: int, lon: float | None, lat: float | None,
                  area_code: str | None) -> None:
        """Insert, move or (with all None) remove one device point."""
        old_code = self.watched_code.pop(k, None)
        if old_code is not None:
            self.watchers[old_code].discard(k)
        if lon is not None and lat is not None:
            self.index.upsert(k, lon, lat)
        else:
            self.index.remove(k)
        if area_code is not None:
            code6 = municipalities.to_code6(area_code)
            self.watchers[code6].add(k)
            self.watched_code[k] = code6

    def match(self, geometry: Any, codes: tuple[str, ...] = ()) -> Match:
        """Devices with a point in the geometry or watching a municipality it touches."""
        keys = [self.index.match(geometry)]
        watched = set(codes) if codes else set(self.table.intersecting(geometry))
        for code in watched:
            members = self.watchers.get(code)
            if members:
                keys.append(np.fromiter(members, dtype=np.int64, count=len(members)))
        allkeys = np.concatenate(keys) if len(keys) > 1 else keys[0]
        return Match(seqs=np.unique(allkeys // SLOTS))

    def by_area(self, geometry: Any, codes: tuple[str, ...] = ()) -> dict[str, int]:
        """Reached devices per municipality (a device may count in several)."""
        out: dict[str, int] = {}
        candidates = codes or tuple(self.table.intersecting(geometry))
        for code in candidates:
            part = geometry.intersection(self.table.get(code))
            hits = self.index.match(part) if not part.is_empty else np.empty(0, np.int64)
            members = self.watchers.get(code, set())
            seqs = set((hits // SLOTS).tolist()) | {k // SLOTS for k in members}
            if seqs:
                out[code] = len(seqs)
        return out


async def catch_up(pool: asyncpg.Pool, points: Points, within_s: float = 1.0) -> bool:
    """Wait until every point change committed before now is in the index.

    NOTIFYs arrive in commit order, so once our own marker comes back through the channel,
    every earlier change has been applied: an order never misses a location that was saved
    before it was issued. False when the follower did not answer in time."""
    if not points.ready.is_set():
        # Matching against a half-loaded index would silently leave residents out.
        try:
            await asyncio.wait_for(points.ready.wait(), within_s * 5)
        except TimeoutError as exc:
            raise errors.NotReady("the location index is still loading; retry in a few "
                                  "seconds") from exc
    token = uuid.uuid4().hex
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    points.barriers[token] = fut
    try:
        await pool.execute("SELECT pg_notify($1, $2)", CHANNEL, "sync:" + token)
        await asyncio.wait_for(fut, within_s)
        return True
    except TimeoutError:
        log.warning("points_catch_up_timeout")
        return False
    finally:
        points.barriers.pop(token, None)


# One row of a binary COPY of (bigint, float8, float8): field count, then length + value each.
_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("k", ">i8"), ("l2", ">i4"), ("lon", ">f8"),
                 ("l3", ">i4"), ("lat", ">f8")])
_COPY_HEADER = 19  # signature (11), flags (4), header extension length (4, zero)


def parse_binary_copy(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys, longitudes and latitudes from a binary COPY of (key, lon, lat) rows."""
    count = (len(data) - _COPY_HEADER - 2) // _ROW.itemsize
    if data[:11] != b"PGCOPY\n\xff\r\n\x00" or count < 0 or (
            _COPY_HEADER + count * _ROW.itemsize + 2 != len(data)):
        raise ValueError("unexpected binary COPY layout")
    rows = np.frombuffer(data, dtype=_ROW, count=count, offset=_COPY_HEADER)
    if count and not ((rows["n"] == 3).all() and (rows["l1"] == 8).all()):
        raise ValueError("unexpected binary COPY row layout")
    return (rows["k"].astype(np.int64), rows["lon"].astype(np.float64),
            rows["lat"].astype(np.float64))


async def load(conn: asyncpg.Connection, points: Points) -> None:
    """(Re)load every point from the database into the index, in one consistent snapshot.

    Points travel as a binary COPY read straight into numpy arrays: a million points load in
    a fraction of a second, where building a Python row object per point took seconds."""
    buffer = io.BytesIO()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.copy_from_query(
            f"SELECT device_seq * {SLOTS} + slot, lon, lat FROM device_points"
            " WHERE lon IS NOT NULL", output=buffer, format="binary")
        watched = await conn.fetch(
            "SELECT device_seq * $1 + slot AS k, area_code FROM device_points"
            " WHERE area_code IS NOT NULL", SLOTS)
    keys, lon, lat = parse_binary_copy(buffer.getvalue())
    points.index.build(keys, lon, lat)
    points.watchers.clear()
    points.watched_code.clear()
    for r in watched:
        code6 = municipalities.to_code6(r["area_code"])
        points.watchers[code6].add(r["k"])
        points.watched_code[r["k"]] = code6
    points.ready.set()
    log.info("points_loaded", points=len(keys), watched_areas=len(watched))


async def _apply(conn: asyncpg.Connection, points: Points, changed: set[tuple[int, int]]) -> None:
    seqs = [s for s, _ in changed]
    slots = [sl for _, sl in changed]
    rows = await conn.fetch(
        "SELECT c.seq, c.slot, p.lon, p.lat, p.area_code"
        " FROM unnest($1::bigint[], $2::smallint[]) AS c(seq, slot)"
        " LEFT JOIN device_points p ON p.device_seq = c.seq AND p.slot = c.slot",
        seqs, slots,
    )
    for r in rows:
        points.set_point(key(r["seq"], r["slot"]), r["lon"], r["lat"], r["area_code"])


async def follow(url: str, points: Points, stop: asyncio.Event) -> None:
    """Load the index, then apply every change notified until `stop` is set."""
    while not stop.is_set():
        try:
            conn = await db.connect_one(url)
        except Exception as exc:  # database down: keep the old index and try again
            log.warning("points_connect_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            continue
        try:
            await _follow_on(conn, points, stop)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("points_listener_lost", error=str(exc))
            with contextlib.suppress(TimeoutError):  # e.g. schema not migrated yet: no spin
                await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()


async def _follow_on(conn: asyncpg.Connection, points: Points, stop: asyncio.Event) -> None:
    pending: set[tuple[int, int]] = set()
    syncs: list[str] = []
    wake = asyncio.Event()

    def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("sync:"):
            syncs.append(payload[5:])
        else:
            seq, _, slot = payload.partition(",")
            pending.add((int(seq), int(slot)))
        wake.set()

    # Listen before loading so no change between the two is missed.
    await conn.add_listener(CHANNEL, on_notify)
    await load(conn, points)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            waiter = asyncio.ensure_future(wake.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED,
                               timeout=5.0)
            waiter.cancel()
            if conn.is_closed():
                raise asyncpg.InterfaceError("listener connection closed")
            wake.clear()
            done, syncs[:] = list(syncs), []
            if pending:
                batch = set(pending)
                pending.clear()
                await _apply(conn, points, batch)
            elif not done:
                await conn.execute("SELECT 1")  # notice a dead connection promptly
            for token in done:
                fut = points.barriers.get(token)
                if fut is not None and not fut.done():
                    fut.set_result(None)
    finally:
        stopper.cancel()
