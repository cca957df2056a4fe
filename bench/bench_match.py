"""Benchmark geo.index.PointIndex.match against a numpy bbox prefilter + shapely.contains_xy.

Points are spread uniformly over Fukushima's bounding box; the area is an irregular 2,000-vertex
star covering about 5 % of that box. Both methods run in the same process, several times, and
the medians are compared. Not part of the test suite:

    .venv/bin/python bench/bench_match.py [--sizes 1000000,10000000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import shapely

from geo.index import PointIndex

BBOX = (139.16, 36.79, 141.05, 37.98)
SEED = 20240601
Ints = npt.NDArray[np.int64]


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


def timed(fn: Callable[[], Ints], repeats: int) -> tuple[float, Ints]:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs, and its last result."""
    times = []
    result = np.zeros(0, dtype=np.int64)
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def run(n: int, polygon: shapely.Polygon, repeats: int) -> None:
    """Generate ``n`` points, time both methods and print the comparison."""
    rng = np.random.default_rng(SEED)
    minx, miny, maxx, maxy = BBOX
    lon = rng.uniform(minx, maxx, n)
    lat = rng.uniform(miny, maxy, n)
    keys = (np.arange(n, dtype=np.int64) * 4) + 1
    px0, py0, px1, py1 = shapely.bounds(polygon)

    def baseline() -> Ints:
        near = np.flatnonzero((lon >= px0) & (lon <= px1) & (lat >= py0) & (lat <= py1))
        found: Ints = keys[near[shapely.contains_xy(polygon, lon[near], lat[near])]]
        return found

    index = PointIndex()
    start = time.perf_counter()
    index.build(keys, lon, lat)
    build_s = time.perf_counter() - start

    base_s, base_hits = timed(baseline, repeats)
    engine_s, engine_hits = timed(lambda: index.match(polygon), repeats)
    same = np.array_equal(np.sort(base_hits), np.sort(engine_hits))
    print(f"points              {n:,}")
    print(f"hits                {len(base_hits):,} ({len(base_hits) / n:.2%})")
    print(f"build (once)        {build_s * 1e3:9.1f} ms")
    print(f"baseline median     {base_s * 1e3:9.2f} ms  (bbox prefilter + contains_xy)")
    print(f"engine median       {engine_s * 1e3:9.2f} ms  (PointIndex.match)")
    print(f"ratio               {base_s / engine_s:9.1f} x   (target >= 4)")
    print(f"bytes per point     {index.nbytes() / len(index):9.1f}     (target <= 48)")
    print(f"identical hits      {same}")
    assert same, "engine and baseline disagree"


def main() -> None:
    """Parse the arguments and run each size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated point counts")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method")
    args = parser.parse_args()
    polygon = star_polygon()
    minx, miny, maxx, maxy = BBOX
    print(
        f"polygon: {shapely.get_num_coordinates(polygon) - 1} vertices, "
        f"{polygon.area / ((maxx - minx) * (maxy - miny)):.1%} of the bbox, "
        f"perimeter {polygon.length:.2f} deg, valid={polygon.is_valid}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        print()
        run(size, polygon, args.repeats)


if __name__ == "__main__":
    main()
