"""Fan-out benchmark: one order reaching 20,000 devices (half iOS, half Android) through the
sandbox, against the plainest aioapns + aiohttp loop pushing the same number of messages at
the same sandbox with the same concurrency, measured in the same run.

Engine: a fresh migrated database, 20,000 devices located inside Fukushima City (seeded with
COPY), `alertd run` as a process against `alertd sandbox`; the clock runs from the 201 answer
to the last outcome written (max(done_at) of the order's deliveries, same machine clock).
Baseline: `raw_push_loop.raw_loop`. Runs alternate (raw, engine, raw, engine, ...) and the
medians are compared. CPU seconds used by each process during each run are printed too: on a
small shared machine the processes compete for the same cores. Not part of the test suite:

    .venv/bin/python bench/bench_fanout.py [--devices 20000] [--concurrency 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from raw_push_loop import raw_loop

from alertd import app, settings
from geo import municipalities

CITY = "072010"  # Fukushima City
BOX = (140.40, 37.72, 140.50, 37.80)  # lon/lat box inside the city's built-up area
TARGET_RATIO = 0.70
FINAL = ["sent", "failed", "invalid_token"]
ORDER = {"level": 4, "hazard": "flood", "area": {"area_codes": [CITY]},
         "headline": {"ja": "避難指示 ベンチマーク", "en": "Evacuate (benchmark)"}}


def city_points(n: int, seed: int = 20240601) -> tuple[list[float], list[float]]:
    """n random points inside Fukushima City (checked against the shipped areas)."""
    table = municipalities.Table.load(app.areas_path(settings.load([])))
    city = table.get(CITY)
    rng = np.random.default_rng(seed)
    lon = np.empty(0)
    lat = np.empty(0)
    while len(lon) < n:
        x = rng.uniform(BOX[0], BOX[2], n)
        y = rng.uniform(BOX[1], BOX[3], n)
        inside = shapely.contains_xy(city, x, y)
        lon = np.concatenate([lon, x[inside]])
        lat = np.concatenate([lat, y[inside]])
    return lon[:n].tolist(), lat[:n].tolist()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cpu:
    """CPU seconds of named processes between two snapshots."""

    pids: dict[str, list[int]]

    def snapshot(self) -> dict[str, float]:
        """CPU seconds used so far, per name."""
        return {name: sum(cpu_s(p) for p in pids) for name, pids in self.pids.items()}

    @staticmethod
    def total(before: dict[str, float], after: dict[str, float]) -> float:
        """CPU seconds of every process together between the snapshots."""
        return sum(after[name] - before[name] for name in before)

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> str:
        """`name n.n` per process group, as printed."""
        return ", ".join(f"{name} {after[name] - before[name]:.1f}" for name in before)


@contextlib.contextmanager
def profiled(pids: dict[str, int], out: Path | None) -> Iterator[None]:
    """py-spy record (collapsed stacks) of the given processes while the block runs."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    spies = [subprocess.Popen([spy, "record", "--nonblocking", "-r", "200", "-f", "raw",
                               "-p", str(pid), "-o", str(out / f"{name}.txt")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in pids.items()]
    try:
        yield
    finally:
        for s in spies:
            s.send_signal(signal.SIGINT)
        for s in spies:
            s.wait(timeout=30)


async def _commits(conn: asyncpg.Connection) -> int:
    """Transactions committed in this database so far (claims, outcome flushes, polls)."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(await conn.fetchval("SELECT xact_commit FROM pg_stat_database"
                                   " WHERE datname = current_database()"))


async def engine_run(http: aiohttp.ClientSession, conn: asyncpg.Connection,
                     d: harness.Daemon, sb: harness.Sandbox, token: str, devices: int,
                     cpu: Cpu) -> tuple[float, float]:
    """One order to every device: (seconds from the 201 to the last outcome recorded, CPU
    seconds the daemon, the sandbox and PostgreSQL used meanwhile)."""
    await sb.clear(http)
    before = cpu.snapshot()
    posted = time.perf_counter()
    answer = await harness.post_order(http, d.url, token, ORDER)
    accept_s = time.perf_counter() - posted
    accepted_at = time.time()
    accepted_cpu = cpu.snapshot()
    xacts = await _commits(conn)
    if answer["devices"] != devices:
        raise RuntimeError(f"the order reached {answer['devices']} devices, not {devices}")
    order_id = uuid.UUID(answer["id"])
    until = time.monotonic() + 600
    # Watch the sandbox's counter (cheap) until every push arrived, then the database until
    # every outcome is written: polling the database all along would load PostgreSQL.
    while (await sb.stats(http))["deliveries"] < devices:
        if time.monotonic() > until:
            raise RuntimeError("fan-out unfinished after 600 s")
        await asyncio.sleep(0.1)
    while True:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE state = ANY($2::text[])) AS done,"
            " count(*) FILTER (WHERE state = 'sent') AS sent, max(done_at) AS last"
            " FROM deliveries WHERE order_id = $1", order_id, FINAL)
        if row["done"] == devices:
            break
        if time.monotonic() > until:
            raise RuntimeError(f"outcomes unrecorded after 600 s: {dict(row)}")
        await asyncio.sleep(0.02)
    done_cpu = cpu.snapshot()
    xacts = await _commits(conn) - xacts
    if row["sent"] != devices:
        raise RuntimeError(f"only {row['sent']} of {devices} deliveries were sent")
    created = await conn.fetchval("SELECT created_at FROM orders WHERE id = $1", order_id)
    retried = await conn.fetchval("SELECT count(*) FROM deliveries WHERE order_id = $1"
                                  " AND attempts > 1", order_id)
    stats = await sb.stats(http)
    if stats["deliveries"] != devices:
        raise RuntimeError(f"the sandbox saw {stats['deliveries']} requests, not {devices}")
    last = row["last"].timestamp()
    elapsed = last - accepted_at
    print(f"  engine {devices / elapsed:8,.0f} msgs/s  {elapsed:6.2f} s from the 201"
          f" ({last - created.timestamp():.2f} s from the order's created_at);"
          f" {retried:,} deliveries needed more than one attempt")
    print(f"         the order answered 201 after {accept_s:.2f} s (matching, rendering and"
          f" writing {devices:,} deliveries)")
    print(f"         cpu s while accepting: {Cpu.spent(before, accepted_cpu)};"
          f" while sending: {Cpu.spent(accepted_cpu, done_cpu)}; {xacts:,} transactions",
          flush=True)
    return elapsed, Cpu.total(accepted_cpu, done_cpu)


async def raw_run(http: aiohttp.ClientSession, sb: harness.Sandbox, devices: int,
                  concurrency: int, tag: int, cpu: Cpu) -> tuple[float, float]:
    """The baseline loop over as many fresh tokens: (elapsed seconds, CPU seconds the loop
    and the sandbox used)."""
    await sb.clear(http)
    half = devices // 2
    ios = [f"raw{tag}-ios-{i:06d}" for i in range(half)]
    android = [f"raw{tag}-android-{i:06d}" for i in range(devices - half)]
    before = cpu.snapshot()
    elapsed = await raw_loop(sb.directory, ios, android, concurrency)
    after = cpu.snapshot()
    stats = await sb.stats(http)
    if stats["deliveries"] != devices:
        raise RuntimeError(f"the sandbox saw {stats['deliveries']} raw requests, not {devices}")
    print(f"  raw    {devices / elapsed:8,.0f} msgs/s  {elapsed:6.2f} s"
          f"  cpu s: {Cpu.spent(before, after)}", flush=True)
    return elapsed, Cpu.total(before, after)


Run = tuple[float, float]  # (elapsed seconds, CPU seconds of every process involved)


async def alternate(http: aiohttp.ClientSession, url: str, d: harness.Daemon,
                    sb: harness.Sandbox, devices: int, concurrency: int, rounds: int,
                    profile: Path | None) -> tuple[list[Run], list[Run]]:
    """raw, engine, raw, engine, ...: the runs of each."""
    token = harness.staff_token(url)
    raw: list[Run] = []
    engine: list[Run] = []
    conn = await asyncpg.connect(url)
    try:
        backends = [r["pid"] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()")]
        raw_cpu = Cpu({"client": [os.getpid()], "sandbox": [sb.proc.pid]})
        engine_cpu = Cpu({"daemon": [d.proc.pid], "sandbox": [sb.proc.pid],
                          "postgres": backends})
        for r in range(rounds):
            print(f"round {r + 1}")
            out = profile and profile / f"round{r + 1}"
            with profiled({"client": os.getpid(), "sandbox-raw": sb.proc.pid}, out):
                raw.append(await raw_run(http, sb, devices, concurrency, r, raw_cpu))
            with profiled({"daemon": d.proc.pid, "sandbox": sb.proc.pid}, out):
                engine.append(await engine_run(http, conn, d, sb, token, devices, engine_cpu))
    finally:
        await conn.close()
    return raw, engine


def report(devices: int, concurrency: int, raw_runs: list[Run], engine_runs: list[Run],
           received: dict[str, int]) -> float:
    """Print the comparison; the throughput ratio engine/raw."""
    raw = devices / statistics.median(t for t, _ in raw_runs)
    engine = devices / statistics.median(t for t, _ in engine_runs)
    raw_cpu = statistics.median(c for _, c in raw_runs) / devices * 1e6
    engine_cpu = statistics.median(c for _, c in engine_runs) / devices * 1e6
    ratio = engine / raw
    print(f"\n{devices:,} devices ({devices // 2:,} APNs + {devices - devices // 2:,} FCM),"
          f" concurrency {concurrency} per service, {len(raw_runs)} rounds,"
          f" cpus {os.cpu_count()}")
    print(f"sandbox received {sum(received.values()):,} requests ({received}): {devices:,}"
          f" per run, every engine delivery recorded as sent")
    print(f"raw loop (baseline)  {raw:8,.0f} msgs/s  (median)   {raw_cpu:5.0f} us CPU per"
          f" message (client + sandbox)")
    print(f"alertd engine        {engine:8,.0f} msgs/s  (median)   {engine_cpu:5.0f} us CPU per"
          f" message (daemon + sandbox + PostgreSQL); 201 -> last outcome recorded")
    print(f"ratio engine/raw     {ratio:8.2f}   (target >= {TARGET_RATIO:.2f});"
          f" CPU per message raw/engine {raw_cpu / engine_cpu:.2f}")
    return ratio


async def main(devices: int, concurrency: int, rounds: int, batch_size: int | None,
               profile: Path | None) -> int:
    """Set everything up, alternate raw and engine runs, print the comparison."""
    lon, lat = city_points(devices)
    platforms = ["ios" if i % 2 else "android" for i in range(devices)]
    tokens = [f"fanout-{p}-{i:06d}" for i, p in enumerate(platforms)]
    extra = {"apns_concurrency": str(concurrency), "fcm_concurrency": str(concurrency),
             "apns_max_connections": "4"}
    if batch_size:
        extra["dispatch_batch_size"] = str(batch_size)
    timeout = aiohttp.ClientTimeout(total=120)
    with tempfile.TemporaryDirectory(prefix="alertd-bench-fanout-") as tmp:
        async with harness.database("alertd_bench_fanout") as url, \
                aiohttp.ClientSession(timeout=timeout) as http, \
                harness.sandbox(Path(tmp) / "sandbox") as sb:
            started = time.perf_counter()
            await harness.seed(url, platforms, tokens, lon, lat)
            print(f"seeded {devices:,} devices in {time.perf_counter() - started:.1f} s")
            async with harness.daemon(url, sb.config, Path(tmp) / "daemon.log", http,
                                      **extra) as d:
                raw_runs, engine_runs = await alternate(http, url, d, sb, devices, concurrency,
                                                        rounds, profile)
                stats = await sb.stats(http)
    received = sum(stats["received"].values())
    if received != 2 * rounds * devices:
        raise RuntimeError(f"the sandbox received {received} requests in all,"
                           f" not {2 * rounds * devices}")
    ratio = report(devices, concurrency, raw_runs, engine_runs, stats["received"])
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200,
                        help="requests in flight per service, for both sides")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating raw/engine pairs; medians are compared")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="dispatch.batch_size for the daemon (default: its configuration)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record py-spy collapsed stacks of the daemon and the sandbox"
                             " during the engine runs into this directory")
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.devices, options.concurrency, options.rounds,
                              options.batch_size, options.profile)))
