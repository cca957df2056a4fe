"""Tests for feeds.shelter_status: status feeds in CSV and JSON, and their per-row errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import errors, shelter_status
from feeds.shelter_status import ShelterStatus
from feeds.shelters import RowError

JST = timezone(timedelta(hours=9))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["shelter_id", "id", "status", "crowding", "evacuees", "updated_at",
                         "shelters", "x"]), inner, max_size=6),
    max_leaves=20,
)

CSV_EN = b"""shelter_id,status,crowding,evacuees,updated_at
072010-0001,open,low,12,2024-11-02T11:19:00+09:00
072010-0002,full,full,350,2024-11-02T02:20:00Z
072010-0003,not_open,,,
"""
CSV_JA = """共通ID,開設状況,混雑状況,避難者数,更新日時
0720100001,開設中,空いています,5,2024/11/02 11:19
0720100002,未開設,,,
0720100003,満員,満,"1,200",2024/11/02 11:19:30
0720100004,閉鎖,やや混雑,0,2024-11-02 12:00
"""


def test_csv_english_columns() -> None:
    """English columns and values become statuses with aware times."""
    batch = shelter_status.parse(CSV_EN, "text/csv")
    assert batch.errors == ()
    assert batch.items == (
        ShelterStatus("072010-0001", "open", "low", 12,
                      datetime(2024, 11, 2, 11, 19, tzinfo=JST)),
        ShelterStatus("072010-0002", "full", "full", 350,
                      datetime(2024, 11, 2, 2, 20, tzinfo=UTC)),
        ShelterStatus("072010-0003", "not_open", None, None, None),
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_csv_japanese_columns_and_values(encoding: str) -> None:
    """Japanese columns and values map to the English vocabulary, in UTF-8 or Shift_JIS."""
    batch = shelter_status.parse(CSV_JA.encode(encoding), "text/csv; charset=Shift_JIS")
    assert batch.errors == ()
    assert [(s.status, s.crowding, s.evacuees) for s in batch.items] == [
        ("open", "low", 5), ("not_open", None, None), ("full", "full", 1200),
        ("closed", "medium", 0)]
    assert batch.items[0].updated_at == datetime(2024, 11, 2, 11, 19, tzinfo=JST)
    assert batch.items[2].updated_at == datetime(2024, 11, 2, 11, 19, 30, tzinfo=JST)
    assert batch.items[3].updated_at == datetime(2024, 11, 2, 12, 0, tzinfo=JST)


def test_csv_row_errors_with_line_numbers() -> None:
    """Bad rows are reported at their file line and the good rows are kept."""
    data = "\n".join([
        "ID,status,crowding,evacuees,updated_at",
        "S1,open,high,3,",
        'S2,"開設\n中",,,',
        "S3,maybe,,,",
        "S4,open,packed,,",
        "S5,open,,-1,",
        "S6,open,,,tomorrow",
        "S1,closed,,,",
        ",open,,,",
        "S7,開設,混雑,,",
    ]).encode()
    batch = shelter_status.parse(data, None)
    assert [(s.shelter_id, s.status, s.crowding) for s in batch.items] == [
        ("S1", "open", "high"), ("S7", "open", "high")]
    statuses = "not_open/open/full/closed (未開設/開設/満員/閉鎖)"
    assert batch.errors == (
        RowError(3, f"status '開設\\n中' is not one of {statuses}"),
        RowError(5, f"status 'maybe' is not one of {statuses}"),
        RowError(6, "crowding 'packed' is not one of low/medium/high/full"
                    " (空いています/やや混雑/混雑/満)"),
        RowError(7, "evacuees '-1' is not a non-negative whole number"),
        RowError(8, "updated_at 'tomorrow' is neither ISO 8601 nor YYYY/MM/DD HH:MM"),
        RowError(9, "duplicate shelter_id S1 (first at 2)"),
        RowError(10, "shelter_id is empty"),
    )


def test_json_list() -> None:
    """A JSON list of objects is read, with numeric IDs and counts accepted."""
    data = json.dumps([
        {"shelter_id": "A", "status": "open", "crowding": "medium", "evacuees": 40,
         "updated_at": "2024-11-02T11:19:00+09:00"},
        {"shelter_id": 72010, "status": "満", "crowding": None, "evacuees": None},
    ]).encode()
    batch = shelter_status.parse(data, "application/json")
    assert batch.errors == ()
    assert batch.items == (
        ShelterStatus("A", "open", "medium", 40, datetime(2024, 11, 2, 11, 19, tzinfo=JST)),
        ShelterStatus("72010", "full", None, None, None),
    )


def test_json_wrapped_and_sniffed() -> None:
    """{"shelters": [...]} is accepted, and JSON is recognised without a content type."""
    data = json.dumps({"shelters": [{"id": "B", "status": "closed"}]}, ensure_ascii=False)
    batch = shelter_status.parse(("\ufeff" + data).encode(), None)
    assert batch.items == (ShelterStatus("B", "closed", None, None, None),)


def test_json_item_errors_by_position() -> None:
    """Bad JSON items are reported by their 1-based position in the list."""
    data = json.dumps([
        {"shelter_id": "A", "status": "open"},
        "not an object",
        {"shelter_id": "B", "status": "open", "evacuees": -3},
        {"shelter_id": "C", "status": "open", "evacuees": True},
        {"shelter_id": "D", "status": ["open"]},
        {"shelter_id": "E", "status": "open", "evacuees": 2.5},
        {"status": "open"},
    ]).encode()
    batch = shelter_status.parse(data, "application/json")
    assert [s.shelter_id for s in batch.items] == ["A"]
    assert batch.errors == (
        RowError(2, "item 2 is not an object"),
        RowError(3, "evacuees -3 is negative"),
        RowError(4, "evacuees must be a string, not bool"),
        RowError(5, "status must be a string, not list"),
        RowError(6, "evacuees must be a string, not float"),
        RowError(7, "shelter_id is empty"),
    )


@pytest.mark.parametrize(("data", "content_type", "fragment"), [
    (b"{not json", "application/json", "not valid UTF-8 JSON"),
    (b'{"items": []}', "application/json", "list of objects"),
    (b"42", "application/json", "list of objects"),
    (b"[" * 100_000, "application/json", "not valid"),
    (b"name,open\nx,1\n", "text/csv", "ID column"),
    (b"", "text/csv", "ID column"),
    (b"ID,status\n\x80\xff\xfe\x85\n", "text/csv", "neither UTF-8 nor Shift_JIS"),
])
def test_unreadable_documents_raise(data: bytes, content_type: str, fragment: str) -> None:
    """A document that cannot be read at all raises InvalidMessage with the reason."""
    with pytest.raises(errors.InvalidMessage, match=fragment):
        shelter_status.parse(data, content_type)


def test_size_limit() -> None:
    """A document over the size limit raises TooLarge."""
    with pytest.raises(errors.TooLarge):
        shelter_status.parse(CSV_EN, "text/csv", max_bytes=10)


@pytest.mark.parametrize(("content_type", "data", "expected"), [
    ("application/json", b"ID,status", True),
    ("application/vnd.example+json; charset=utf-8", b"", True),
    ("text/csv", b"[1]", False),
    (None, b"  \n[", True),
    ("text/plain", b"{}", True),
    (None, b"ID,status", False),
])
def test_is_json(content_type: str | None, data: bytes, expected: bool) -> None:
    """The media type decides JSON vs CSV; without a telling one the first character does."""
    assert shelter_status.is_json(data, content_type) is expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1_000), st.sampled_from([None, "text/csv", "application/json"]))
def test_arbitrary_bytes_give_batch_or_error(data: bytes, content_type: str | None) -> None:
    """Any bytes give a batch or a FeedError, never another exception."""
    try:
        batch = shelter_status.parse(data, content_type)
    except errors.FeedError as exc:
        assert exc.reason
        return
    assert len({s.shelter_id for s in batch.items}) == len(batch.items)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_gives_a_batch_or_invalid_message(value: object) -> None:
    """Any JSON value gives a batch whose items all have a status, or InvalidMessage."""
    data = json.dumps(value).encode()
    try:
        batch = shelter_status.parse(data, "application/json")
    except errors.InvalidMessage:
        assert not isinstance(value, list) and not (
            isinstance(value, dict) and isinstance(value.get("shelters"), list))
        return
    assert all(s.status in ("not_open", "open", "full", "closed") for s in batch.items)
    assert all(s.evacuees is None or s.evacuees >= 0 for s in batch.items)


def test_huge_evacuee_count_is_a_row_error() -> None:
    """A 5,000-digit evacuee count is a row error, not a crash, and its reason stays short."""
    batch = shelter_status.parse(b"ID,status,evacuees\nS1,open," + b"7" * 5000 + b"\n", "text/csv")
    assert batch.items == ()
    assert batch.errors == (
        RowError(2, "evacuees 7777777777777777777777777777777777777777 is implausibly large"),)


def test_unreadable_csv_header_raises() -> None:
    """A header beyond the csv module's field limit is an InvalidMessage, not a csv.Error."""
    with pytest.raises(errors.InvalidMessage, match="header"):
        shelter_status.parse(b'"' + b"x" * 200_000 + b'"\n', "text/csv")
