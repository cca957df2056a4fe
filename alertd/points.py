"""The node's live point index: loaded from PostgreSQL, kept current by LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np
import structlog

from alertd import db, devices, errors, logs, settings
from geo import index as geo_index
from geo import municipalities
from sheets import merge as sheet_merge
from sheets import model as sheet_model

log = structlog.get_logger(__name__)

CHANNEL = "alertd_points"
# A device's points are keyed seq * SLOTS + slot. Slot 0: its current location; 1-3: its
# watched places; SHEET_SLOT..: the places of its live sheets, a block of sheet_model.MAX_PLACES
# slots per sheet (written by migration 0014's trigger on sheets, in the sheet write's
# transaction). 64 leaves room and keeps `// SLOTS` a shift.
SLOTS = 64
SHEET_SLOT = 1 + devices.MAX_PLACES
SHEET_SLOTS = sheet_merge.MAX_SHEETS * sheet_model.MAX_PLACES
assert SHEET_SLOT + SHEET_SLOTS <= SLOTS
# How long a request waits for the follower to confirm the latest locations. Normally a round
# trip of milliseconds; past this the follower is stalled and the request is refused (503).
CATCH_UP_S = 5.0


def key(seq: int, slot: int) -> int:
    """The index key of one device point."""
    return seq * SLOTS + slot


def sheet_slot(block: int, place: int) -> int:
    """The slot of place `place` (0-based, in the sheet's order) of the sheet holding block
    `block` (0-9) of its device's sheet slots."""
    return SHEET_SLOT + block * sheet_model.MAX_PLACES + place


def new_index(cfg: settings.Settings) -> geo_index.PointIndex:
    """An empty point index as configured: its grid, and accuracies capped at
    ``orders.accuracy_cap_m`` (a location matches an area within its accuracy of it)."""
    return geo_index.PointIndex(cfg.geo.cell_deg, accuracy_cap_m=cfg.orders.accuracy_cap_m)


@dataclass(frozen=True, slots=True)
class Match:
    """Devices an area reaches, as device sequence numbers (each device once, however many of
    its points the area holds), and the index keys that reached them."""

    seqs: np.ndarray  # int64, unique, sorted
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # int64, any order

    def sheet_seqs(self) -> np.ndarray:
        """The devices (of `seqs`) reached through a place of one of their live sheets, sorted,
        each once: the ones whose sheets speak to this area. Computed on each call, in
        microseconds for thousands of keys; a device reached only by its location or watched
        places is not in it."""
        return _unique_sorted(self.keys[self.keys % SLOTS >= SHEET_SLOT] // SLOTS)


@dataclass(slots=True)
class Points:
    """Every device's points (geometry index) and watched municipalities (code -> keys)."""

    index: geo_index.PointIndex
    table: municipalities.Table
    watchers: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    watched_code: dict[int, str] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    catch_up_s: float = CATCH_UP_S
    # Catch-up requests: waiting for the follower to send a marker (asked), and sent with the
    # marker's token (barriers). The follower's loop wakes on `wake`.
    asked: list[asyncio.Future[None]] = field(default_factory=list)
    barriers: dict[str, list[asyncio.Future[None]]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def set_point(self, k: int, lon: float | None, lat: float | None,
                  area_code: str | None, accuracy_m: float | None = None) -> None:
        """Insert, move or (with all None) remove one device point."""
        old_code = self.watched_code.pop(k, None)
        if old_code is not None:
            self.watchers[old_code].discard(k)
        if lon is not None and lat is not None:
            self.index.upsert(k, lon, lat, accuracy_m or 0.0)
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
        return matched(np.concatenate(keys))

    def by_area(self, parts: Mapping[str, Any]) -> dict[str, int]:
        """Reached devices per municipality, from the area cut along municipal borders
        (:meth:`geo.municipalities.Table.split`); a device may count in several."""
        out: dict[str, int] = {}
        for code, part in parts.items():
            keys = [self.index.match(part) if not part.is_empty else np.empty(0, np.int64)]
            members = self.watchers.get(code, set())
            keys.append(np.fromiter(members, dtype=np.int64, count=len(members)))
            out[code] = len(_unique_sorted(np.concatenate(keys) // SLOTS))
        return out


def matched(keys: np.ndarray) -> Match:
    """The match of these index keys: their devices, each once."""
    return Match(seqs=_unique_sorted(keys // SLOTS), keys=keys)


def _unique_sorted(values: np.ndarray) -> np.ndarray:
    """The values sorted, each once (device sequence numbers of index keys)."""
    seqs = np.sort(values)
    if len(seqs) > 1:  # drop repeats (np.unique's hashing took 180 ms for 550,000 keys)
        seqs = seqs[np.concatenate(([True], seqs[1:] != seqs[:-1]))]
    return seqs


async def catch_up(points: Points) -> None:
    """Wait until every point change committed before now is in the index.

    The follower sends a marker on its own connection; NOTIFYs arrive in commit order, so once
    the marker comes back every earlier change has been applied: an order never misses a
    location saved before it was issued. No pool connection is used, so callers may hold one
    (even inside a transaction). Raises NotReady while the index loads and LocationsBehind when
    the follower does not confirm within `points.catch_up_s`."""
    try:
        async with asyncio.timeout(points.catch_up_s):
            # Matching against a half-loaded index would silently leave residents out.
            await points.ready.wait()
    except TimeoutError as exc:
        raise errors.NotReady("the location index is still loading; retry in a few "
                              "seconds") from exc
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    points.asked.append(fut)
    points.wake.set()
    try:
        async with asyncio.timeout(points.catch_up_s):
            await fut
    except TimeoutError as exc:
        with contextlib.suppress(ValueError):  # a stalled follower must not pile them up
            points.asked.remove(fut)
        log.warning("points_catch_up_timeout", waited_s=points.catch_up_s)
        raise errors.LocationsBehind() from exc


# One row of a binary COPY of (bigint, float8, float8, float4): field count, then length +
# value each.
_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("k", ">i8"), ("l2", ">i4"), ("lon", ">f8"),
                 ("l3", ">i4"), ("lat", ">f8"), ("l4", ">i4"), ("acc", ">f4")])
_COPY_HEADER = 19  # signature (11), flags (4), header extension length (4, zero)


def parse_binary_copy(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keys, longitudes, latitudes and accuracies from a binary COPY of (key, lon, lat,
    accuracy_m) rows."""
    count = (len(data) - _COPY_HEADER - 2) // _ROW.itemsize
    if data[:11] != b"PGCOPY\n\xff\r\n\x00" or count < 0 or (
            _COPY_HEADER + count * _ROW.itemsize + 2 != len(data)):
        raise ValueError("unexpected binary COPY layout")
    rows = np.frombuffer(data, dtype=_ROW, count=count, offset=_COPY_HEADER)
    if count and not ((rows["n"] == 4).all() and (rows["l1"] == 8).all()
                      and (rows["l4"] == 4).all()):
        raise ValueError("unexpected binary COPY row layout")
    return (rows["k"].astype(np.int64), rows["lon"].astype(np.float64),
            rows["lat"].astype(np.float64), rows["acc"].astype(np.float32))


async def load(conn: asyncpg.Connection, points: Points) -> None:
    """(Re)load every point from the database into the index, in one consistent snapshot.

    Points travel as a binary COPY read straight into numpy arrays: a million points load in
    a fraction of a second, where building a Python row object per point took seconds."""
    buffer = io.BytesIO()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.copy_from_query(
            f"SELECT device_seq * {SLOTS} + slot, lon, lat, coalesce(accuracy_m, 0)::real"
            " FROM device_points WHERE lon IS NOT NULL", output=buffer, format="binary")
        watched = await conn.fetch(
            "SELECT device_seq * $1 + slot AS k, area_code FROM device_points"
            " WHERE area_code IS NOT NULL", SLOTS)
    keys, lon, lat, accuracy = parse_binary_copy(buffer.getvalue())
    points.index.build(keys, lon, lat, accuracy)
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
        "SELECT c.seq, c.slot, p.lon, p.lat, p.area_code, p.accuracy_m"
        " FROM unnest($1::bigint[], $2::smallint[]) AS c(seq, slot)"
        " LEFT JOIN device_points p ON p.device_seq = c.seq AND p.slot = c.slot",
        seqs, slots,
    )
    for r in rows:
        points.set_point(key(r["seq"], r["slot"]), r["lon"], r["lat"], r["area_code"],
                         r["accuracy_m"])


async def follow(url: str, points: Points, stop: asyncio.Event) -> None:
    """Load the index, then apply every change notified until `stop` is set."""
    while not stop.is_set():
        try:
            conn = await db.connect_one(url)
        except Exception as exc:  # database down: keep the old index and try again
            log.warning("points_connect_failed", error=logs.describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            continue
        try:
            await _follow_on(conn, points, stop)
        except Exception as exc:
            # Whatever broke (a killed session can also leave asyncpg in an internal state
            # error), the follower must come back: without it every order is refused.
            log.warning("points_listener_lost", error=logs.describe(exc))
            with contextlib.suppress(TimeoutError):  # e.g. schema not migrated yet: no spin
                await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()


async def _follow_on(conn: asyncpg.Connection, points: Points, stop: asyncio.Event) -> None:
    pending: set[tuple[int, int]] = set()
    syncs: list[str] = []
    wake = points.wake

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
        await _send_marker(conn, points)  # catch-ups asked while there was no connection
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
            elif not done and not points.asked:
                await conn.execute("SELECT 1", timeout=points.catch_up_s)  # a dead connection
            for token in done:
                for fut in points.barriers.pop(token, ()):
                    if not fut.done():
                        fut.set_result(None)
            await _send_marker(conn, points)
    finally:
        stopper.cancel()
        # Markers sent on this connection may never come back: ask again on the next one.
        for futs in points.barriers.values():
            points.asked.extend(futs)
        points.barriers.clear()


async def _send_marker(conn: asyncpg.Connection, points: Points) -> None:
    """One marker for every catch-up asked so far: when it comes back, they are all served."""
    asked = [f for f in points.asked if not f.done()]
    points.asked.clear()
    if not asked:
        return
    token = uuid.uuid4().hex
    points.barriers[token] = asked
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "sync:" + token,
                       timeout=points.catch_up_s)
