"""Tests for geo.reach: the reach in degrees, the edges of a geometry, exact distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from geo import areas, reach
from geo.index import PointIndex


def test_no_reach_without_metres() -> None:
    """A reach of 0 m (or less) is none at all."""
    assert reach.around(shapely.box(140, 37, 141, 38), 0.0) is None
    assert reach.around(shapely.box(140, 37, 141, 38), -5.0) is None


def test_reach_in_degrees_covers_the_metres() -> None:
    """161 m is at least 161 m of latitude and of longitude at the area's northern edge,
    and the widened bounds grow by exactly those amounts."""
    near = reach.around(shapely.box(140.0, 37.0, 140.5, 38.0), 161.0)
    assert near is not None
    metres_per_deg = math.pi * areas.EARTH_RADIUS_M / 180
    assert 161.0 <= near.dy * metres_per_deg <= 161.0 * 1.002
    at_north = near.dx * metres_per_deg * math.cos(math.radians(38.0 + near.dy))
    assert 161.0 <= at_north <= 161.0 * 1.002
    assert near.bounds() == pytest.approx(
        (140.0 - near.dx, 37.0 - near.dy, 140.5 + near.dx, 38.0 + near.dy))


def test_segments_of_every_kind_of_geometry() -> None:
    """A square with a triangular hole gives its 4 + 3 edges, a line of 3 positions its 2, a
    point one piece of length 0, and a collection of them all 10."""
    holed = shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2), (1, 1)]])
    line = shapely.LineString([(5, 5), (6, 5), (6, 7)])
    dot = shapely.Point(9, 9)
    assert len(reach.Segments.of(holed).ax) == 7
    assert len(reach.Segments.of(line).ax) == 2
    seg = reach.Segments.of(dot)
    assert (seg.ax.tolist(), seg.ay.tolist(), seg.bx.tolist(), seg.by.tolist()) == (
        [9.0], [9.0], [9.0], [9.0])
    mixed = shapely.GeometryCollection([holed, shapely.MultiLineString([line]), dot])
    assert len(reach.Segments.of(mixed).ax) == 10


def test_within_pairs_measures_metres_on_the_ground() -> None:
    """A point 100 m east of a north-south edge is within 100.5 m of it and not 99.5 m; a
    point 100 m beyond the edge's end is measured to that end."""
    edge = reach.Segments(np.array([140.0]), np.array([37.5]), np.array([140.0]),
                          np.array([37.6]))
    east_lon, east_lat = areas.destination(140.0, 37.55, 90.0, 100.0)
    north_lon, north_lat = areas.destination(140.0, 37.6, 0.0, 100.0)
    lon = np.array([east_lon, east_lon, north_lon, north_lon], dtype=np.float64)
    lat = np.array([east_lat, east_lat, north_lat, north_lat], dtype=np.float64)
    metres = np.array([100.5, 99.5, 100.5, 99.5])
    pairs = np.arange(4, dtype=np.int64)
    four = reach.Segments(*(np.repeat(a, 4) for a in (edge.ax, edge.ay, edge.bx, edge.by)))
    assert reach.within_pairs(lon, lat, metres, pairs, four).tolist() == [
        True, False, True, False]


def test_within_finds_lines_and_points_too() -> None:
    """Around a line and a point, the R-tree pairing finds what lies within reach: 100 m
    from each with 110 m of accuracy, not with 90 m."""
    line = shapely.LineString([(140.0, 37.5), (140.0, 37.6)])
    dot = shapely.Point(140.2, 37.5)
    geometry = shapely.GeometryCollection([line, dot])
    near = reach.around(geometry, 161.0)
    assert near is not None
    lon1, lat1 = areas.destination(140.0, 37.55, 270.0, 100.0)
    lon2, lat2 = areas.destination(140.2, 37.5, 200.0, 100.0)
    lon = np.array([lon1, lon1, lon2, lon2], dtype=np.float64)
    lat = np.array([lat1, lat1, lat2, lat2], dtype=np.float64)
    assert near.within(lon, lat, np.array([110.0, 90.0, 110.0, 90.0])).tolist() == [
        True, False, True, False]


@pytest.mark.parametrize("in_delta", [False, True])
def test_index_matches_lines_within_accuracy(in_delta: bool) -> None:
    """The index (its base and its delta) matches points within their accuracy of a line
    area: on it always, 100 m from it with 110 m of accuracy, not with 90 m."""
    line = shapely.LineString([(140.0, 37.5), (140.0, 37.6)])
    lon1, lat1 = areas.destination(140.0, 37.55, 90.0, 100.0)
    index = PointIndex(cell_deg=0.001, accuracy_cap_m=161.0)
    rng = np.random.default_rng(5)
    index.build(np.arange(100, 400), rng.uniform(139.0, 139.5, 300), rng.uniform(37, 38, 300))
    points = [(1, 140.0, 37.55, 0.0), (2, float(lon1), float(lat1), 110.0),
              (3, float(lon1), float(lat1), 90.0)]
    if in_delta:
        for key, x, y, a in points:
            index.upsert(key, x, y, a)
    else:
        index.build(np.array([p[0] for p in points] + list(range(100, 400))),
                    np.array([p[1] for p in points] + [139.2] * 300),
                    np.array([p[2] for p in points] + list(np.linspace(37, 38, 300))),
                    np.array([p[3] for p in points] + [0.0] * 300))
    assert sorted(index.match(line).tolist()) == [1, 2]
