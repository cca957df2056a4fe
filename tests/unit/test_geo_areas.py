"""Tests for geo.areas: parsing and validating staff order areas."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import shapely

from geo import areas
from geo.areas import Area, parse_area
from geo.errors import InvalidArea, UnknownAreaCode
from geo.municipalities import Table
from tests import shapes

R = 6_371_008.8


def _square(x: float, y: float, size: float) -> list[list[float]]:
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


def _polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def _haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance, written independently of the code under test."""
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1))
        * math.cos(math.radians(lat2))
        * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * R * math.asin(math.sqrt(a))


def _refused(obj: object, table: Table, **limits: Any) -> str:
    with pytest.raises(InvalidArea) as caught:
        parse_area(obj, table, **limits)
    return caught.value.reason


def test_polygon_is_accepted(table: Table) -> None:
    """A closed GeoJSON Polygon becomes a polygon Area with no area codes."""
    area = parse_area(_polygon(_square(140.0, 37.0, 0.1)), table)
    assert area == Area("polygon", area.geometry, ())
    assert shapely.get_type_id(area.geometry) == 3
    assert shapely.area(area.geometry) == pytest.approx(0.01)


def test_to_geojson_round_trips(table: Table) -> None:
    """to_geojson gives plain GeoJSON whose coordinates parse back to the same area."""
    area = parse_area(_polygon(_square(140.0, 37.0, 0.1)), table)
    doc = area.to_geojson()
    assert doc["type"] == "Polygon"
    assert isinstance(doc["coordinates"][0][0], list)
    again = parse_area(doc, table)
    assert shapely.equals(again.geometry, area.geometry)
    assert areas.to_geojson(area) == doc


def test_feature_wrapping_a_multipolygon(table: Table) -> None:
    """A Feature wrapping a MultiPolygon is accepted with both parts."""
    obj = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "MultiPolygon",
            "coordinates": [[_square(140.0, 37.0, 0.1)], [_square(140.5, 37.0, 0.1)]],
        },
    }
    area = parse_area(obj, table)
    assert shapely.get_type_id(area.geometry) == 6
    assert shapely.intersects_xy(area.geometry, [140.05, 140.55, 140.3], [37.05] * 3).tolist() == [
        True,
        True,
        False,
    ]


def test_holes_are_respected(table: Table) -> None:
    """A point in a polygon's hole is outside the area; the ring around it is inside."""
    area = parse_area(_polygon(_square(140.0, 37.0, 1.0), _square(140.4, 37.4, 0.2)), table)
    assert not shapely.intersects_xy(area.geometry, 140.5, 37.5)
    assert shapely.intersects_xy(area.geometry, 140.2, 37.5)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1, 2], "area must be a JSON object"),
        ({},
         "area must be a GeoJSON Polygon or MultiPolygon (or a Feature wrapping one),"
         ' {"circle": {"lat", "lon", "radius_m"}} or {"area_codes": [...]}'),
        ({"circle": {}, "area_codes": []},
         "area must be a GeoJSON Polygon or MultiPolygon (or a Feature wrapping one),"
         ' {"circle": {"lat", "lon", "radius_m"}} or {"area_codes": [...]}'),
        ({"type": "Point", "coordinates": [140, 37]},
         "unsupported GeoJSON type 'Point': expected Polygon or MultiPolygon"),
        ({"type": "Feature", "geometry": None}, "the Feature has no geometry object"),
        ({"type": "Polygon", "coordinates": []}, "polygon 0 must be a non-empty list of rings"),
        ({"type": "MultiPolygon", "coordinates": []},
         "MultiPolygon coordinates must be a non-empty list of polygons"),
        ({"type": "Polygon", "coordinates": [5]},
         "ring 0 of polygon 0 must be a list of positions"),
    ],
)
def test_unknown_shapes_are_refused(table: Table, obj: object, reason: str) -> None:
    """Anything that is not one of the three area shapes is refused with its reason."""
    assert _refused(obj, table) == reason


@pytest.mark.parametrize(
    ("position", "reason"),
    [
        (["140", 37.05], "position 2 of ring 0 of polygon 0: longitude must be a number"),
        ([140.05, True], "position 2 of ring 0 of polygon 0: latitude must be a number"),
        ([140.05], "position 2 of ring 0 of polygon 0 must be a [lon, lat] pair"),
        ([140.05, 37.05, 10.0], "position 2 of ring 0 of polygon 0 must be a [lon, lat] pair"),
        ({"lon": 140.05}, "position 2 of ring 0 of polygon 0 must be a [lon, lat] pair"),
        ([float("nan"), 37.05],
         "position 2 of ring 0 of polygon 0: longitude is not a finite number"),
        ([140.05, float("inf")],
         "position 2 of ring 0 of polygon 0: latitude is not a finite number"),
        ([180.5, 37.05], "position 2 of ring 0 of polygon 0: longitude 180.5 is outside -180..180"),
        ([140.05, -90.5], "position 2 of ring 0 of polygon 0: latitude -90.5 is outside -90..90"),
    ],
)
def test_bad_positions_are_refused(table: Table, position: object, reason: str) -> None:
    """A bad position is refused, naming the position, ring, polygon and coordinate."""
    ring: list[Any] = _square(140.0, 37.0, 0.1)
    ring[2] = position
    assert _refused(_polygon(ring), table) == reason


def test_unclosed_ring_is_refused_not_closed(table: Table) -> None:
    """An open ring is refused with the exact reason rather than closed silently."""
    ring = [*_square(140.0, 37.0, 0.1)[:-1], [140.0, 37.01]]
    assert _refused(_polygon(ring), table) == (
        "ring 0 of polygon 0 is not closed: first and last positions differ"
    )


def test_short_ring_is_refused(table: Table) -> None:
    """A ring with fewer than 4 positions is refused."""
    ring = [[140.0, 37.0], [140.1, 37.0], [140.0, 37.0]]
    assert "has 3 positions" in _refused(_polygon(ring), table)


def test_too_many_vertices_are_refused(table: Table) -> None:
    """More positions than max_vertices in total is refused."""
    obj = {
        "type": "MultiPolygon",
        "coordinates": [[_square(140.0, 37.0, 0.1)], [_square(140.5, 37.0, 0.1)]],
    }
    assert parse_area(obj, table, max_vertices=10).kind == "polygon"
    assert "more than 9 vertices" in _refused(obj, table, max_vertices=9)


def test_bow_tie_is_repaired(table: Table) -> None:
    """A self-crossing bow-tie is repaired into its two lobes and accepted."""
    ring = [[140.0, 37.0], [140.2, 37.2], [140.2, 37.0], [140.0, 37.2], [140.0, 37.0]]
    area = parse_area(_polygon(ring), table)
    assert shapely.is_valid(area.geometry)
    assert shapely.area(area.geometry) == pytest.approx(0.02)
    assert shapely.intersects_xy(area.geometry, [140.02, 140.18], [37.1, 37.1]).all()


def test_tangled_star_is_refused_before_repair(table: Table) -> None:
    """The 800-vertex star of issue 7 (318,400 crossings) is refused, not repaired for 40 s."""
    assert _refused(shapes.star_polygon(800), table) == (
        "the polygon intersects itself at more than 1000 points; repairing it would take too "
        "long: please redraw it without crossing edges")


def test_crossings_up_to_the_limit_are_repaired(table: Table) -> None:
    """A star with 810 crossings (45 vertices) is repaired under the default limit of 1,000,
    refused under a limit of 809."""
    assert 45 * (shapes.star_step(45) - 1) == 810
    area = parse_area(shapes.star_polygon(45), table)
    assert shapely.is_valid(area.geometry)
    assert "more than 809 points" in _refused(
        shapes.star_polygon(45), table, max_self_intersections=809)


def test_bow_tie_is_refused_under_a_zero_limit(table: Table) -> None:
    """With max_self_intersections 0 even a bow-tie is refused; a simple square still passes."""
    ring = [[140.0, 37.0], [140.2, 37.2], [140.2, 37.0], [140.0, 37.2], [140.0, 37.0]]
    assert "more than 0 points" in _refused(_polygon(ring), table, max_self_intersections=0)
    square = parse_area(_polygon(_square(140.0, 37.0, 0.1)), table, max_self_intersections=0)
    assert square.kind == "polygon"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_polygon(_square(140.0, 37.0, 0.1)), 5),
        (_polygon(_square(140.0, 37.0, 0.2), _square(140.05, 37.05, 0.1)), 10),
        ({"type": "MultiPolygon", "coordinates": [[_square(140.0, 37.0, 0.1)],
                                                  [_square(140.5, 37.0, 0.1)]]}, 10),
        ({"type": "Feature", "geometry": _polygon(_square(140.0, 37.0, 0.1))}, 5),
        ({"circle": {"lat": 37.0, "lon": 140.0, "radius_m": 100}}, 0),
        ({"area_codes": ["072010"]}, 0),
        ({"type": "Polygon", "coordinates": "nonsense"}, 0),
        ([1, 2, 3], 0),
    ],
)
def test_positions_measures_the_work(obj: object, expected: int) -> None:
    """positions() counts the positions of GeoJSON areas, 0 for circles, codes and junk."""
    assert areas.positions(obj) == expected


def test_degenerate_ring_is_empty(table: Table) -> None:
    """A zero-area ring (all positions on one line) is refused as empty."""
    ring = [[140.0, 37.0], [140.1, 37.1], [140.2, 37.2], [140.0, 37.0]]
    assert "area is empty" in _refused(_polygon(ring), table)


def test_repair_that_adds_ground_is_refused(table: Table) -> None:
    """A hole outside its shell would become extra ground when repaired, so it is refused."""
    obj = _polygon(_square(140.0, 37.0, 0.2), _square(140.3, 37.0, 0.1))
    assert "intersects itself" in _refused(obj, table)


def test_area_km2_is_equal_area_on_the_sphere() -> None:
    """A lon/lat rectangle measures R²·Δλ·(sin φ2 − sin φ1), the exact spherical area."""
    exact = R**2 * math.radians(1.0) * (math.sin(math.radians(38)) - math.sin(math.radians(37)))
    assert areas.area_km2(shapely.box(140, 37, 141, 38)) == pytest.approx(exact / 1e6, rel=1e-12)


def test_too_large_area_is_refused(table: Table) -> None:
    """A polygon above max_area_km2 is refused with its size in km²."""
    obj = _polygon(_square(139.0, 36.0, 1.0))  # about 9,900 km²
    assert parse_area(obj, table, max_area_km2=10000).kind == "polygon"
    assert "km², more than the limit of 9000 km²" in _refused(obj, table, max_area_km2=9000)


def _circle(lat: float, lon: float, radius_m: float, table: Table) -> Area:
    return parse_area({"circle": {"lat": lat, "lon": lon, "radius_m": radius_m}}, table)


def test_circle_is_round_on_the_sphere(table: Table) -> None:
    """At lat 37.5 a circle is wider in degrees of longitude by about 1/cos(37.5°)."""
    area = _circle(37.5, 140.4, 10_000, table)
    minx, miny, maxx, maxy = shapely.bounds(area.geometry)
    assert area.kind == "circle" and area.area_codes == ()
    ratio = (maxx - minx) / (maxy - miny)
    assert ratio == pytest.approx(1 / math.cos(math.radians(37.5)), rel=0.01)


@pytest.mark.parametrize("radius_m", [500.0, 10_000.0, 200_000.0])
def test_circle_covers_its_radius_and_no_more(table: Table, radius_m: float) -> None:
    """Points at 0.99 of the radius in every direction are inside; at 1.01 outside."""
    area = _circle(37.5, 140.4, radius_m, table)
    bearings = np.arange(0.0, 360.0, 2.5)
    for scale, expected in ((0.99, True), (1.01, False)):
        lon, lat = areas.destination(140.4, 37.5, bearings, radius_m * scale)
        for x, y in zip(lon, lat, strict=True):
            assert _haversine(140.4, 37.5, x, y) == pytest.approx(radius_m * scale, rel=1e-9)
        assert (shapely.intersects_xy(area.geometry, lon, lat) == expected).all(), scale


@pytest.mark.parametrize(
    ("circle", "reason"),
    [
        ({"lat": 37.5, "lon": 140.4, "radius_m": 0},
         "circle radius_m must be greater than 0 and at most 200000 (got 0)"),
        ({"lat": 37.5, "lon": 140.4, "radius_m": -5},
         "circle radius_m must be greater than 0 and at most 200000 (got -5)"),
        ({"lat": 37.5, "lon": 140.4, "radius_m": 200_001},
         "circle radius_m must be greater than 0 and at most 200000 (got 200001)"),
        ({"lat": 37.5, "lon": 140.4, "radius_m": "5"}, "circle radius_m must be a number"),
        ({"lat": 97.5, "lon": 140.4, "radius_m": 5},
         "circle centre: latitude 97.5 is outside -90..90"),
        ({"lat": 37.5, "lon": -190, "radius_m": 5},
         "circle centre: longitude -190 is outside -180..180"),
        ({"lat": 37.5, "lon": 140.4}, "circle must be an object with lat, lon and radius_m"),
        ({"lat": 89.9, "lon": 140.4, "radius_m": 50_000}, "circle reaches a pole"),
        ({"lat": 0.0, "lon": 179.9, "radius_m": 50_000},
         "circle crosses the antimeridian (longitude ±180)"),
        ([37.5, 140.4], "circle must be an object with lat, lon and radius_m"),
    ],
)
def test_bad_circles_are_refused(table: Table, circle: object, reason: str) -> None:
    """Circles with bad centres or radii are refused with the reason."""
    assert _refused({"circle": circle}, table) == reason


def test_area_codes_union_and_dedupe(table: Table) -> None:
    """Codes resolve to the union of their areas, as unique 6-digit codes in order."""
    area = parse_area({"area_codes": ["072133", "072010", "0720100", "072133"]}, table)
    assert area.kind == "codes"
    assert area.area_codes == ("072133", "072010")
    union = shapely.union(table.get("072010"), table.get("072133"))
    assert shapely.area(shapely.symmetric_difference(area.geometry, union)) < 1e-12


def test_sub_area_code_covers_only_that_sub_area(table: Table) -> None:
    """A 7-digit sub-area code is reported as its municipality but covers only the sub-area."""
    area = parse_area({"area_codes": ["0720302"]}, table)
    assert area.area_codes == ("072036",)
    main = shapely.point_on_surface(table.get("0720301"))
    assert not shapely.intersects(area.geometry, main)


def test_unknown_area_code_is_named(table: Table) -> None:
    """An unknown code raises UnknownAreaCode naming it."""
    with pytest.raises(UnknownAreaCode, match="131016"):
        parse_area({"area_codes": ["072010", "131016"]}, table)


@pytest.mark.parametrize(
    ("codes", "reason"),
    [
        ([], "area_codes must be a non-empty list of area codes"),
        ("072010", "area_codes must be a non-empty list of area codes"),
        (["072010", 72028], "area_codes[1] must be a string"),
    ],
)
def test_bad_area_code_lists_are_refused(table: Table, codes: object, reason: str) -> None:
    """area_codes must be a non-empty list of strings."""
    assert _refused({"area_codes": codes}, table) == reason
