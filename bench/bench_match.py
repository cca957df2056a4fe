"""Benchmark geo.index.PointIndex.match against a numpy bbox prefilter + shapely.contains_xy.

Points are spread uniformly over Fukushima's bounding box; each area is a 2,000-vertex polygon
covering about 5 % of that box: "star", an irregular star with a smooth-ish edge, and "spiky",
a worst case whose every vertex has a random radius. Both methods run in the same process,
several times, and the medians are compared.

A second index holds the same points with an accuracy on every point (5 to 300 m, uniform;
capped at 161 m as orders.accuracy_cap_m is by default), so it also matches the points outside
within their accuracy of the area; it is timed against the same baseline (which ignores
accuracy, as matching did before accuracy circles). Keys follow alertd.points (device
seq * SLOTS + slot): every other point is a device's location, the next a place of its sheet;
the step from keys to devices (each once) and to the devices reached through a sheet place
(Match.sheet_seqs) is timed on the accuracy index's hits. Not part of the test suite:

    .venv/bin/python bench/bench_match.py [--sizes 1000000,10000000] [--shapes star,spiky]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import shapely

from alertd import points
from geo import reach
from geo.index import PointIndex

BBOX = (139.16, 36.79, 141.05, 37.98)
SEED = 20240601
ACCURACY_CAP_M = 161.0
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def star_polygon(vertices: int = 2000, fraction: float = 0.05, seed: int = 7) -> shapely.Polygon:
    """An irregular star: random low harmonics, seven arms, 2 % vertex jitter, fixed seed."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    radius = np.ones(vertices)
    for k in range(1, 9):
        radius += rng.uniform(-0.25, 0.25) / k**0.5 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radius += 0.35 * np.maximum(0, np.cos(7 * theta)) ** 2
    radius *= 1 + rng.uniform(-0.02, 0.02, vertices)
    x, y = np.cos(theta) * radius, np.sin(theta) * radius
    unit = shapely.Polygon(np.column_stack([x, y]))
    minx, miny, maxx, maxy = BBOX
    scale = np.sqrt(fraction * (maxx - minx) * (maxy - miny) / unit.area)
    cx, cy = 140.1, 37.4
    return shapely.Polygon(np.column_stack([cx + x * scale, cy + y * scale]))


def spiky_polygon(vertices: int = 2000, fraction: float = 0.05, seed: int = 7) -> shapely.Polygon:
    """A worst case: every vertex at a random radius (±30 %), so the edge is spikes throughout."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    radius = 1 + rng.uniform(-0.3, 0.3, vertices)
    x, y = np.cos(theta) * radius, np.sin(theta) * radius
    unit = shapely.Polygon(np.column_stack([x, y]))
    minx, miny, maxx, maxy = BBOX
    scale = np.sqrt(fraction * (maxx - minx) * (maxy - miny) / unit.area)
    return shapely.Polygon(np.column_stack([140.1 + x * scale, 37.4 + y * scale]))


SHAPES = {"star": star_polygon, "spiky": spiky_polygon}


def timed(fn: Callable[[], Ints], repeats: int) -> tuple[float, Ints]:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs, and its last result."""
    times = []
    result = np.zeros(0, dtype=np.int64)
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def baseline(polygon: shapely.Polygon, keys: Ints, lon: Floats, lat: Floats) -> Ints:
    """The reference: a numpy bounding-box prefilter, then shapely.contains_xy on the rest."""
    px0, py0, px1, py1 = shapely.bounds(polygon)
    near = np.flatnonzero((lon >= px0) & (lon <= px1) & (lat >= py0) & (lat <= py1))
    found: Ints = keys[near[shapely.contains_xy(polygon, lon[near], lat[near])]]
    return found


def check_accuracy(polygon: shapely.Polygon, base_hits: Ints, hits: Ints, keys: Ints,
                   lon: Floats, lat: Floats, acc: Floats) -> int:
    """Check the accuracy index's answer against the baseline: every point inside is found,
    and every other point found lies within its accuracy (capped) of the polygon (measured
    by geo.reach on those points alone). Returns how many points matched by accuracy."""
    inside = set(base_hits.tolist())
    extra = np.array(sorted(set(hits.tolist()) - inside), dtype=np.int64)
    assert inside <= set(hits.tolist()), "a point inside was missed"
    near = reach.around(polygon, ACCURACY_CAP_M)
    assert near is not None
    pos = np.searchsorted(keys, extra)
    capped = np.minimum(acc[pos], ACCURACY_CAP_M)
    assert near.within(lon[pos], lat[pos], capped).all(), "a point beyond its accuracy"
    return len(extra)


def run(n: int, polygons: dict[str, shapely.Polygon], repeats: int) -> None:
    """Generate ``n`` points, build the indexes once, time the methods per polygon, print."""
    rng = np.random.default_rng(SEED)
    minx, miny, maxx, maxy = BBOX
    lon = rng.uniform(minx, maxx, n)
    lat = rng.uniform(miny, maxy, n)
    acc = rng.uniform(5.0, 300.0, n)
    i = np.arange(n, dtype=np.int64)
    keys = (i // 2) * points.SLOTS + np.where(i % 2 == 0, 0, points.SHEET_SLOT)
    index = PointIndex()
    start = time.perf_counter()
    index.build(keys, lon, lat)
    build_s = time.perf_counter() - start
    accurate = PointIndex(accuracy_cap_m=ACCURACY_CAP_M)
    accurate.build(keys, lon, lat, acc)
    print(f"points              {n:,}")
    print(f"build (once)        {build_s * 1e3:9.1f} ms")
    print(f"bytes per point     {accurate.nbytes() / len(accurate):9.1f}     (target <= 48)")
    for name, polygon in polygons.items():
        base_s, base_hits = timed(functools.partial(baseline, polygon, keys, lon, lat), repeats)
        engine_s, engine_hits = timed(functools.partial(index.match, polygon), repeats)
        acc_s, acc_hits = timed(functools.partial(accurate.match, polygon), repeats)
        same = np.array_equal(np.sort(base_hits), np.sort(engine_hits))
        extra = check_accuracy(polygon, base_hits, acc_hits, keys, lon, lat, acc)
        print(f"  [{name}] hits            {len(base_hits):,} ({len(base_hits) / n:.2%})")
        print(f"  [{name}] baseline median {base_s * 1e3:9.2f} ms  (bbox prefilter + contains_xy)")
        print(f"  [{name}] engine median   {engine_s * 1e3:9.2f} ms  (PointIndex.match)")
        print(f"  [{name}] ratio           {base_s / engine_s:9.1f} x   (target >= 4)")
        print(f"  [{name}] identical hits  {same}")
        print(f"  [{name}] with accuracy   {acc_s * 1e3:9.2f} ms  (every point 5-300 m, "
              f"+{extra:,} hits by accuracy)")
        print(f"  [{name}] ratio           {base_s / acc_s:9.1f} x   (same baseline)")
        dev_s, seqs = timed(lambda hits=acc_hits: points.matched(hits).seqs, repeats)
        sheet_s, sheet_seqs = timed(points.matched(acc_hits).sheet_seqs, repeats)
        print(f"  [{name}] to devices      {dev_s * 1e3:9.2f} ms  ({len(seqs):,} devices; "
              f"sheet_seqs {sheet_s * 1e3:.2f} ms, {len(sheet_seqs):,} through a sheet)")
        assert same, f"engine and baseline disagree on {name}"


def main() -> None:
    """Parse the arguments and run each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated point counts")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method")
    parser.add_argument("--shapes", default="star,spiky", help=f"polygons among {list(SHAPES)}")
    args = parser.parse_args()
    minx, miny, maxx, maxy = BBOX
    polygons = {name: SHAPES[name]() for name in args.shapes.split(",")}
    for name, polygon in polygons.items():
        print(
            f"polygon {name}: {shapely.get_num_coordinates(polygon) - 1} vertices, "
            f"{polygon.area / ((maxx - minx) * (maxy - miny)):.1%} of the bbox, "
            f"perimeter {polygon.length:.2f} deg, valid={polygon.is_valid}"
        )
    for size in (int(s) for s in args.sizes.split(",")):
        print()
        run(size, polygons, args.repeats)


if __name__ == "__main__":
    main()
