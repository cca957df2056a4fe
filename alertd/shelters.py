"""Shelters: import, status changes, nearest-first and staff search (SQL)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from alertd import db, errors
from feeds.shelters import ShelterRow

STATUSES = ("not_open", "open", "full", "closed")
CROWDING = ("low", "medium", "high", "full")
_OPEN = ("open", "full")

def distance_sql(lat: str, lon: str, row: str = "") -> str:
    """SQL: the great-circle distance in metres from (lat, lon) to a shelters row (haversine,
    mean radius); `row` qualifies the row's columns."""
    return (f"2 * 6371008.8 * asin(sqrt(power(sin(radians({row}lat - {lat}) / 2), 2)"
            f" + cos(radians({lat})) * cos(radians({row}lat))"
            f" * power(sin(radians({row}lon - {lon}) / 2), 2)))")


_DISTANCE = distance_sql("$1", "$2")  # from ($1 lat, $2 lon)


@dataclass(frozen=True, slots=True)
class StoredShelter:
    """A shelter as stored: its imported facts and its current status (feeds.ShelterRow is
    one row of an imported list)."""

    id: str
    name: str
    address: str
    lat: float
    lon: float
    hazards: tuple[str, ...]
    capacity: int | None
    status: str
    crowding: str | None
    evacuees: int | None
    status_at: datetime | None
    openings: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredShelter:
        """Build from a shelters row (a record or a dict)."""
        return cls(id=row["id"], name=row["name"], address=row["address"], lat=row["lat"],
                   lon=row["lon"], hazards=tuple(row["hazards"]), capacity=row["capacity"],
                   status=row["status"], crowding=row["crowding"], evacuees=row["evacuees"],
                   status_at=row["status_at"], openings=row["openings"])

    def as_json(self) -> dict[str, Any]:
        """The shelter as the APIs show it."""
        return {"id": self.id, "name": self.name, "address": self.address, "lat": self.lat,
                "lon": self.lon, "hazards": list(self.hazards), "capacity": self.capacity,
                "status": self.status, "crowding": self.crowding, "evacuees": self.evacuees,
                "status_at": self.status_at.isoformat() if self.status_at else None}


def json_sql(s: str) -> str:
    """SQL: shelters row `s` as JSON, the same object as StoredShelter.as_json (sync builds
    its pages from it)."""
    return (f"json_build_object('id', {s}.id, 'name', {s}.name, 'address', {s}.address,"
            f" 'lat', {s}.lat, 'lon', {s}.lon, 'hazards', {s}.hazards,"
            f" 'capacity', {s}.capacity, 'status', {s}.status, 'crowding', {s}.crowding,"
            f" 'evacuees', {s}.evacuees, 'status_at', {db.iso_sql(s + '.status_at')})")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status update as applied: the shelter after it, and whether it was an opening
    (`before`: the shelter as it was)."""

    shelter: StoredShelter
    previous: str
    opened: bool
    before: StoredShelter


async def upsert(conn: asyncpg.Connection | asyncpg.Pool, rows: Iterable[ShelterRow]
                 ) -> tuple[int, int]:
    """Insert or update imported shelters by id (status untouched); (inserted, updated)."""
    records = [(s.id, s.name, s.address, s.lat, s.lon, sorted(s.hazards), s.capacity,
                s.municipality_code, s.kind, s.source_format) for s in rows]
    if not records:
        return 0, 0
    result = await conn.fetch(
        "INSERT INTO shelters (id, name, address, lat, lon, hazards, capacity,"
        " municipality_code, kind, source_format)"
        " SELECT i, n, a, la, lo, h::text[], c, m, k, f"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],"
        "   $6::text[], $7::int[], $8::text[], $9::text[], $10::text[])"
        "   AS u(i, n, a, la, lo, h, c, m, k, f)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address,"
        " lat = EXCLUDED.lat, lon = EXCLUDED.lon, hazards = EXCLUDED.hazards,"
        " capacity = EXCLUDED.capacity, municipality_code = EXCLUDED.municipality_code,"
        " kind = EXCLUDED.kind, source_format = EXCLUDED.source_format, updated_at = now()"
        " RETURNING (xmax = 0) AS inserted",
        *_columns(records),
    )
    inserted = sum(1 for r in result if r["inserted"])
    return inserted, len(result) - inserted


def _columns(records: list[tuple[Any, ...]]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(10)]
    for rec in records:
        for i, value in enumerate(rec):
            # unnest() of a text[][] would flatten: hazards travel as one "{a,b}" literal.
            cols[i].append("{" + ",".join(value) + "}" if i == 5 else value)
    return cols


async def get(conn: asyncpg.Connection | asyncpg.Pool, shelter_id: str) -> StoredShelter:
    """The shelter with this id."""
    row = await conn.fetchrow("SELECT * FROM shelters WHERE id = $1", shelter_id)
    if row is None:
        raise errors.NotFound(f"no shelter {shelter_id!r}")
    return StoredShelter.from_row(row)


async def set_status(conn: asyncpg.Connection, shelter_id: str, status: str,
                     crowding: str | None, evacuees: int | None, source: str,
                     at: datetime | None) -> StatusChange:
    """Apply a status report; an older report than the stored one changes nothing."""
    if status not in STATUSES:
        raise errors.InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    if evacuees is not None and not 0 <= evacuees <= 1_000_000:
        raise errors.InvalidInput("evacuees must be between 0 and 1,000,000")
    if "\x00" in shelter_id:
        raise errors.NotFound("no such shelter")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM shelters WHERE id = $1 FOR UPDATE", shelter_id)
        if row is None:
            raise errors.NotFound(f"no shelter {shelter_id!r}")
        before = StoredShelter.from_row(row)
        if at is not None and before.status_at is not None and at < before.status_at:
            return StatusChange(before, before.status, opened=False, before=before)
        if at is None and not source.startswith("staff:") and str(
                row["status_source"] or "").startswith("staff:"):
            # An undated feed row cannot be shown newer than what staff set: staff win.
            return StatusChange(before, before.status, opened=False, before=before)
        opened = status in _OPEN and before.status not in _OPEN
        if status in ("not_open", "closed"):
            crowding, evacuees = None, None
        elif status == "full":
            crowding = "full"
        row = await conn.fetchrow(
            "UPDATE shelters SET status = $2, crowding = $3, evacuees = $4, status_source = $5,"
            " status_at = coalesce($6, now()), openings = openings + $7::int, updated_at = now()"
            " WHERE id = $1 RETURNING *",
            shelter_id, status, crowding, evacuees, source, at, 1 if opened else 0,
        )
    return StatusChange(StoredShelter.from_row(row), before.status, opened, before)


async def nearest(conn: asyncpg.Connection | asyncpg.Pool, lat: float, lon: float,
                  hazard: str | None, open_only: bool,
                  limit: int) -> list[tuple[StoredShelter, float]]:
    """Shelters nearest first by great-circle distance, optionally by hazard and open state
    (open_only: open or full, as the shelter answers its door; the phone shows which)."""
    rows = await conn.fetch(
        f"SELECT *, {_DISTANCE} AS distance_m FROM shelters"
        " WHERE ($3::text IS NULL OR $3 = ANY(hazards))"
        " AND (NOT $4 OR status IN ('open', 'full'))"
        " ORDER BY distance_m, id LIMIT $5",
        lat, lon, hazard, open_only, limit,
    )
    return [(StoredShelter.from_row(r), float(r["distance_m"])) for r in rows]


async def names_and_hazards(conn: asyncpg.Connection | asyncpg.Pool, shelter_ids: Iterable[str]
                            ) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The name and hazard flags of each of these shelters that exists, in one query."""
    ids = sorted({s for s in shelter_ids if "\x00" not in s})
    if not ids:
        return {}
    rows = await conn.fetch("SELECT id, name, hazards FROM shelters WHERE id = ANY($1::text[])",
                            ids)
    return {row["id"]: (row["name"], tuple(row["hazards"])) for row in rows}


async def for_plans(conn: asyncpg.Connection | asyncpg.Pool, shelter_ids: Iterable[str]
                    ) -> list[StoredShelter]:
    """The shelters households' plans speak of, in one query: these (the ones their sheets
    name) and every open one (for the nearest open shelter)."""
    ids = sorted({s for s in shelter_ids if "\x00" not in s})
    rows = await conn.fetch("SELECT * FROM shelters WHERE status = 'open' OR id = ANY($1::text[])",
                            ids)
    return [StoredShelter.from_row(r) for r in rows]


SORTS = ("name", "status_at", "evacuees")
_ORDER_BY = {
    "name": "municipality_code NULLS LAST, name, id",
    "status_at": "status_at DESC NULLS LAST, id",
    "evacuees": "evacuees DESC NULLS LAST, name, id",
}


@dataclass(frozen=True, slots=True)
class Search:
    """A staff search of the shelters: words, filters and one page of the answer.

    `text` is matched, NFKC-folded and without regard to case, inside the name, the address
    or the id (全角 and 半角 alike); `statuses` empty means any status."""

    text: str = ""
    statuses: tuple[str, ...] = ()
    hazard: str | None = None
    municipality: str | None = None  # a 6-digit local-government code
    sort: str = "name"
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Listed:
    """A shelter as the staff list shows it: the stored shelter and where its state came
    from."""

    shelter: StoredShelter
    municipality_code: str | None
    status_by: str | None  # "staff", a feed's name, or None (never reported)
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Listed:
        """Build from a shelters row."""
        source = row["status_source"]
        by = "staff" if source and source.startswith("staff:") else source
        return cls(StoredShelter.from_row(row), row["municipality_code"], by, row["updated_at"])

    def as_json(self) -> dict[str, Any]:
        """The shelter as the staff list shows it."""
        return {**self.shelter.as_json(), "municipality_code": self.municipality_code,
                "status_by": self.status_by, "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Totals:
    """The counts over every shelter the search's words and filters match, whatever their
    status (so that each status shows how many it would list)."""

    by_status: dict[str, int]
    evacuees: int  # reported in open and full shelters
    capacity: int  # of the open and full shelters that state one

    def as_json(self) -> dict[str, Any]:
        """The totals as the staff API shows them."""
        return {"shelters": sum(self.by_status.values()), "by_status": self.by_status,
                "evacuees": self.evacuees, "open_capacity": self.capacity}


@dataclass(frozen=True, slots=True)
class Found:
    """One page of a search, how many match in all, and the totals."""

    shelters: list[Listed]
    matched: int
    totals: Totals


def like_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# $1 the pattern (NULL: any), $2 hazard, $3 municipality code; NFKC folds 全角/半角 and the
# pattern is folded the same way before it is sent.
_MATCHES = ("($1::text IS NULL OR normalize(name, NFKC) ILIKE $1"
            " OR normalize(address, NFKC) ILIKE $1 OR id ILIKE $1)"
            " AND ($2::text IS NULL OR $2 = ANY(hazards))"
            " AND ($3::text IS NULL OR municipality_code = $3)")


async def search(conn: asyncpg.Connection | asyncpg.Pool, want: Search) -> Found:
    """Shelters matching a staff search, one page of them, with the totals."""
    if want.sort not in _ORDER_BY:
        raise errors.InvalidInput(f"sort must be one of {', '.join(SORTS)}")
    words = unicodedata.normalize("NFKC", want.text).strip()
    args = (like_pattern(words) if words else None, want.hazard, want.municipality)
    rows = await conn.fetch(
        f"SELECT * FROM shelters WHERE {_MATCHES}"
        " AND (cardinality($4::text[]) = 0 OR status = ANY($4::text[]))"
        f" ORDER BY {_ORDER_BY[want.sort]} LIMIT $5 OFFSET $6",
        *args, list(want.statuses), want.limit, want.offset)
    sums = await conn.fetch(
        "SELECT status, count(*) AS n, coalesce(sum(evacuees), 0) AS evacuees,"
        " coalesce(sum(capacity), 0) AS capacity"
        f" FROM shelters WHERE {_MATCHES} GROUP BY status", *args)
    by_status = dict.fromkeys(STATUSES, 0) | {r["status"]: r["n"] for r in sums}
    in_use = [r for r in sums if r["status"] in _OPEN]
    totals = Totals(by_status, sum(r["evacuees"] for r in in_use),
                    sum(r["capacity"] for r in in_use))
    matched = sum(n for s, n in by_status.items() if not want.statuses or s in want.statuses)
    return Found([Listed.from_row(r) for r in rows], matched, totals)
