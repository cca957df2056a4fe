"""Tests for geo.municipalities: codes, check digits and the Fukushima municipality table."""

from __future__ import annotations

import pytest
import shapely

from geo.errors import GeoError, InvalidArea, UnknownAreaCode
from geo.municipalities import Table, check_digit, to_code6


def _shared_vertex(table: Table, a: str, b: str) -> tuple[float, float]:
    """A vertex on the border of a and b that touches no third municipality."""
    coords = shapely.get_coordinates(shapely.boundary(table.get(a)))
    keep = shapely.intersects_xy(shapely.boundary(table.get(b)), coords[:, 0], coords[:, 1])
    for other in set(table.codes6()) - {a, b}:
        keep &= ~shapely.intersects_xy(table.get(other), coords[:, 0], coords[:, 1])
    x, y = coords[keep][0]
    return float(x), float(y)


@pytest.mark.parametrize(
    ("code5", "digit"), [("07201", "0"), ("07202", "8"), ("07203", "6"), ("13101", "6")]
)
def test_check_digit(code5: str, digit: str) -> None:
    """The check digit follows the local-government code formula."""
    assert check_digit(code5) == digit


@pytest.mark.parametrize(
    ("code", "code6"),
    [("07201", "072010"), ("072010", "072010"), ("0720100", "072010"), ("0720301", "072036")],
)
def test_to_code6_accepts_5_6_and_7_digits(code: str, code6: str) -> None:
    """5-, 6- and 7-digit codes all map to the 6-digit local-government code."""
    assert to_code6(code) == code6


def test_to_code6_refuses_a_wrong_check_digit() -> None:
    """A 6-digit code whose check digit is wrong is unknown, and the error names it."""
    with pytest.raises(UnknownAreaCode, match="072011"):
        to_code6("072011")


@pytest.mark.parametrize("code", ["7201", "07201000", "07a010", "", "０７２０１０"])
def test_to_code6_refuses_malformed_codes(code: str) -> None:
    """Codes that are not 5 to 7 ASCII digits are invalid areas."""
    with pytest.raises(InvalidArea):
        to_code6(code)


def test_table_merges_split_municipalities(table: Table) -> None:
    """The 61 sub-areas make 59 municipalities; 郡山市 and 天栄村 appear once each."""
    codes = table.codes6()
    assert len(codes) == 59
    assert codes == sorted(codes)
    assert codes.count("072036") == 1
    assert "073440" in codes


def test_whole_municipality_is_the_union_of_its_sub_areas(table: Table) -> None:
    """A 6-digit code gives the union of the sub-areas, covering both parts."""
    whole = table.get("072036")
    for sub in ("0720301", "0720302"):
        part = table.get(sub)
        assert shapely.covers(whole, shapely.point_on_surface(part))
    total = shapely.area(table.get("0720301")) + shapely.area(table.get("0720302"))
    assert shapely.area(whole) == pytest.approx(total, rel=1e-3)


def test_sub_area_code_gives_only_that_sub_area(table: Table) -> None:
    """A 7-digit code gives the sub-area alone: 湖南 is not inside 郡山市's main sub-area."""
    konan = shapely.point_on_surface(table.get("0720302"))
    assert not shapely.intersects(table.get("0720301"), konan)
    assert shapely.intersects(table.get("0720302"), konan)


@pytest.mark.parametrize("code", ["131016", "0720300", "072011", "abc", "07201"])
def test_get_unknown_code_raises_naming_it(table: Table, code: str) -> None:
    """Unknown or malformed codes raise UnknownAreaCode whose reason names the code."""
    with pytest.raises(UnknownAreaCode) as caught:
        table.get(code)
    assert caught.value.reason == f"unknown area code '{code}'"


def test_is_known(table: Table) -> None:
    """is_known accepts listed 6- and 7-digit codes and nothing else."""
    assert table.is_known("072010")
    assert table.is_known("0720302")
    assert not table.is_known("0720300")
    assert not table.is_known("072011")


def test_names_of_municipalities_and_sub_areas(table: Table) -> None:
    """A split municipality is named after its first sub-area; sub-areas keep their own names."""
    assert table.name("072036") == "郡山市"
    assert table.name_en("072036") == "Koriyama City"
    assert table.name("0720302") == "郡山市湖南"
    assert table.name("073440") == "天栄村"
    assert table.municipality("072010").sub_areas == ("0720100",)


def test_all_geometries_are_valid_polygons(table: Table) -> None:
    """Every municipality geometry is a valid, non-empty (multi)polygon after repair."""
    for code in table.codes6():
        geometry = table.get(code)
        assert shapely.get_type_id(geometry) in (3, 6), code
        assert shapely.is_valid(geometry), code
        assert shapely.area(geometry) > 0, code


def test_nested_shell_is_united_not_cut_out(table: Table) -> None:
    """二本松市's nested shell is kept as ground, not turned into a hole by the repair."""
    inner = shapely.box(140.3518, 37.5748, 140.3551, 37.5840)
    assert shapely.area(shapely.intersection(table.get("072109"), inner)) > 0.5 * shapely.area(
        inner
    )


def test_containing_finds_the_municipality(table: Table) -> None:
    """Points in 福島市 and in 郡山市湖南 resolve to their 6-digit codes; the sea to none."""
    assert table.containing(140.4748, 37.7608) == ["072010"]
    konan = shapely.point_on_surface(table.get("0720302"))
    assert table.containing(konan.x, konan.y) == ["072036"]
    assert table.containing(141.6, 37.5) == []


def test_containing_counts_the_border_in_both(table: Table) -> None:
    """A vertex on the border of 福島市 and 伊達市 belongs to both municipalities."""
    x, y = _shared_vertex(table, "072010", "072133")
    assert table.containing(x, y) == ["072010", "072133"]


def test_intersecting(table: Table) -> None:
    """A small box across a border meets both municipalities; a box at sea meets none."""
    x, y = _shared_vertex(table, "072010", "072133")
    assert table.intersecting(shapely.box(x - 1e-4, y - 1e-4, x + 1e-4, y + 1e-4)) == [
        "072010",
        "072133",
    ]
    assert table.intersecting(shapely.box(141.5, 37.0, 141.6, 37.1)) == []


def test_from_geojson_refuses_bad_documents() -> None:
    """A document that is not a FeatureCollection of coded polygons is a GeoError."""
    with pytest.raises(GeoError, match="FeatureCollection"):
        Table.from_geojson({"type": "Feature"})
    feature = {"type": "Feature", "properties": {"name": "x", "enName": "x"}, "geometry": None}
    with pytest.raises(GeoError, match="7-digit code"):
        Table.from_geojson({"type": "FeatureCollection", "features": [feature]})
