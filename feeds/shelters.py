"""Shelter list CSV import: the GSI designated-site CSVs and the Digital Agency standard columns.

The format is told by the header row alone, never by the file name, and columns are found by
name (NFKC-normalised, so full-width ``ＩＤ`` or a ``災害種別＿`` prefix still match), so extra
columns and a different column order are tolerated. The import keeps going past bad rows: each
bad row becomes a `RowError` with the 1-based line number in the file where its record starts
(the header is line 1; a quoted field spanning lines moves the next record's line down
accordingly). Problems with the file as a whole (size, encoding, header) are reported as a single
error and no shelters; `parse` never raises.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from feeds import errors

ShelterKind = Literal["evacuation_site", "shelter"]

HAZARDS: Final = (
    "flood", "landslide", "storm_surge", "earthquake",
    "tsunami", "fire", "inland_flood", "volcano",
)
# The national data's hazard column names, in the order of HAZARDS.
HAZARD_COLUMNS: Final = (
    "洪水", "崖崩れ、土石流及び地滑り", "高潮", "地震",
    "津波", "大規模な火事", "内水氾濫", "火山現象",
)
FORMAT_GSI_SITE: Final = "gsi_evacuation_site"
FORMAT_GSI_SHELTER: Final = "gsi_shelter"
FORMAT_STANDARD: Final = "digital_agency"
FORMAT_UNKNOWN: Final = "unknown"

MAX_BYTES: Final = 50_000_000
FILE_LINE: Final = 0
"""The `RowError.line` of a problem with the file as a whole (size, encoding)."""

# Japan's rough bounding box, generous enough for Okinotorishima and Minamitorishima.
LAT_RANGE: Final = (20.0, 46.0)
LON_RANGE: Final = (122.0, 154.0)

_YES: Final = frozenset({
    "1", "○", "◯", "〇", "●", "◎", "true", "t", "yes", "y", "有", "あり", "可",
})
_NO: Final = frozenset({
    "", "0", "×", "✕", "x", "false", "f", "no", "n", "無", "なし", "-", "―", "不可",
})
_EXPECTED: Final = (
    "the GSI 指定緊急避難場所 columns (NO,共通ID,施設・場所名,住所,洪水,…,火山現象,"
    "指定避難所との住所同一,緯度,経度,備考), the GSI 指定避難所 columns (NO,共通ID,施設・場所名,"
    "住所,…,受入対象者,緯度,経度,備考) or the Digital Agency standard columns "
    "(全国地方公共団体コード,ID,名称,…,住所,方書,緯度,経度,…)"
)
_CHECK_WEIGHTS: Final = (6, 5, 4, 3, 2)


@dataclass(frozen=True, slots=True)
class RowError:
    """A row (or, at `FILE_LINE`, the file) that could not be imported, and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ShelterRow:
    """One designated evacuation site or shelter, as a row of an imported list (the stored
    shelter, with its status, is alertd.shelters.StoredShelter)."""

    id: str
    name: str
    address: str
    lat: float
    lon: float
    hazards: frozenset[str]
    capacity: int | None
    municipality_code: str | None
    kind: ShelterKind
    source_format: str


@dataclass(frozen=True, slots=True)
class ShelterImport:
    """The result of importing one file: the good rows and the reasons for the bad ones."""

    format: str
    shelters: tuple[ShelterRow, ...]
    errors: tuple[RowError, ...]


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field lives in a recognised header."""

    format: str
    kind: ShelterKind
    id: int
    name: int
    lat: int
    lon: int
    address: int | None
    address_extra: int | None
    capacity: int | None
    municipality: int | None
    hazards: tuple[tuple[str, int], ...]


class _BadRow(ValueError):
    """A row-level problem; its message is the row error's reason."""


def normalise(text: str) -> str:
    """A cell compared by meaning: NFKC, without BOM, surrounding or inner spaces, case-folded."""
    return unicodedata.normalize("NFKC", text).replace("\ufeff", "").replace(" ", "").casefold()


def quote(text: str, limit: int = 40) -> str:
    """A value quoted for an error reason, shortened past `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def decode(data: bytes) -> str:
    """The text of a CSV file in UTF-8 (with or without BOM) or Shift_JIS (cp932)."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise errors.InvalidMessage("the file is neither UTF-8 nor Shift_JIS (cp932) text")


def column_index(header: Sequence[str]) -> dict[str, int]:
    """Normalised column name → position of its first occurrence."""
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(normalise(name), position)
    return index


def _find(index: Mapping[str, int], *names: str) -> int | None:
    for name in names:
        position = index.get(normalise(name))
        if position is not None:
            return position
    return None


def _layout(header: Sequence[str]) -> _Layout | str:
    """The layout of a recognised header, or the reason it is not recognised."""
    index = column_index(header)
    hazards = tuple(
        (hazard, position)
        for hazard, column in zip(HAZARDS, HAZARD_COLUMNS, strict=True)
        if (position := _find(index, "災害種別_" + column, column)) is not None
    )
    id_col, name_col = _find(index, "ID"), _find(index, "名称")
    kind: ShelterKind
    if id_col is not None and name_col is not None:
        fmt, kind = FORMAT_STANDARD, "evacuation_site" if hazards else "shelter"
    else:
        id_col, name_col = _find(index, "共通ID"), _find(index, "施設・場所名")
        if id_col is None or name_col is None:
            shown = (",".join(header[:6]) + (",…" if len(header) > 6 else ""))[:200]
            return f"unrecognised header ({shown}): expected {_EXPECTED}"
        if _find(index, "受入対象者") is not None:
            fmt, kind = FORMAT_GSI_SHELTER, "shelter"
        elif hazards:
            fmt, kind = FORMAT_GSI_SITE, "evacuation_site"
        else:
            return ("GSI header has neither hazard columns (洪水, 地震, …) nor 受入対象者: "
                    f"expected {_EXPECTED}")
    lat_col, lon_col = _find(index, "緯度"), _find(index, "経度")
    if lat_col is None or lon_col is None:
        return f"header has no 緯度/経度 (latitude/longitude) columns: expected {_EXPECTED}"
    return _Layout(
        format=fmt, kind=kind, id=id_col, name=name_col, lat=lat_col, lon=lon_col,
        address=_find(index, "住所"), address_extra=_find(index, "方書"),
        capacity=_find(index, "想定収容人数", "収容人数"),
        municipality=_find(index, "全国地方公共団体コード"), hazards=hazards,
    )


# Flags and municipality codes repeat on nearly every row: caching them halves the import time.
@functools.lru_cache(maxsize=256)
def flag(text: str) -> bool | None:
    """A hazard flag cell as yes/no, or None when the value is not a recognised flag."""
    value = normalise(text)
    if value in _YES:
        return True
    if value in _NO:
        return False
    return None


def coordinate(text: str, what: str, bounds: tuple[float, float]) -> float:
    """A latitude or longitude cell as a float inside `bounds`, else a row error."""
    value = normalise(text)
    if not value:
        raise _BadRow(f"{what} is empty")
    try:
        number = float(value)
    except ValueError:
        raise _BadRow(f"{what} {quote(text.strip())} is not a number") from None
    low, high = bounds
    if not math.isfinite(number) or not low <= number <= high:
        raise _BadRow(f"{what} {text.strip()[:40]} is outside Japan ({low:g}–{high:g})")
    return number


def head_count(text: str, what: str) -> int | None:
    """A count of people (``1,200`` or ``1200人`` tolerated) as a non-negative int, None if
    blank; ValueError naming `what` otherwise."""
    value = normalise(text).replace(",", "").removesuffix("人")
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        raise _BadRow(f"{what} {quote(text.strip())} is not a non-negative whole number")
    if len(value) > 9:
        raise _BadRow(f"{what} {value[:40]} is implausibly large")
    return int(value)


def capacity(text: str) -> int | None:
    """A capacity cell as a non-negative int, None if blank."""
    return head_count(text, "capacity")


def _check_digit(code5: str) -> str:
    total = sum(int(d) * w for d, w in zip(code5, _CHECK_WEIGHTS, strict=True))
    return str((11 - total % 11) % 10)


@functools.lru_cache(maxsize=1024)
def municipality_code(text: str) -> str | None:
    """A 全国地方公共団体コード as 6 digits with a verified check digit, None if blank.

    Five digits are the code without its check digit, unless they do not start with a
    prefecture (01–47): then a spreadsheet dropped the leading zero of a 6-digit code.
    """
    value = normalise(text)
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) in (5, 6)):
        raise _BadRow(f"municipality code {quote(text.strip())} is not 5 or 6 digits")
    if len(value) == 5:
        if 1 <= int(value[:2]) <= 47:
            return value + _check_digit(value)
        value = "0" + value
    if not 1 <= int(value[:2]) <= 47:
        raise _BadRow(f"municipality code {value} names no prefecture")
    if value[5] != _check_digit(value[:5]):
        raise _BadRow(f"municipality code {value} has a wrong check digit "
                      f"(expected {value[:5]}{_check_digit(value[:5])})")
    return value


def _cell(cells: Sequence[str], position: int | None) -> str:
    if position is None or position >= len(cells):
        return ""
    return cells[position]


def _shelter(layout: _Layout, cells: Sequence[str]) -> ShelterRow:
    """One data row as a shelter, or `_BadRow` with the reason."""
    shelter_id = _cell(cells, layout.id).strip()
    name = _cell(cells, layout.name).strip()
    if not shelter_id:
        raise _BadRow("ID is empty")
    if not name:
        raise _BadRow(f"name is empty (ID {quote(shelter_id)})")
    lat = coordinate(_cell(cells, layout.lat), "latitude", LAT_RANGE)
    lon = coordinate(_cell(cells, layout.lon), "longitude", LON_RANGE)
    address = " ".join(
        part for part in (_cell(cells, layout.address).strip(),
                          _cell(cells, layout.address_extra).strip()) if part
    )
    hazards: set[str] = set()
    for hazard, position in layout.hazards:
        value = flag(_cell(cells, position))
        if value is None:
            raise _BadRow(f"{hazard} flag {quote(_cell(cells, position).strip())} is not a yes/no "
                          "value (1/○/● or blank/0)")
        if value:
            hazards.add(hazard)
    return ShelterRow(
        id=shelter_id, name=name, address=address,
        lat=lat, lon=lon, hazards=frozenset(hazards),
        capacity=capacity(_cell(cells, layout.capacity)),
        municipality_code=municipality_code(_cell(cells, layout.municipality)),
        kind=layout.kind, source_format=layout.format,
    )


def _swapped(layout: _Layout, cells: Sequence[str]) -> bool:
    """Whether the row's latitude and longitude would be in range the other way round."""
    try:
        coordinate(_cell(cells, layout.lat), "", LON_RANGE)
        coordinate(_cell(cells, layout.lon), "", LAT_RANGE)
    except _BadRow:
        return False
    return True


def _failed(line: int, reason: str) -> ShelterImport:
    return ShelterImport(FORMAT_UNKNOWN, (), (RowError(line, reason),))


def parse(data: bytes, *, max_bytes: int = MAX_BYTES) -> ShelterImport:
    """Import a shelter list CSV: its format, the good rows, and one error per bad row."""
    if len(data) > max_bytes:
        return _failed(FILE_LINE, f"the file is {len(data)} bytes; the limit is {max_bytes}")
    try:
        text = decode(data)
    except errors.FeedError as exc:
        return _failed(FILE_LINE, exc.reason)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return _failed(1, f"the header row is not readable CSV ({exc})")
    if header is None or not any(cell.strip() for cell in header):
        return _failed(1, f"the file is empty: expected a header row with {_EXPECTED}")
    layout = _layout(header)
    if isinstance(layout, str):
        return _failed(1, layout)
    shelters: list[ShelterRow] = []
    problems: list[RowError] = []
    first_seen: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            problems.append(RowError(line, f"CSV syntax error ({exc}); the rest was not read"))
            break
        if cells is None:
            break
        if not any(cell.strip() for cell in cells):
            continue
        try:
            shelter = _shelter(layout, cells)
        except _BadRow as exc:
            reason = str(exc)
            if reason.startswith(("latitude", "longitude")) and _swapped(layout, cells):
                reason += "; latitude and longitude look swapped"
            problems.append(RowError(line, reason))
            continue
        if shelter.id in first_seen:
            problems.append(RowError(line, f"duplicate ID {shelter.id[:40]} (first on line "
                                           f"{first_seen[shelter.id]})"))
            continue
        first_seen[shelter.id] = line
        shelters.append(shelter)
    return ShelterImport(layout.format, tuple(shelters), tuple(problems))
