"""Accepting one order over 100,000 devices, with and without households' plans, in process.

`pipeline.accept` (matching, loading sheets and shelters, rendering, COPY of the deliveries)
for an order over Fukushima City reaching every seeded device, timed on its own (no daemon, no
sending). Baseline, same run: the same call with plan loading switched off (the text per
language alone, as before sheets spoke in pushes). Runs alternate baseline, plans, baseline,
…; the deliveries are truncated between runs. `--sheets N` gives the first N devices a live
sheet (home at their location, a shelter destination, a flood trigger) and opens 50 shelters
in the city, to see what personal text costs. Not part of the test suite:

    .venv/bin/python bench/bench_plans.py [--devices 100000] [--sheets 0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from bench_fanout import CITY, city_points

from alertd import app, db, households, orders, pipeline, plans, points, render, settings
from geo import municipalities

ORDER = {"level": 4, "hazard": "flood", "area": {"area_codes": [CITY]},
         "headline": {"ja": "避難指示 ベンチマーク"}}


async def seed_sheets(conn: asyncpg.Connection, n: int, lon: list[float], lat: list[float]
                      ) -> None:
    """50 shelters in the city (every other one open) and a sheet for the first n devices."""
    await conn.execute(
        "INSERT INTO shelters (id, name, address, lat, lon, hazards, status, crowding, kind,"
        " source_format)"
        " SELECT 'B-' || i, 'ベンチ避難所' || i, '', ($1::float8[])[i], ($2::float8[])[i],"
        " '{flood}', CASE WHEN i % 2 = 0 THEN 'open' ELSE 'not_open' END,"
        " CASE WHEN i % 2 = 0 THEN 'low' END, 'shelter', 'bench' FROM generate_series(1, 50) i",
        lat[-50:], lon[-50:])
    await conn.execute(
        "INSERT INTO sheets (device_id, id, version, body)"
        " SELECT d.id, gen_random_uuid(), 1, jsonb_build_object('name', 'bench',"
        "  'places', jsonb_build_array(jsonb_build_object('kind', 'home', 'lat', p.lat,"
        "  'lon', p.lon)), 'triggers', jsonb_build_object('flood', 3 + d.seq % 2),"
        "  'destinations', jsonb_build_array(jsonb_build_object('kind', 'shelter',"
        "  'shelter_id', 'B-' || (1 + d.seq % 50))))"
        " FROM devices d JOIN device_points p ON p.device_id = d.id AND p.slot = 0"
        " ORDER BY d.seq LIMIT $1", n)
    await conn.execute("ANALYZE sheets")


async def timed(conn: asyncpg.Connection, live: points.Points, spec: orders.OrderSpec,
                devices: int) -> float:
    """Seconds one accept takes; its deliveries are dropped afterwards."""
    started = time.perf_counter()
    accepted = await pipeline.accept(conn, live, spec)
    elapsed = time.perf_counter() - started
    if accepted.devices != devices:
        raise RuntimeError(f"the order reached {accepted.devices} devices, not {devices}")
    await conn.execute("TRUNCATE deliveries")
    return elapsed


async def main(devices: int, sheets: int, rounds: int) -> int:
    """Seed, alternate baseline and plan runs, print the comparison."""
    cfg = settings.load([])
    table = municipalities.Table.load(app.areas_path(cfg))
    lon, lat = city_points(devices)
    platforms = ["ios" if i % 2 else "android" for i in range(devices)]
    tokens = [f"plans-{i:06d}" for i in range(devices)]
    async with harness.database("alertd_bench_plans") as url:
        await harness.seed(url, platforms, tokens, lon, lat)
        conn = await db.connect_one(url)
        try:
            if sheets:
                await seed_sheets(conn, sheets, lon, lat)
            live = points.Points(index=points.new_index(cfg), table=table)
            await points.load(conn, live)
            spec = orders.parse_spec(ORDER, table, cfg.orders, datetime.now(UTC))
            real = households.plans_for

            async def none(*_: Any) -> dict[Any, render.Plan]:
                return {}

            variants: list[tuple[str, Callable[..., Awaitable[dict[Any, render.Plan]]]]] = [
                ("baseline", none), ("plans", real)]
            times: dict[str, list[float]] = {"baseline": [], "plans": []}
            await timed(conn, live, spec, devices)  # warm up caches and templates
            for r in range(rounds):
                for name, call in variants:
                    households.plans_for = call  # type: ignore[assignment]
                    times[name].append(await timed(conn, live, spec, devices))
                    print(f"round {r + 1} {name:8} {times[name][-1]:6.2f} s", flush=True)
            households.plans_for = real  # type: ignore[assignment]
            alert = plans.Alert(spec.area.geometry, spec.level, spec.hazard)
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM devices")]
            started = time.perf_counter()
            found = await households.plans_for(conn, ids, alert)
            alone = time.perf_counter() - started
        finally:
            await conn.close()
    base, mine = statistics.median(times["baseline"]), statistics.median(times["plans"])
    print(f"\n{devices:,} devices, {sheets:,} with a sheet, {rounds} rounds (medians)")
    print(f"accept without plans (baseline) {base:6.2f} s")
    print(f"accept with plans               {mine:6.2f} s   ratio baseline/plans"
          f" {base / mine:.2f}")
    print(f"households.plans_for alone      {alone:6.2f} s   ({len(found):,} plans)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--sheets", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.devices, options.sheets, options.rounds)))
