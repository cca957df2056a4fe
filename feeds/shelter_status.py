"""Shelter status feed (CSV or JSON): which shelters are open, how crowded, how many evacuees.

A document that cannot be read at all (too large, undecodable, invalid JSON, a CSV header
without ID/status columns) raises a `FeedError` so the poller can quarantine it with the
reason. Inside a readable document each bad row or item becomes a `RowError` and the rest are
kept: for CSV its line is the 1-based line in the file (header = line 1), for JSON the 1-based
position of the item in the list.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, Literal

from feeds import errors, shelters
from feeds.shelters import RowError

Status = Literal["not_open", "open", "full", "closed"]
Crowding = Literal["low", "medium", "high", "full"]

MAX_BYTES: Final = 10_000_000
# Japan has no daylight saving time: a fixed offset is exact.
JST: Final = timezone(timedelta(hours=9), "JST")
FIELDS: Final = ("shelter_id", "status", "crowding", "evacuees", "updated_at")

_STATUS: Final[Mapping[str, Status]] = {
    "not_open": "not_open", "notopen": "not_open", "未開設": "not_open",
    "open": "open", "開設": "open", "開設中": "open",
    "full": "full", "満員": "full", "満": "full",
    "closed": "closed", "閉鎖": "closed",
}
_CROWDING: Final[Mapping[str, Crowding]] = {
    "low": "low", "空いています": "low",
    "medium": "medium", "やや混雑": "medium",
    "high": "high", "混雑": "high",
    "full": "full", "満": "full", "満員": "full",
}
_CSV_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "shelter_id": ("shelter_id", "ID", "共通ID"),
    "status": ("status", "開設状況"),
    "crowding": ("crowding", "混雑状況"),
    "evacuees": ("evacuees", "避難者数"),
    "updated_at": ("updated_at", "更新日時"),
}
_LOCAL_FORMATS: Final = ("%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class ShelterStatus:
    """The reported state of one shelter."""

    shelter_id: str
    status: Status
    crowding: Crowding | None
    evacuees: int | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class StatusBatch:
    """The statuses read from one document, and the reasons for the rows that were not."""

    items: tuple[ShelterStatus, ...]
    errors: tuple[RowError, ...]


class _BadRow(ValueError):
    """A row-level problem; its message is the row error's reason."""


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _BadRow(f"{what} must be a string, not {type(value).__name__}")
    return str(value).strip()


def status(value: object) -> Status:
    """A status value (English or Japanese) as one of not_open/open/full/closed."""
    text = _text(value, "status")
    found = _STATUS.get(shelters.normalise(text))
    if found is None:
        raise _BadRow(f"status {shelters.quote(text)} is not one of not_open/open/full/closed "
                      "(未開設/開設/満員/閉鎖)" if text else "status is empty")
    return found


def crowding(value: object) -> Crowding | None:
    """A crowding value (English or Japanese) as low/medium/high/full, None when blank."""
    text = _text(value, "crowding")
    if not text:
        return None
    found = _CROWDING.get(shelters.normalise(text))
    if found is None:
        raise _BadRow(f"crowding {shelters.quote(text)} is not one of low/medium/high/full "
                      "(空いています/やや混雑/混雑/満)")
    return found


def evacuees(value: object) -> int | None:
    """An evacuee count as a non-negative int, None when blank."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _BadRow(f"evacuees {value} is negative")
        return value
    try:
        return shelters.head_count(_text(value, "evacuees"), "evacuees")
    except ValueError as exc:
        raise _BadRow(str(exc)) from exc


def timestamp(value: object) -> datetime | None:
    """An ISO 8601 or ``YYYY/MM/DD HH:MM`` time, aware (Asia/Tokyo when it has no offset)."""
    text = unicodedata.normalize("NFKC", _text(value, "updated_at")).strip()
    if not text:
        return None
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _LOCAL_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise _BadRow(f"updated_at {shelters.quote(text)} is neither ISO 8601 nor YYYY/MM/DD HH:MM")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=JST)


def item(fields: Mapping[str, object]) -> ShelterStatus:
    """One row or JSON object (keys as in FIELDS) as a status, or ValueError with the reason."""
    shelter_id = _text(fields.get("shelter_id"), "shelter_id")
    if not shelter_id:
        raise _BadRow("shelter_id is empty")
    return ShelterStatus(
        shelter_id=shelter_id,
        status=status(fields.get("status")),
        crowding=crowding(fields.get("crowding")),
        evacuees=evacuees(fields.get("evacuees")),
        updated_at=timestamp(fields.get("updated_at")),
    )


def _collect(rows: Sequence[tuple[int, Mapping[str, object] | str]]) -> StatusBatch:
    """Rows (line, fields or a reason already found) into a batch; later duplicates are errors."""
    items: list[ShelterStatus] = []
    problems: list[RowError] = []
    first_seen: dict[str, int] = {}
    for line, fields in rows:
        if isinstance(fields, str):
            problems.append(RowError(line, fields))
            continue
        try:
            found = item(fields)
        except _BadRow as exc:
            problems.append(RowError(line, str(exc)))
            continue
        if found.shelter_id in first_seen:
            problems.append(RowError(line, f"duplicate shelter_id {found.shelter_id[:40]} "
                                           f"(first at {first_seen[found.shelter_id]})"))
            continue
        first_seen[found.shelter_id] = line
        items.append(found)
    return StatusBatch(tuple(items), tuple(problems))


def _csv_rows(data: bytes) -> list[tuple[int, Mapping[str, object] | str]]:
    reader = csv.reader(io.StringIO(shelters.decode(data), newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise errors.InvalidMessage(f"status CSV header is not readable CSV ({exc})") from None
    index = shelters.column_index(header or [])
    columns = {
        field: next((index[n] for n in map(shelters.normalise, names) if n in index), None)
        for field, names in _CSV_COLUMNS.items()
    }
    if columns["shelter_id"] is None or columns["status"] is None:
        raise errors.InvalidMessage(
            "status CSV header needs an ID column (shelter_id/ID/共通ID) and a status column "
            "(status/開設状況); optional: crowding/混雑状況, evacuees/避難者数, "
            "updated_at/更新日時")
    rows: list[tuple[int, Mapping[str, object] | str]] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            rows.append((line, f"CSV syntax error ({exc}); the rest was not read"))
            break
        if cells is None:
            break
        if any(cell.strip() for cell in cells):
            rows.append((line, {
                field: cells[position]
                for field, position in columns.items()
                if position is not None and position < len(cells)
            }))
    return rows


def _json_rows(data: bytes) -> list[tuple[int, Mapping[str, object] | str]]:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise errors.InvalidMessage(f"status JSON is not valid UTF-8 JSON: {exc}") from None
    if isinstance(document, dict) and "shelters" in document:
        document = document["shelters"]
    if not isinstance(document, list):
        raise errors.InvalidMessage(
            'status JSON must be a list of objects or {"shelters": [...]}')
    rows: list[tuple[int, Mapping[str, object] | str]] = []
    for position, entry in enumerate(document, start=1):
        if not isinstance(entry, dict):
            rows.append((position, f"item {position} is not an object"))
        else:
            fields = dict(entry)
            if "shelter_id" not in fields and "id" in fields:
                fields["shelter_id"] = fields["id"]
            rows.append((position, fields))
    return rows


def is_json(data: bytes, content_type: str | None) -> bool:
    """Whether the document is JSON: by its media type, else by its first character."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return True
    if media in ("text/csv", "application/csv", "text/comma-separated-values"):
        return False
    start = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    return start[:1] in (b"[", b"{")


def parse(data: bytes, content_type: str | None, *, max_bytes: int = MAX_BYTES) -> StatusBatch:
    """Read a shelter status document (CSV or JSON) into statuses and per-row errors."""
    if len(data) > max_bytes:
        raise errors.TooLarge(f"status document is {len(data)} bytes; the limit is {max_bytes}")
    rows = _json_rows(data) if is_json(data, content_type) else _csv_rows(data)
    return _collect(rows)
