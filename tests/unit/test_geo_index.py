"""Tests for geo.index.PointIndex: matching equals shapely.intersects_xy, updates, memory."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo import areas, municipalities
from geo.errors import InvalidPoint
from geo.index import PointIndex


def _expected(
    geometry: shapely.Geometry, keys: np.ndarray, lon: np.ndarray, lat: np.ndarray
) -> set[int]:
    return set(keys[shapely.intersects_xy(geometry, lon, lat)].tolist())


def _matched(index: PointIndex, geometry: shapely.Geometry) -> set[int]:
    found = index.match(geometry)
    assert found.dtype == np.int64
    assert len(found) == len(set(found.tolist())), "a key matched twice"
    return set(found.tolist())


def _lattice(step: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points on a lattice over [0, 10]², so many fall exactly on polygon edges and vertices."""
    xs, ys = np.meshgrid(np.arange(0, 10 + step, step), np.arange(0, 10 + step, step))
    lon, lat = xs.ravel(), ys.ravel()
    return np.arange(len(lon), dtype=np.int64) * 4 + 1, lon, lat


def _star(
    cx: float, cy: float, radius: float, arms: int, vertices: int, seed: int
) -> shapely.Polygon:
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    r = radius * (1 + 0.4 * np.cos(arms * theta)) * rng.uniform(0.9, 1.1, vertices)
    return shapely.Polygon(np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta)]))


def test_empty_index_matches_nothing() -> None:
    """An empty index has no points and matches nothing, even after build with no points."""
    index = PointIndex()
    assert len(index) == 0
    assert len(index.match(shapely.box(0, 0, 1, 1))) == 0
    index.build(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    assert len(index.match(shapely.box(0, 0, 1, 1))) == 0


def test_edges_and_vertices_count_as_inside() -> None:
    """Lattice points exactly on a polygon's edges and vertices are matched."""
    keys, lon, lat = _lattice()
    index = PointIndex(cell_deg=0.5)
    index.build(keys, lon, lat)
    square = shapely.box(2.0, 2.0, 5.0, 6.5)
    found = _matched(index, square)
    assert found == _expected(square, keys, lon, lat)
    corner = int(keys[(lon == 2.0) & (lat == 2.0)][0])
    edge = int(keys[(lon == 5.0) & (lat == 4.0)][0])
    assert {corner, edge} <= found
    diamond = shapely.Polygon([(5, 1), (9, 5), (5, 9), (1, 5)])
    assert _matched(index, diamond) == _expected(diamond, keys, lon, lat)


def test_points_in_holes_are_outside() -> None:
    """Points inside a hole are not matched; points on the hole's edge are."""
    keys, lon, lat = _lattice()
    index = PointIndex(cell_deg=0.5)
    index.build(keys, lon, lat)
    holed = shapely.Polygon(
        [(0, 0), (10, 0), (10, 10), (0, 10)], [[(3, 3), (7, 3), (7, 7), (3, 7)]]
    )
    found = _matched(index, holed)
    assert found == _expected(holed, keys, lon, lat)
    assert int(keys[(lon == 5.0) & (lat == 5.0)][0]) not in found
    assert int(keys[(lon == 3.0) & (lat == 5.0)][0]) in found


def test_multipolygons_and_outside_geometries() -> None:
    """MultiPolygon parts are all matched; geometries beyond the data's bbox match nothing."""
    keys, lon, lat = _lattice()
    index = PointIndex(cell_deg=0.5)
    index.build(keys, lon, lat)
    multi = shapely.MultiPolygon([shapely.box(1, 1, 2, 2), _star(7, 7, 1.5, 5, 200, 1)])
    assert _matched(index, multi) == _expected(multi, keys, lon, lat)
    assert _matched(index, shapely.box(20, 20, 30, 30)) == set()
    assert _matched(index, shapely.box(-5, -5, -0.01, 20)) == set()


def test_geometry_covering_everything_matches_every_point() -> None:
    """A polygon larger than the data's bbox matches every point (whole cells taken)."""
    keys, lon, lat = _lattice()
    index = PointIndex(cell_deg=0.5)
    index.build(keys, lon, lat)
    assert _matched(index, shapely.box(-1, -1, 11, 11)) == set(keys.tolist())


def test_points_and_lines_are_matched_like_intersects_xy() -> None:
    """Non-polygonal geometries match exactly the points they touch."""
    keys, lon, lat = _lattice()
    index = PointIndex(cell_deg=0.5)
    index.build(keys, lon, lat)
    line = shapely.LineString([(0, 0), (10, 10)])
    assert _matched(index, line) == _expected(line, keys, lon, lat)
    assert len(_matched(index, line)) == 41
    assert _matched(index, shapely.Point(2.5, 2.5)) == {int(keys[(lon == 2.5) & (lat == 2.5)][0])}


def test_municipality_borders_match_both_sides(table: municipalities.Table) -> None:
    """Border vertices are matched by every municipality they touch, like intersects_xy."""
    coords = np.unique(
        np.concatenate([shapely.get_coordinates(table.get(c)) for c in table.codes6()]), axis=0
    )
    rng = np.random.default_rng(3)
    inner = np.column_stack(
        [rng.uniform(139.16, 141.05, 50_000), rng.uniform(36.79, 37.98, 50_000)]
    )
    pts = np.concatenate([coords, inner])
    keys = np.arange(len(pts), dtype=np.int64)
    index = PointIndex()
    index.build(keys, pts[:, 0], pts[:, 1])
    for code in table.codes6():
        geometry = table.get(code)
        found = _matched(index, geometry)
        assert found == _expected(geometry, keys, pts[:, 0], pts[:, 1]), code
        assert set(range(len(coords))) & found, code


def test_upsert_moves_points_in_and_out() -> None:
    """Upserting a point moves it: nearby (same cell) and far moves both update matches."""
    keys, lon, lat = _lattice()
    index = PointIndex(cell_deg=0.5)
    index.build(keys, lon, lat)
    area = shapely.box(2, 2, 4, 4)
    key = int(keys[(lon == 1.0) & (lat == 1.0)][0])
    assert key not in _matched(index, area)
    index.upsert(key, 3.0, 3.0)  # far: into the area
    assert key in _matched(index, area)
    index.upsert(key, 3.01, 3.01)  # same cell move
    assert key in _matched(index, area)
    index.upsert(key, 4.0, 3.5)  # onto the edge
    assert key in _matched(index, area)
    index.upsert(key, 4.0001, 3.5)  # just out
    assert key not in _matched(index, area)
    index.upsert(key, 1.0, 1.0)  # back home
    assert key not in _matched(index, area)
    assert len(index) == len(keys)
    lon2, lat2 = lon.copy(), lat.copy()
    assert _matched(index, area) == _expected(area, keys, lon2, lat2)


def test_remove_reupsert_and_duplicates() -> None:
    """Removed keys stop matching, can come back, and duplicate upserts keep one entry."""
    keys, lon, lat = _lattice()
    index = PointIndex(cell_deg=0.5)
    index.build(keys, lon, lat)
    area = shapely.box(2, 2, 4, 4)
    key = int(keys[(lon == 3.0) & (lat == 3.0)][0])
    index.remove(key)
    index.remove(key)
    assert key not in index and len(index) == len(keys) - 1
    assert key not in _matched(index, area)
    index.upsert(key, 3.0, 3.0)
    assert key in index and key in _matched(index, area)
    new = 10**12 + 7
    index.upsert(new, 3.5, 3.5)
    index.upsert(new, 3.6, 3.6)
    assert len(index) == len(keys) + 1
    assert new in _matched(index, area)
    index.upsert(new, 9.5, 9.5)
    assert new not in _matched(index, area)
    index.remove(new)
    index.remove(12345678)
    assert new not in index and len(index) == len(keys)


def test_upserts_into_an_empty_index() -> None:
    """An index filled only by upserts matches like intersects_xy, its points outside any grid."""
    index = PointIndex()
    index.upsert(1, 140.0, 37.0)
    index.upsert(2, 140.5, 37.5)
    index.upsert(3, 141.0, 38.0)
    assert _matched(index, shapely.box(139.9, 36.9, 140.6, 37.5)) == {1, 2}


def test_randomised_equivalence_with_intersects_xy() -> None:
    """On 100k random points, matches equal shapely.intersects_xy for varied polygons and edits."""
    rng = np.random.default_rng(12345)
    n = 100_000
    lon = rng.uniform(139.16, 141.05, n)
    lat = rng.uniform(36.79, 37.98, n)
    keys = rng.permutation(n).astype(np.int64) * 4 + 2
    index = PointIndex()
    index.build(keys, lon, lat)
    big = shapely.box(139.3, 36.9, 140.9, 37.9)
    holed = shapely.Polygon(
        shapely.get_coordinates(_star(140.1, 37.4, 0.3, 7, 800, 2)),
        [shapely.get_coordinates(_star(140.1, 37.4, 0.08, 3, 100, 3))],
    )
    geometries = [
        big,
        holed,
        _star(140.6, 37.2, 0.2, 9, 2000, 4),
        shapely.MultiPolygon(
            [_star(139.6, 37.6, 0.15, 4, 300, 5), shapely.box(140.8, 36.7, 141.2, 37.0)]
        ),
        shapely.box(139.0, 36.0, 142.0, 39.0),
    ]
    assert shapely.is_valid(holed)
    for geometry in geometries:
        assert _matched(index, geometry) == _expected(geometry, keys, lon, lat)
    # Edits: moves near and far, removals, new keys; then the same check.
    moved = rng.choice(n, 3000, replace=False)
    lon[moved[:1500]] += rng.uniform(-1e-4, 1e-4, 1500)
    lon[moved[1500:]] = rng.uniform(139.16, 141.05, 1500)
    for i in moved:
        index.upsert(int(keys[i]), float(lon[i]), float(lat[i]))
    gone = rng.choice(n, 500, replace=False)
    for i in gone:
        index.remove(int(keys[i]))
    alive = np.ones(n, dtype=bool)
    alive[gone] = False
    extra = np.arange(n, n + 500, dtype=np.int64) * 4 + 3
    extra_lon, extra_lat = rng.uniform(139.9, 140.4, 500), rng.uniform(37.2, 37.6, 500)
    for k, x, y in zip(extra, extra_lon, extra_lat, strict=True):
        index.upsert(int(k), float(x), float(y))
    all_keys = np.concatenate([keys[alive], extra])
    all_lon = np.concatenate([lon[alive], extra_lon])
    all_lat = np.concatenate([lat[alive], extra_lat])
    assert len(index) == len(all_keys)
    for geometry in geometries:
        assert _matched(index, geometry) == _expected(geometry, all_keys, all_lon, all_lat)


def test_compaction_folds_the_delta() -> None:
    """Beyond the delta limit the index compacts itself and still matches correctly."""
    rng = np.random.default_rng(7)
    n = 20_000
    lon, lat = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    keys = np.arange(n, dtype=np.int64)
    index = PointIndex()
    index.build(keys, lon, lat)
    for i in range(1500):
        lon[i], lat[i] = rng.uniform(0, 1), rng.uniform(0, 1)
        index.upsert(i, float(lon[i]), float(lat[i]))
    assert index.pending() < 1500
    area = _star(0.5, 0.5, 0.3, 6, 500, 8)
    assert _matched(index, area) == _expected(area, keys, lon, lat)
    index.compact()
    assert index.pending() == 0
    assert _matched(index, area) == _expected(area, keys, lon, lat)


def test_random_edits_across_compactions() -> None:
    """Rounds of moves, removals and inserts, compacted in place or rebuilt, keep matches exact."""
    rng = np.random.default_rng(11)
    n = 30_000
    keys = rng.permutation(n).astype(np.int64) * 3
    truth = dict(
        zip(
            keys.tolist(), zip(rng.uniform(0, 1, n), rng.uniform(0, 1, n), strict=True), strict=True
        )
    )
    index = PointIndex()
    index.build(keys, *map(np.array, zip(*truth.values(), strict=True)))
    area = _star(0.5, 0.5, 0.3, 5, 400, 12)
    for round_ in range(6):
        # The last round moves points beyond the grid, so compaction must rebuild it.
        spread = 2.0 if round_ == 5 else 1.0
        for key in rng.choice(keys, 600).tolist():
            x, y = truth.get(key, (0.5, 0.5))
            truth[key] = (float(np.clip(x + rng.normal(0, 1e-3), 0, 1)), y)
            index.upsert(key, *truth[key])
        for key in rng.choice(keys, 600).tolist():
            truth[key] = (float(rng.uniform(0, spread)), float(rng.uniform(0, 1)))
            index.upsert(key, *truth[key])
        for key in rng.choice(keys, 300).tolist():
            truth.pop(key, None)
            index.remove(key)
        for key in rng.integers(10**10, 10**10 + 10**6, 300).tolist():
            truth[key] = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)))
            index.upsert(key, *truth[key])
        index.compact()
        assert index.pending() == 0
        all_keys = np.array(list(truth), dtype=np.int64)
        xy = np.array(list(truth.values()))
        assert len(index) == len(all_keys)
        assert all(int(k) in index for k in all_keys[:2000])
        assert _matched(index, area) == _expected(area, all_keys, xy[:, 0], xy[:, 1])


def test_memory_per_point() -> None:
    """The steady-state index holds at most 48 bytes per point."""
    rng = np.random.default_rng(9)
    n = 200_000
    index = PointIndex()
    index.build(np.arange(n, dtype=np.int64), rng.uniform(139, 141, n), rng.uniform(36.8, 38, n))
    assert index.nbytes() / len(index) <= 48


@pytest.mark.parametrize(
    ("keys", "lon", "lat", "reason"),
    [
        ([1, 2, 1], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], "duplicate key 1"),
        ([1, 2], [0.0, float("nan")], [0.0, 1.0], "point 1"),
        ([1, 2], [0.0, 181.0], [0.0, 1.0], "point 1"),
        ([1, 2], [0.0, 1.0], [0.0], "same length"),
    ],
)
def test_build_refuses_bad_input(
    keys: list[int], lon: list[float], lat: list[float], reason: str
) -> None:
    """build refuses duplicate keys, non-finite or out-of-range positions and ragged arrays."""
    index = PointIndex()
    with pytest.raises(InvalidPoint, match=reason):
        index.build(np.array(keys), np.array(lon), np.array(lat))


def test_upsert_refuses_bad_positions() -> None:
    """upsert refuses bad positions and keys beyond int64, leaving the index unchanged."""
    index = PointIndex()
    with pytest.raises(InvalidPoint):
        index.upsert(1, float("inf"), 0.0)
    with pytest.raises(InvalidPoint):
        index.upsert(1, 0.0, 95.0)
    with pytest.raises(InvalidPoint, match="64 bits"):
        index.upsert(2**63, 0.0, 0.0)
    index.remove(2**64)
    assert len(index) == 0


# Accuracy circles. The square and the circle lie in Fukushima; distances are on the sphere.
_SQUARE = shapely.box(140.0, 37.5, 140.02, 37.52)
_CAP = 161.0


def _east_of_square(metres: float) -> tuple[float, float]:
    """A point due east of the square's east edge (a meridian), ``metres`` from it."""
    lon, lat = areas.destination(140.02, 37.51, 90.0, metres)
    return float(lon), float(lat)


def _accuracy_points() -> list[tuple[str, float, float, float]]:
    """(name, lon, lat, accuracy_m) of points around the square."""
    corner_lon, corner_lat = areas.destination(140.02, 37.52, 45.0, 141.42)
    north_lon, north_lat = areas.destination(140.01, 37.52, 0.0, 100.0)
    return [
        ("100 m out, no accuracy", *_east_of_square(100.0), 0.0),
        ("100 m out, 50 m", *_east_of_square(100.0), 50.0),
        ("100 m out, 99 m", *_east_of_square(100.0), 99.0),
        ("100 m out, 101 m", *_east_of_square(100.0), 101.0),
        ("100 m out, 150 m", *_east_of_square(100.0), 150.0),
        ("150 m out, 5 km (capped at 161)", *_east_of_square(150.0), 5000.0),
        ("170 m out, 5 km (capped at 161)", *_east_of_square(170.0), 5000.0),
        ("1 km out, 100 km (capped at 161)", *_east_of_square(1000.0), 100_000.0),
        ("inside, 100 km", 140.01, 37.51, 100_000.0),
        ("inside, no accuracy", 140.01, 37.51, 0.0),
        ("100 m north, 120 m", float(north_lon), float(north_lat), 120.0),
        ("141 m off the corner, 150 m", float(corner_lon), float(corner_lat), 150.0),
        ("141 m off the corner, 130 m", float(corner_lon), float(corner_lat), 130.0),
    ]


_MATCHED = {"100 m out, 101 m", "100 m out, 150 m", "150 m out, 5 km (capped at 161)",
            "inside, 100 km", "inside, no accuracy", "100 m north, 120 m",
            "141 m off the corner, 150 m"}


def _index_of(points: list[tuple[str, float, float, float]], how: str,
              cap: float = _CAP) -> PointIndex:
    """An index of the points: built at once, upserted into an empty index, upserted into a
    built one (the delta), or upserted and compacted."""
    index = PointIndex(cell_deg=0.001, accuracy_cap_m=cap)
    # Far-away filler, so that the grid is fitted to more than these points.
    rng = np.random.default_rng(3)
    filler_lon, filler_lat = rng.uniform(139.0, 141.0, 500), rng.uniform(36.8, 38.0, 500)
    filler_lat[filler_lat > 37.4] += 0.2  # none near the square
    filler_keys = np.arange(10_000, 10_500, dtype=np.int64)
    keys = np.arange(len(points), dtype=np.int64)
    lon = np.array([p[1] for p in points])
    lat = np.array([p[2] for p in points])
    acc = np.array([p[3] for p in points])
    if how == "built":
        index.build(np.concatenate([keys, filler_keys]), np.concatenate([lon, filler_lon]),
                    np.concatenate([lat, filler_lat]),
                    np.concatenate([acc, np.zeros(500)]))
        return index
    if how in ("delta", "compacted"):
        index.build(filler_keys, filler_lon, filler_lat)
    for k, x, y, a in zip(keys, lon, lat, acc, strict=True):
        index.upsert(int(k), float(x), float(y), float(a))
    if how == "compacted":
        index.compact()
        assert index.pending() == 0
    return index


@pytest.mark.parametrize("how", ["built", "upserted", "delta", "compacted"])
def test_accuracy_reaching_the_area_matches(how: str) -> None:
    """A point outside the area matches exactly when the area lies within its accuracy,
    capped at 161 m: 100 m out matches with 101 m or more and not with 99 m or less, inside
    matches whatever the accuracy, 1 km out never matches however large the accuracy."""
    points = _accuracy_points()
    index = _index_of(points, how)
    found = {points[k][0] for k in _matched(index, _SQUARE) if k < len(points)}
    assert found == _MATCHED


def test_without_a_cap_accuracy_is_ignored() -> None:
    """An index whose accuracy cap is 0 matches only the points inside the area."""
    points = _accuracy_points()
    index = _index_of(points, "built", cap=0.0)
    found = {points[k][0] for k in _matched(index, _SQUARE) if k < len(points)}
    assert found == {"inside, 100 km", "inside, no accuracy"}


def test_accuracy_reaching_a_circle_matches() -> None:
    """Around a 1 km circle area, a point 100 m beyond its edge matches with a 105 m accuracy
    and not with 95 m; 300 m beyond, not even with 5 km (the cap)."""
    circle = areas.circle_polygon(140.3, 37.3, 1000.0, 64)
    # Bearing 360/128 points at the middle of a side, which lies 1,000 m from the centre.
    near_x, near_y = areas.destination(140.3, 37.3, 2.8125, 1100.0)
    far_x, far_y = areas.destination(140.3, 37.3, 2.8125, 1300.0)
    index = PointIndex(cell_deg=0.001, accuracy_cap_m=_CAP)
    index.build(np.array([1, 2, 3]), np.array([near_x, far_x, near_x]),
                np.array([near_y, far_y, near_y]), np.array([105.0, 5000.0, 95.0]))
    assert _matched(index, circle) == {1}


def _reference(geometry: shapely.Geometry, lon: np.ndarray, lat: np.ndarray,
               reach_m: np.ndarray) -> np.ndarray:
    """Brute force: inside, or the distance to the geometry measured in a flat projection
    centred on each point (metres east and north of it); None where the two are too close."""
    inside = shapely.intersects_xy(geometry, lon, lat)
    out = inside.astype(object)
    k = np.pi / 180 * areas.EARTH_RADIUS_M
    for i in np.flatnonzero(~inside):
        cos = np.cos(np.radians(lat[i]))

        def flat(c: np.ndarray, i: int = i, cos: float = cos) -> np.ndarray:
            return np.column_stack([(c[:, 0] - lon[i]) * cos * k, (c[:, 1] - lat[i]) * k])

        d = shapely.distance(shapely.transform(geometry, flat), shapely.Point(0, 0))
        out[i] = None if abs(d - reach_m[i]) < 0.05 else bool(d <= reach_m[i])
    return out


@pytest.mark.parametrize("cell_deg", [0.01, 0.0005])
def test_randomised_accuracy_matching_equals_brute_force(cell_deg: float) -> None:
    """Over random points with random accuracies around a star-shaped area (with a hole),
    in the base and in the delta, matching equals inside-or-within-capped-accuracy computed
    by brute force."""
    rng = np.random.default_rng(41)
    area = shapely.difference(_star(140.2, 37.4, 0.03, 5, 200, seed=4),
                              shapely.Point(140.2, 37.4).buffer(0.006))
    n = 6000
    lon, lat = rng.uniform(140.14, 140.26, n), rng.uniform(37.35, 37.45, n)
    acc = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.0, 400.0, n))
    keys = np.arange(n, dtype=np.int64)
    index = PointIndex(cell_deg=cell_deg, accuracy_cap_m=_CAP)
    index.build(keys[: n // 2], lon[: n // 2], lat[: n // 2], acc[: n // 2])
    for i in range(n // 2, n):
        index.upsert(i, lon[i], lat[i], acc[i])
    capped = np.minimum(acc.astype(np.float32).astype(np.float64), _CAP)
    expected = _reference(area, lon, lat, capped)
    found = _matched(index, area)
    decided = [i for i in range(n) if expected[i] is not None]
    assert len(decided) > n - 10
    assert {i for i in decided if expected[i]} == {i for i in decided if i in found}
    near = sum(1 for i in decided if expected[i] and not area.intersects(
        shapely.Point(lon[i], lat[i])))
    assert near > 100  # the accuracy circles did decide many points
