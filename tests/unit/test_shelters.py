"""Tests for feeds.shelters: format detection, encodings, hazard flags and per-row errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds import shelters
from feeds.shelters import RowError, ShelterRow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shelters"
ENCODINGS = ("utf-8", "utf-8-sig", "cp932")
# fixture file, expected format, expected kind, expected IDs
FORMATS = (
    ("gsi_evacuation_sites.csv", shelters.FORMAT_GSI_SITE, "evacuation_site",
     ("0720100001", "0720100002", "0720100003", "0720400001")),
    ("gsi_evacuation_sites_with_municipality.csv", shelters.FORMAT_GSI_SITE, "evacuation_site",
     ("0720200001", "0720200002")),
    ("gsi_shelters.csv", shelters.FORMAT_GSI_SHELTER, "shelter", ("0720300001", "0720300002")),
    ("standard_evacuation_sites.csv", shelters.FORMAT_STANDARD, "evacuation_site",
     ("072010-0001", "072010-0002", "072044-0001")),
    ("standard_shelters.csv", shelters.FORMAT_STANDARD, "shelter",
     ("072036-0101", "072036-0102")),
)
STANDARD_HEADER = "全国地方公共団体コード,ID,名称,住所,緯度,経度,災害種別_洪水,想定収容人数"

# What every header error says the importer expects (the three formats' columns).
EXPECTED_COLUMNS = (
    "the GSI 指定緊急避難場所 columns (NO,共通ID,施設・場所名,住所,洪水,…,火山現象,"
    "指定避難所との住所同一,緯度,経度,備考), the GSI 指定避難所 columns (NO,共通ID,"
    "施設・場所名,住所,…,受入対象者,緯度,経度,備考) or the Digital Agency standard columns "
    "(全国地方公共団体コード,ID,名称,…,住所,方書,緯度,経度,…)"
)

def _fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _by_id(result: shelters.ShelterImport) -> dict[str, ShelterRow]:
    return {s.id: s for s in result.shelters}


def _standard(*rows: str) -> bytes:
    return "\n".join((STANDARD_HEADER, *rows)).encode("utf-8")


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("name", "fmt", "kind", "ids"), FORMATS)
def test_each_format_in_each_encoding(
    name: str, fmt: str, kind: str, ids: tuple[str, ...], encoding: str
) -> None:
    """Each format is recognised by its header and imported alike in UTF-8, UTF-8+BOM and SJIS."""
    result = shelters.parse(_fixture_text(name).encode(encoding))
    assert result.errors == ()
    assert result.format == fmt
    assert tuple(s.id for s in result.shelters) == ids
    assert {s.kind for s in result.shelters} == {kind}
    assert {s.source_format for s in result.shelters} == {fmt}
    assert all(s.name and s.address.startswith("福島県") for s in result.shelters)


def test_shift_jis_crlf_file_matches_utf8() -> None:
    """A Shift_JIS file with CRLF line ends (a spreadsheet export) imports like its UTF-8 twin."""
    sjis = shelters.parse((FIXTURES / "standard_evacuation_sites_sjis_crlf.csv").read_bytes())
    utf8 = shelters.parse((FIXTURES / "standard_evacuation_sites.csv").read_bytes())
    assert sjis.errors == ()
    assert len(sjis.shelters) == 3
    assert [s.name for s in sjis.shelters] == [s.name for s in utf8.shelters]
    assert [s.lat for s in sjis.shelters] == [s.lat for s in utf8.shelters]


def test_gsi_site_fields_and_hazard_flags() -> None:
    """GSI hazard columns map, in order, to the eight hazards; 1, ○, ◯ and ● all mean yes."""
    found = _by_id(shelters.parse((FIXTURES / "gsi_evacuation_sites.csv").read_bytes()))
    school = found["0720100001"]
    assert school.name == "福島市立福島第一小学校"
    assert school.address == "福島県福島市宮町4-24"
    assert (school.lat, school.lon) == (37.7608, 140.4747)
    assert school.hazards == {"flood", "landslide", "earthquake", "fire", "inland_flood"}
    assert school.capacity is None and school.municipality_code is None
    assert found["0720100003"].hazards == {"flood", "earthquake", "fire", "inland_flood"}
    assert found["0720400001"].hazards == {"landslide", "earthquake", "tsunami", "fire"}


def test_optional_municipality_name_column_does_not_shift_fields() -> None:
    """The optional 都道府県名及び市町村名 column is tolerated: fields are found by name."""
    found = _by_id(shelters.parse(
        (FIXTURES / "gsi_evacuation_sites_with_municipality.csv").read_bytes()))
    castle = found["0720200002"]
    assert castle.name == "鶴ヶ城公園"
    assert castle.address == "福島県会津若松市追手町1"
    assert castle.hazards == {"earthquake", "fire"}
    assert (castle.lat, castle.lon) == (37.4875, 139.9298)


def test_standard_fields_capacity_and_municipality() -> None:
    """Digital Agency columns give capacity (1,200 / 5000人 tolerated) and a 6-digit code."""
    found = _by_id(shelters.parse((FIXTURES / "standard_evacuation_sites.csv").read_bytes()))
    assert found["072010-0001"].capacity == 1200
    assert found["072010-0002"].capacity == 5000
    assert found["072044-0001"].capacity == 350
    assert found["072044-0001"].municipality_code == "072044"
    assert found["072044-0001"].hazards == {"storm_surge", "earthquake", "tsunami"}


def test_standard_shelter_list_leading_zero_lost() -> None:
    """A code whose leading zero a spreadsheet dropped (72036) is restored to 072036."""
    found = _by_id(shelters.parse((FIXTURES / "standard_shelters.csv").read_bytes()))
    assert found["072036-0102"].municipality_code == "072036"
    assert found["072036-0101"].capacity == 450
    assert found["072036-0101"].hazards == frozenset()


def test_row_errors_carry_file_line_numbers() -> None:
    """Bad rows are reported at their file line (multi-line quoted fields counted) and skipped."""
    result = shelters.parse((FIXTURES / "standard_with_errors.csv").read_bytes())
    assert [s.id for s in result.shelters] == ["A-1", "A-2", "A-10"]
    assert [e.line for e in result.errors] == [6, 7, 8, 10, 11, 12, 13, 14, 16]
    assert {e.line: e.reason for e in result.errors} == {
        6: "latitude 'abc' is not a number",
        7: "duplicate ID A-1 (first on line 2)",
        8: "latitude 140.4700 is outside Japan (20–46); latitude and longitude look swapped",
        10: "flood flag 'maybe' is not a yes/no value (1/○/● or blank/0)",
        11: "name is empty (ID 'A-6')",
        12: "capacity '-5' is not a non-negative whole number",
        13: "municipality code 072011 has a wrong check digit (expected 072010)",
        14: "latitude 10.0000 is outside Japan (20–46)",
        16: "ID is empty",
    }


def test_multiline_fields_are_kept_whole() -> None:
    """A quoted field with a newline stays one field of one record."""
    found = _by_id(shelters.parse((FIXTURES / "standard_with_errors.csv").read_bytes()))
    assert found["A-2"].address == "福島県福島市三河北町\n1-1"
    assert found["A-10"].capacity == 1000


def test_line_numbers_after_crlf_multiline_field() -> None:
    """Line numbers stay right with CRLF line ends and a CRLF inside a quoted field."""
    rows = (STANDARD_HEADER, '072010,B-1,"a\r\nb",x,37.7,140.4,1,', "072010,B-2,c,x,99,140.4,1,")
    result = shelters.parse("\r\n".join(rows).encode("cp932"))
    assert [s.id for s in result.shelters] == ["B-1"]
    assert result.errors == (RowError(4, "latitude 99 is outside Japan (20–46)"),)


@pytest.mark.parametrize(("lat", "lon", "reason"), [
    ("", "140.4", "latitude is empty"),
    ("37.7", "", "longitude is empty"),
    ("nan", "140.4", "latitude nan is outside Japan (20–46)"),
    ("37.7", "inf", "longitude inf is outside Japan (122–154)"),
    ("37.7", "160.0", "longitude 160.0 is outside Japan (122–154)"),
    ("-37.7", "140.4", "latitude -37.7 is outside Japan (20–46)"),
    ("37.7", "140,4", "longitude '140,4' is not a number"),
])
def test_bad_coordinates(lat: str, lon: str, reason: str) -> None:
    """Missing, non-numeric, non-finite or out-of-Japan coordinates make a row error."""
    result = shelters.parse(_standard(f'072010,C-1,n,x,{lat},"{lon}",1,'))
    assert result.shelters == ()
    assert len(result.errors) == 1
    assert result.errors[0] == RowError(2, reason)


def test_full_width_digits_are_read() -> None:
    """Full-width digits in coordinates, flags and capacity are read as ASCII ones."""
    result = shelters.parse(_standard("０７２０１０,D-1,n,x,３７.７,１４０.４,１,１２０"))
    assert result.errors == ()
    (shelter,) = result.shelters
    assert (shelter.lat, shelter.lon, shelter.capacity) == (37.7, 140.4, 120)
    assert shelter.hazards == {"flood"} and shelter.municipality_code == "072010"


@pytest.mark.parametrize("value", ["1", "○", "◯", "〇", "●", "true", "TRUE", "yes", "有"])
def test_yes_flags(value: str) -> None:
    """Every accepted yes spelling sets the hazard."""
    (shelter,) = shelters.parse(_standard(f"072010,E-1,n,x,37.7,140.4,{value},")).shelters
    assert shelter.hazards == {"flood"}


@pytest.mark.parametrize("value", ["", "0", "×", "false", "-", "無"])
def test_no_flags(value: str) -> None:
    """Every accepted no spelling, blank included, leaves the hazard unset."""
    (shelter,) = shelters.parse(_standard(f"072010,E-1,n,x,37.7,140.4,{value},")).shelters
    assert shelter.hazards == frozenset()


@pytest.mark.parametrize(("code", "expected"), [
    ("072010", "072010"), ("07201", "072010"), ("72010", "072010"), ("", None),
])
def test_municipality_code_forms(code: str, expected: str | None) -> None:
    """6 digits, 5 digits without check digit and a lost leading zero all give the 6-digit code."""
    (shelter,) = shelters.parse(_standard(f"{code},F-1,n,x,37.7,140.4,,")).shelters
    assert shelter.municipality_code == expected


@pytest.mark.parametrize(("code", "reason"), [
    ("7201", "municipality code '7201' is not 5 or 6 digits"),
    ("0720100", "municipality code '0720100' is not 5 or 6 digits"),
    ("abcdef", "municipality code 'abcdef' is not 5 or 6 digits"),
    ("992010", "municipality code 992010 names no prefecture"),
    ("072019", "municipality code 072019 has a wrong check digit (expected 072010)"),
])
def test_bad_municipality_codes(code: str, reason: str) -> None:
    """Codes of the wrong length, non-digits, no prefecture or a bad check digit are row errors."""
    result = shelters.parse(_standard(f"{code},F-1,n,x,37.7,140.4,,"))
    assert result.shelters == ()
    assert result.errors == (RowError(2, reason),)


def test_short_rows_and_extra_columns_are_tolerated() -> None:
    """A row missing trailing optional cells, or with extra cells, still imports."""
    result = shelters.parse(
        _standard("072010,G-1,n,x,37.7,140.4", "072010,G-2,n,x,37.7,140.4,1,5,z"))
    assert result.errors == ()
    assert [(s.id, s.capacity) for s in result.shelters] == [("G-1", None), ("G-2", 5)]


def test_blank_rows_are_skipped() -> None:
    """Empty lines and rows of empty cells are neither shelters nor errors."""
    result = shelters.parse(_standard("", ",,,,,,,", "072010,H-1,n,x,37.7,140.4,,", ""))
    assert [s.id for s in result.shelters] == ["H-1"]
    assert result.errors == ()


@pytest.mark.parametrize(("header", "problem"), [
    ("name,lat,lon", "unrecognised header (name,lat,lon)"),
    ("NO,共通ID,施設・場所名,住所,緯度,経度",
     "GSI header has neither hazard columns (洪水, 地震, …) nor 受入対象者"),
    ("全国地方公共団体コード,ID,名称,住所,備考",
     "header has no 緯度/経度 (latitude/longitude) columns"),
])
def test_unknown_header_is_one_clear_error(header: str, problem: str) -> None:
    """An unrecognised header yields one error on line 1 naming the expected columns."""
    result = shelters.parse(f"{header}\n1,2,3,4,5,6\n".encode())
    assert result.format == shelters.FORMAT_UNKNOWN
    assert result.shelters == ()
    assert result.errors == (RowError(1, f"{problem}: expected {EXPECTED_COLUMNS}"),)


def test_file_name_is_irrelevant_header_decides() -> None:
    """The same bytes give the same format whatever they were called: only the header counts."""
    gsi = (FIXTURES / "gsi_shelters.csv").read_bytes()
    assert shelters.parse(gsi).format == shelters.FORMAT_GSI_SHELTER


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n", b" , ,\r\n"])
def test_empty_file(data: bytes) -> None:
    """An empty file (or only a BOM or blank lines) is one error saying a header was expected."""
    result = shelters.parse(data)
    assert result.shelters == ()
    assert result.errors == (
        RowError(1, f"the file is empty: expected a header row with {EXPECTED_COLUMNS}"),)


def test_undecodable_file_is_one_error() -> None:
    """Bytes that are neither UTF-8 nor cp932 give a single whole-file error."""
    result = shelters.parse(STANDARD_HEADER.encode() + b"\n\x80\xff\xfe\x85\n")
    assert result.shelters == ()
    assert result.errors == (RowError(shelters.FILE_LINE,
                                      "the file is neither UTF-8 nor Shift_JIS (cp932) text"),)


def test_size_limit() -> None:
    """A file over the size limit is refused whole, without reading it."""
    data = _standard("072010,I-1,n,x,37.7,140.4,,")
    result = shelters.parse(data, max_bytes=len(data) - 1)
    assert result.shelters == ()
    limit = len(data) - 1
    assert result.errors == (
        RowError(shelters.FILE_LINE, f"the file is {len(data)} bytes; the limit is {limit}"),)
    assert len(shelters.parse(data, max_bytes=len(data)).shelters) == 1


def test_huge_values_are_row_errors_with_short_reasons() -> None:
    """A 5,000-digit capacity or a 10,000-character coordinate is a row error, quoted briefly."""
    result = shelters.parse(_standard(
        "072010,J-1,n,x,37.7,140.4,," + "9" * 5000,
        "072010,J-2,n,x," + "x" * 10_000 + ",140.4,,",
    ))
    assert result.shelters == ()
    assert result.errors == (
        RowError(2, "capacity 9999999999999999999999999999999999999999 is implausibly large"),
        RowError(3, "latitude '" + "x" * 40 + "…' is not a number"),
    )


def test_oversized_fields_are_reported_not_raised() -> None:
    """A field beyond the csv module's field limit, in the header or a row, becomes an error."""
    huge = "x" * 200_000
    header_case = shelters.parse(f'"{huge}",a\n'.encode())
    assert header_case.errors == (RowError(
        1, "the header row is not readable CSV (field larger than field limit (131072))"),)
    row_case = shelters.parse(_standard("072010,K-1,n,x,37.7,140.4,,", f'072010,K-2,"{huge}"',
                                        "072010,K-3,n,x,37.7,140.4,,"))
    assert [s.id for s in row_case.shelters] == ["K-1"]
    assert row_case.errors == (RowError(
        3, "CSV syntax error (field larger than field limit (131072)); the rest was not read"),)
