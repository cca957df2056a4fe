"""Weekly tips benchmark: `tips.send_weekly` choosing and queuing this week's tip for N devices
(default 1,000,000), against a plain `COPY` of the same delivery rows into a copy of the outbox
table (same columns, same indexes), measured in the same run; then how long a dispatcher's
claim takes to find an order queued behind all those tips (the send ran an hour ago: all due).

Devices are seeded with COPY: half iOS, half Android, 10 % with quiet hours 22:00-07:00, 5 %
with tips off, 5 % with a sheet (a household with a member over 75 and a dog, in a flood
zone). Not part of the test suite:

    .venv/bin/python bench/bench_tips.py [--devices 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from alertd import db, settings, tips
from alertd.delivery import outbox

TARGET_RATIO = 0.3
SHEET = json.dumps({"name": "家", "places": [{"kind": "home", "lat": 37.75, "lon": 140.47}],
                    "members": [{"age": "75+"}], "pets": [{"kind": "dog"}],
                    "hazards": {"flood_depth": "0.5-3"}})
COLUMNS = ("apns_id", "order_id", "version", "device_id", "kind", "service", "level", "title",
           "body", "priority", "expires_at", "ref", "alert_id", "due_at")


async def seed(url: str, n: int) -> None:
    """n devices (and their sheets) with COPY."""
    conn = await db.connect_one(url)
    try:
        ids = [uuid.uuid4() for _ in range(n)]
        await conn.copy_records_to_table(
            "devices", columns=("id", "platform", "push_token", "secret_hash", "tips",
                                "quiet_start", "quiet_end"),
            records=[(d, "ios" if i % 2 else "android", f"tok-{i}", d.bytes, i % 20 != 7,
                      _quiet(i), _quiet(i, end=True)) for i, d in enumerate(ids)])
        with_sheet = [d for i, d in enumerate(ids) if i % 20 == 3]
        for at in range(0, len(with_sheet), 2000):  # a transaction each: the sheet-point
            await conn.execute(                     # trigger takes locks per row
                "INSERT INTO sheets (device_id, id, version, body)"
                " SELECT d, gen_random_uuid(), 1, $1::text::jsonb FROM unnest($2::uuid[]) d",
                SHEET, with_sheet[at:at + 2000])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _quiet(i: int, end: bool = False) -> object:
    from datetime import time as clock

    if i % 10 != 1:
        return None
    return clock(7) if end else clock(22)


async def engine(url: str, cfg: settings.Settings, now: datetime) -> tuple[float, int]:
    """Seconds send_weekly takes, and the tips it queued."""
    pool = await db.connect(url, min_size=1, max_size=2)
    try:
        started = time.perf_counter()
        queued = await tips.send_weekly(pool, cfg, now)
        return time.perf_counter() - started, queued
    finally:
        await pool.close()


async def baseline(url: str) -> float:
    """Seconds a plain COPY of the same rows into a copy of the outbox takes."""
    conn = await db.connect_one(url)
    try:
        await conn.execute("CREATE TABLE deliveries_copy (LIKE deliveries INCLUDING ALL)")
        rows = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM deliveries")
        records = [tuple(r) for r in rows]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("deliveries_copy", columns=COLUMNS,
                                             records=records)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def order_claim(url: str) -> tuple[float, float, str]:
    """Seconds a dispatcher's claim takes to find an order queued behind every tip (all due:
    the send ran an hour ago), and a claim of the next 500 tips."""
    conn = await db.connect_one(url)
    try:
        await conn.execute("VACUUM ANALYZE deliveries")
        order_id = uuid.uuid4()
        await conn.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
        device = await conn.fetchval("SELECT id FROM devices WHERE platform = 'ios' LIMIT 1")
        async with conn.transaction():
            await outbox.enqueue(conn, [outbox.NewDelivery(
                device_id=device, service="apns", kind="order", title="t", body="b",
                expires_at=datetime.now(UTC) + timedelta(hours=1), level=4,
                order_id=order_id, version=1)])
        started = time.perf_counter()
        claimed = await outbox.claim(conn, "apns", 1, 30.0, "bench")
        order_s = time.perf_counter() - started
        started = time.perf_counter()
        await outbox.claim(conn, "apns", 500, 30.0, "bench")
        return order_s, time.perf_counter() - started, claimed[0].kind if claimed else "none"
    finally:
        await conn.close()


async def main() -> int:
    """Run the benchmark; exit 1 when the ratio is below the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    args = parser.parse_args()
    cfg = settings.load([])
    cfg = dataclasses.replace(cfg, tips=dataclasses.replace(cfg.tips, batch_size=5000))
    now = datetime.now(UTC) - timedelta(hours=1)  # every tip is due when the claim is timed
    async with harness.database("alertd_bench_tips") as url:
        started = time.perf_counter()
        await seed(url, args.devices)
        print(f"seeded {args.devices:,} devices in {time.perf_counter() - started:.1f} s")
        took, queued = await engine(url, cfg, now)
        print(f"send_weekly: {queued:,} tips in {took:.1f} s ({queued / took:,.0f} rows/s)")
        raw = await baseline(url)
        print(f"baseline COPY of the same rows: {raw:.1f} s ({queued / raw:,.0f} rows/s)")
        ratio = raw / took
        print(f"ratio (COPY time / send_weekly time): {ratio:.2f} (target >= {TARGET_RATIO})")
        order_s, tips_s, first = await order_claim(url)
        print(f"with {queued:,} tips due, an order queued last: claimed in {order_s * 1000:.1f}"
              f" ms (first claimed: {first}); the next 500 tips in {tips_s * 1000:.1f} ms")
    return 0 if ratio >= TARGET_RATIO and first == "order" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
