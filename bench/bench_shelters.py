"""Benchmark feeds.shelters.parse against a plain decode + csv.reader split of the same bytes.

Generates a realistic shelter list in the Digital Agency standard columns (3,000 rows by
default: Japanese names, kana, addresses, Fukushima coordinates, hazard flags as ``1``/``○``,
capacities written ``1,200``, a multi-line 備考 now and then), encodes it in UTF-8 and in
Shift_JIS (cp932), and times each several times in the same process. The baseline does only
what any CSV import must: decode the bytes and split them into rows. Not part of the tests:

    .venv/bin/python bench/bench_shelters.py [--rows 3000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import statistics
import time
from collections.abc import Callable

from feeds import shelters

HEADER = (
    "全国地方公共団体コード", "ID", "名称", "名称_カナ", "名称_英字", "住所", "方書",
    "緯度", "経度", "高さ", *("災害種別_" + c for c in shelters.HAZARD_COLUMNS),
    "指定避難所との住所同一", "想定収容人数", "対象となる町会・自治会", "URL", "備考",
)
CITIES = (
    ("072010", "福島市", 37.76, 140.47), ("072028", "会津若松市", 37.49, 139.93),
    ("072036", "郡山市", 37.40, 140.36), ("072044", "いわき市", 37.05, 140.89),
    ("072052", "白河市", 37.13, 140.21), ("072079", "須賀川市", 37.29, 140.37),
)
KINDS = (("小学校", "ショウガッコウ", "Elementary School"), ("中学校", "チュウガッコウ",
         "Junior High School"), ("公民館", "コウミンカン", "Community Center"),
         ("体育館", "タイイクカン", "Gymnasium"), ("公園", "コウエン", "Park"))
PLACES = ("森合", "三河台", "清明", "渡利", "笹谷", "飯坂", "平野", "大森", "蓬莱", "吉井田")


def generate(rows: int, seed: int = 20241102) -> str:
    """A realistic standard-columns shelter CSV of `rows` data rows, as text."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for n in range(rows):
        code, city, lat, lon = rng.choice(CITIES)
        place = rng.choice(PLACES)
        kind, kana, english = rng.choice(KINDS)
        flags = [rng.choice(("1", "○", "", "")) for _ in shelters.HAZARD_COLUMNS]
        note = rng.choice(("", "", "", "体育館\n及び校庭", "土砂災害時は使用不可"))
        writer.writerow([
            code, f"{code}-{n:05d}", f"{city}立{place}{kind}", f"シリツ{kana}",
            f"{place} {english}",
            f"福島県{city}{place}{rng.randint(1, 30)}-{rng.randint(1, 20)}", "",
            f"{lat + rng.uniform(-0.08, 0.08):.6f}", f"{lon + rng.uniform(-0.08, 0.08):.6f}",
            str(rng.randint(5, 400)), *flags, rng.choice(("1", "")),
            f"{rng.randint(50, 3000):,}", f"{place}町内会", "", note,
        ])
    return out.getvalue()


def baseline(data: bytes) -> int:
    """Decode (UTF-8, else cp932) and split into rows: the floor of any CSV import."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp932")
    return sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1


def imported(data: bytes) -> int:
    """The full import; fails loudly if any generated row was rejected."""
    result = shelters.parse(data)
    if result.errors:
        raise SystemExit(f"unexpected errors: {result.errors[:3]}")
    return len(result.shelters)


def median_seconds(function: Callable[[bytes], int], data: bytes, runs: int) -> float:
    """The median wall time of `runs` calls, after one warm-up call."""
    function(data)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print rows/s for both encodings and the ratio to the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL URL for the whole-import timing ('' to skip it)")
    args = parser.parse_args()
    text = generate(args.rows)
    print(f"{args.rows} rows, median of {args.runs} runs")
    print(f"{'encoding':<10} {'bytes':>9} {'parse rows/s':>13} {'baseline rows/s':>16} "
          f"{'parse ms':>9} {'base ms':>8} {'ratio':>6}")
    for encoding in ("utf-8", "cp932"):
        data = text.encode(encoding)
        assert imported(data) == baseline(data) == args.rows
        parse_s = median_seconds(imported, data, args.runs)
        base_s = median_seconds(baseline, data, args.runs)
        print(f"{encoding:<10} {len(data):>9} {args.rows / parse_s:>13,.0f} "
              f"{args.rows / base_s:>16,.0f} {parse_s * 1e3:>9.1f} {base_s * 1e3:>8.1f} "
              f"{parse_s / base_s:>5.1f}x")
    if args.server:
        asyncio.run(import_into_database(text.encode("cp932"), args.server, args.runs))


async def import_into_database(data: bytes, server: str, runs: int) -> None:
    """Time the whole import (parse + upsert into PostgreSQL) of the Shift_JIS file, first as
    inserts into an empty table, then as re-imports (updates by ID), against a baseline of a
    plain COPY of the same rows."""
    import uuid

    import asyncpg

    from alertd import db
    from alertd import shelters as store

    name = f"bench_shelters_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server.rsplit("/", 1)[0] + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await db.connect_one(server.rsplit("/", 1)[0] + "/" + name)
        await db.migrate(conn)
        first: list[float] = []
        again: list[float] = []
        copies: list[float] = []
        for _ in range(runs):
            await conn.execute("TRUNCATE shelters")
            start = time.perf_counter()
            parsed = shelters.parse(data)
            inserted, _ = await store.upsert(conn, parsed.shelters)
            first.append(time.perf_counter() - start)
            assert inserted == len(parsed.shelters)
            start = time.perf_counter()
            parsed = shelters.parse(data)
            _, updated = await store.upsert(conn, parsed.shelters)
            again.append(time.perf_counter() - start)
            assert updated == len(parsed.shelters)
            await conn.execute("TRUNCATE shelters")
            records = [(s.id, s.name, s.address, s.lat, s.lon, "shelter", "x")
                       for s in parsed.shelters]
            start = time.perf_counter()
            await conn.copy_records_to_table(
                "shelters", records=records,
                columns=("id", "name", "address", "lat", "lon", "kind", "source_format"))
            copies.append(time.perf_counter() - start)
        await conn.close()
        rows = len(parsed.shelters)
        f, a, c = (statistics.median(x) for x in (first, again, copies))
        print(f"import into PostgreSQL ({rows} rows, Shift_JIS): first {f * 1e3:.1f} ms "
              f"({rows / f:,.0f} rows/s), re-import {a * 1e3:.1f} ms ({rows / a:,.0f} rows/s); "
              f"baseline plain COPY of parsed rows {c * 1e3:.1f} ms")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    main()
