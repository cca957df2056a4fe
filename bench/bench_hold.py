"""What four-eyes adds to issuing an order: the hold check (match the area, count the
reachable devices) against accepting the same order, in process, over N devices.

With `orders.approval_over_devices` on (the default), every staff order is counted before it
is accepted: `staff_approvals.held` matches the area against the point index and counts the
devices with an active push token. Baseline, same run: `pipeline.accept` of the same order
(matching, rendering, COPY of the deliveries), which issuing does anyway. Runs alternate; the
deliveries are truncated between accepts. Not part of the test suite:

    .venv/bin/python bench/bench_hold.py [--devices 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from bench_fanout import CITY, city_points

from alertd import app, db, devices, orders, pipeline, points, settings
from geo import municipalities

ORDER = {"level": 5, "hazard": "flood", "area": {"area_codes": [CITY]},
         "headline": {"ja": "緊急安全確保 ベンチマーク"}}


async def main(n: int, rounds: int) -> int:
    """Seed, alternate the hold check and accept, print the comparison."""
    cfg = settings.load([])
    table = municipalities.Table.load(app.areas_path(cfg))
    lon, lat = city_points(n)
    platforms = ["ios" if i % 2 else "android" for i in range(n)]
    tokens = [f"hold-{i:06d}" for i in range(n)]
    check: list[float] = []
    accept: list[float] = []
    async with harness.database("alertd_bench_hold") as url:
        await harness.seed(url, platforms, tokens, lon, lat)
        pool = await db.connect(url, min_size=1, max_size=2)
        try:
            live = points.Points(index=points.new_index(cfg), table=table)
            async with pool.acquire() as conn:
                await points.load(conn, live)
            spec = orders.parse_spec(ORDER, table, cfg.orders, datetime.now(UTC))
            for r in range(rounds + 1):  # the first round warms up
                started = time.perf_counter()
                match = live.match(spec.area.geometry, spec.area.area_codes)
                count = await devices.count_reachable(pool, match.seqs.tolist())
                held = time.perf_counter() - started
                async with pool.acquire() as conn:
                    started = time.perf_counter()
                    accepted = await pipeline.accept(conn, live, spec)
                    took = time.perf_counter() - started
                    await conn.execute("TRUNCATE deliveries CASCADE")
                if count != n or accepted.devices != n:
                    raise RuntimeError(f"counted {count}, accepted {accepted.devices}, not {n}")
                if r:
                    check.append(held)
                    accept.append(took)
                    print(f"round {r} hold check {held * 1000:7.1f} ms  accept {took:6.2f} s",
                          flush=True)
        finally:
            await pool.close()
    c, a = statistics.median(check), statistics.median(accept)
    print(f"\n{n:,} devices, {rounds} rounds (medians): hold check {c * 1000:.1f} ms, "
          f"accept {a:.2f} s: the check adds {c / a:.1%} to issuing")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.devices, args.rounds)))
