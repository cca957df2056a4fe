"""Tests for geo.index.PointIndex: matching equals shapely.intersects_xy, updates, memory."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo import municipalities
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
