"""Benchmark the JMA heads-up of a report: episodes, candidate sheets, matching, pushes.

Seeds N devices, each with one sheet (home spread over six municipalities, half of them warned
by sample 10 moved to Fukushima; triggers 3 or 4 for inland flooding), then times
`headsup.apply` for the first report (episodes start, pushes queued) and for a continuation
(nothing new: every device already told), against a baseline in the same run: one query that
reads every live sheet body, what any heads-up must at least do. Not part of the tests:

    .venv/bin/python bench/bench_headsup.py [--devices 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
import uuid
from pathlib import Path

from alertd import db, settings
from alertd.ingest import headsup
from feeds import jma
from geo import municipalities

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests/fixtures/jma/10_jmaxml_VPWW55_R06_heavyrain_level_warning.xml"
# (lat, lon): 福島市, 会津若松市, いわき市 are warned by the moved sample; the others are not.
HOMES = ((37.75, 140.45), (37.49, 139.93), (37.05, 140.89),
         (37.40, 140.38), (37.60, 140.20), (37.20, 140.00))


def report(hour: str) -> jma.JmaReport:
    """Sample 10 moved to prefecture 07 at this hour."""
    text = SAMPLE.read_bytes().replace(b"<Code>32", b"<Code>07").decode()
    return jma.parse(re.sub(r"<ReportDateTime>[^<]+</ReportDateTime>",
                            f"<ReportDateTime>2026-06-01T{hour}:00+09:00</ReportDateTime>",
                            text).encode())


async def seed_sheets(url: str, n: int) -> None:
    """n devices with one sheet each (COPY)."""
    rng = random.Random(7)
    conn = await db.connect_one(url)
    try:
        ids = [uuid.uuid4() for _ in range(n)]
        await conn.copy_records_to_table(
            "devices", columns=("id", "platform", "push_token", "secret_hash"),
            records=[(i, "ios", f"t{k}", os.urandom(32)) for k, i in enumerate(ids)])
        rows = []
        for i in ids:
            lat, lon = rng.choice(HOMES)
            body = {"name": "家", "triggers": {"inland_flood": rng.choice((3, 4))},
                    "places": [{"kind": "home", "lat": lat + rng.uniform(-.01, .01),
                                "lon": lon + rng.uniform(-.01, .01)}]}
            rows.append((i, uuid.uuid4(), 1, json.dumps(body)))
        await conn.execute("CREATE TEMP TABLE seed (device_id uuid, id uuid, version bigint,"
                           " body text)")
        await conn.copy_records_to_table("seed", records=rows)
        await conn.execute("INSERT INTO sheets (device_id, id, version, body)"
                           " SELECT device_id, id, version, body::jsonb FROM seed")
        await conn.execute("ANALYZE sheets")
    finally:
        await conn.close()


async def main(n: int) -> None:
    """Seed, then time the baseline and the two reports."""
    async with harness.database("bench_headsup") as url:
        await seed_sheets(url, n)
        cfg = settings.load(environ={"ALERTD_DATABASE_URL": url})
        table = municipalities.load(cfg.geo.areas_file
                                    or ROOT / "config/areas/fukushima_areas.geojson")
        conn = await db.connect_one(url)
        try:
            started = time.perf_counter()
            await conn.fetch("SELECT device_id, body FROM sheets WHERE NOT deleted")
            baseline = time.perf_counter() - started
            started = time.perf_counter()
            first = await headsup.apply(conn, report("11:00"), table, cfg)
            t_first = time.perf_counter() - started
            started = time.perf_counter()
            second = await headsup.apply(conn, report("12:00"), table, cfg)
            t_second = time.perf_counter() - started
        finally:
            await conn.close()
    print(f"{n} sheets; baseline (read every sheet body): {baseline * 1000:.0f} ms")
    print(f"first report: {first} heads-ups queued in {t_first * 1000:.0f} ms"
          f" ({t_first / baseline:.1f}x baseline)")
    print(f"continuation: {second} queued in {t_second * 1000:.0f} ms"
          f" ({t_second / baseline:.1f}x baseline)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20000)
    asyncio.run(main(parser.parse_args().devices))
