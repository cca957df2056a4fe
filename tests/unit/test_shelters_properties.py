"""Property tests for feeds.shelters: it never raises, and accounts for every row it is given."""

from __future__ import annotations

import csv
import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import shelters

SETTINGS = settings(max_examples=200, deadline=None)
HEADERS = (
    "NO,共通ID,施設・場所名,住所,洪水,崖崩れ、土石流及び地滑り,高潮,地震,津波,大規模な火事,内水氾濫,"
    "火山現象,指定避難所との住所同一,緯度,経度,備考",
    "NO,共通ID,都道府県名及び市町村名,施設・場所名,住所,指定緊急避難場所との住所同一,受入対象者,"
    "緯度,経度,備考",
    "全国地方公共団体コード,ID,名称,名称_カナ,名称_英字,住所,方書,緯度,経度,高さ,災害種別_洪水,"
    "災害種別_崖崩れ、土石流及び地滑り,災害種別_高潮,災害種別_地震,災害種別_津波,災害種別_大規模な火事,"
    "災害種別_内水氾濫,災害種別_火山現象,指定避難所との住所同一,想定収容人数,対象となる町会・自治会,URL,備考",
)
STANDARD = "全国地方公共団体コード,ID,名称,住所,緯度,経度," + ",".join(
    "災害種別_" + c for c in shelters.HAZARD_COLUMNS) + ",想定収容人数"
# Characters every supported encoding (UTF-8 and cp932) can carry, separators included.
SAFE = st.sampled_from(list("福島市立小学校公園体育館あいうえおカタカナ abc123-・、,\"\n"))
CELLS = st.text(st.characters(codec="utf-8"), max_size=12)
YES = st.sampled_from(["1", "○", "◯", "●", "true"])
NO = st.sampled_from(["", "0", "×"])


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _data_rows(text: str) -> int:
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    return sum(1 for row in rows if any(cell.strip() for cell in row))


@SETTINGS
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    """Any bytes give an import result; an unreadable file gives exactly one error."""
    result = shelters.parse(data)
    assert isinstance(result, shelters.ShelterImport)
    if result.format == shelters.FORMAT_UNKNOWN:
        assert result.shelters == () and len(result.errors) == 1


@SETTINGS
@given(st.sampled_from(HEADERS), st.lists(st.lists(CELLS, max_size=30), max_size=20))
def test_every_row_is_a_shelter_or_an_error(header: str, rows: list[list[str]]) -> None:
    """Under a known header, each non-blank row becomes one shelter or one error, in line order."""
    text = header + "\n" + _csv(rows)
    result = shelters.parse(text.encode("utf-8"))
    assert result.format != shelters.FORMAT_UNKNOWN
    assert len(result.shelters) + len(result.errors) == _data_rows(text)
    lines = [e.line for e in result.errors]
    assert lines == sorted(set(lines))
    physical_lines = len(re.split(r"\r\n|\r|\n", text))
    assert all(2 <= line <= physical_lines for line in lines)
    assert len({s.id for s in result.shelters}) == len(result.shelters)
    for shelter in result.shelters:
        assert 20 <= shelter.lat <= 46 and 122 <= shelter.lon <= 154
        assert shelter.hazards <= set(shelters.HAZARDS)


@st.composite
def _rows(draw: st.DrawFn) -> tuple[list[list[str]], list[dict[str, object]]]:
    """Standard-format rows (some deliberately bad) and what each should become."""
    ids = draw(st.lists(st.from_regex(r"[A-Z][0-9]{1,4}", fullmatch=True),
                        unique=True, max_size=15))
    rows: list[list[str]] = []
    expected: list[dict[str, object]] = []
    for shelter_id in ids:
        name = draw(st.text(SAFE, min_size=1, max_size=8).filter(lambda s: s.strip()))
        lat = draw(st.floats(20, 46))
        lon = draw(st.floats(122, 154))
        flags = draw(st.lists(st.booleans(), min_size=8, max_size=8))
        cells = [draw(YES) if f else draw(NO) for f in flags]
        good = draw(st.integers(0, 4)) > 0
        lat_text = repr(lat) if good else repr(lat + 100)
        rows.append(["072010", shelter_id, name, "福島県", lat_text, repr(lon), *cells, "10"])
        expected.append({"id": shelter_id, "name": name.strip(), "lat": lat, "lon": lon,
                         "good": good,
                         "hazards": {h for h, f in zip(shelters.HAZARDS, flags, strict=True) if f}})
    return rows, expected


@SETTINGS
@given(_rows(), st.sampled_from(["utf-8", "utf-8-sig", "cp932"]))
def test_round_trip_with_exact_lines(
    generated: tuple[list[list[str]], list[dict[str, object]]], encoding: str
) -> None:
    """Written rows come back as equal shelters, and bad rows are reported at their exact line."""
    rows, expected = generated
    result = shelters.parse((STANDARD + "\n" + _csv(rows)).encode(encoding))
    line, expected_lines = 2, []
    for row, want in zip(rows, expected, strict=True):
        if not want["good"]:
            expected_lines.append(line)
        line += _csv([row]).count("\n")
    assert [e.line for e in result.errors] == expected_lines
    good = [w for w in expected if w["good"]]
    assert [s.id for s in result.shelters] == [w["id"] for w in good]
    for shelter, want in zip(result.shelters, good, strict=True):
        assert (shelter.name, shelter.lat, shelter.lon) == (want["name"], want["lat"], want["lon"])
        assert shelter.hazards == want["hazards"]
        assert shelter.capacity == 10 and shelter.municipality_code == "072010"
