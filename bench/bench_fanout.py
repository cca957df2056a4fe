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
import collections
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
TARGET_RATIO = 1.5  # the engine against the plain loop, deliveries per second
TARGET_CPU = 0.6  # daemon CPU per delivery against the loop client's CPU per message
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


def family(pid: int) -> list[int]:
    """A process and all its descendants (the daemon's worker and compute processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


Pids = Callable[[], list[int]]


@dataclass
class Cpu:
    """CPU seconds of named groups of processes between two snapshots; a group is found anew
    at each snapshot (worker processes restart, pools open connections), and a process seen
    only in the later snapshot counts from 0 (it started in between)."""

    groups: dict[str, Pids]

    def snapshot(self) -> dict[str, dict[int, float]]:
        """CPU seconds used so far, per name and process."""
        return {name: {p: cpu_s(p) for p in pids()} for name, pids in self.groups.items()}

    @staticmethod
    def used(before: dict[str, dict[int, float]],
             after: dict[str, dict[int, float]]) -> dict[str, float]:
        """CPU seconds per name between the snapshots."""
        return {name: sum(max(0.0, s - before[name].get(p, 0.0)) for p, s in procs.items())
                for name, procs in after.items()}

    @staticmethod
    def total(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> float:
        """CPU seconds of every process together between the snapshots."""
        return sum(Cpu.used(before, after).values())

    @staticmethod
    def spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> str:
        """`name n.n` per process group, as printed."""
        return ", ".join(f"{name} {s:.1f}" for name, s in Cpu.used(before, after).items())


def fixed(*pids: int) -> Pids:
    """A group of known processes."""
    return lambda: list(pids)


@contextlib.contextmanager
def profiled(pids: dict[str, int], out: Path | None) -> Iterator[None]:
    """py-spy record (collapsed stacks) of the given processes while the block runs."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    spies = [subprocess.Popen([spy, "record", "--nonblocking", "--subprocesses", "-r", "200",
                               "-f", "raw",
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


async def send_seconds(http: aiohttp.ClientSession, url: str) -> dict[str, tuple[float, int]]:
    """The daemon's alertd_send_seconds sum and count per service (its /metrics)."""
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, index in (("_sum", 0), ("_count", 1)):
            if line.startswith(f"alertd_send_seconds{suffix}{{"):
                service = line.split('service="', 1)[1].split('"', 1)[0]
                out.setdefault(service, [0.0, 0.0])[index] += float(line.rsplit(" ", 1)[1])
    return {service: (total, int(count)) for service, (total, count) in out.items()}


async def engine_run(http: aiohttp.ClientSession, conn: asyncpg.Connection,
                     d: harness.Daemon, sb: harness.Sandbox, token: str, devices: int,
                     cpu: Cpu, slots: int) -> Run:
    """One order to every device: seconds from the 201 to the last outcome recorded, CPU
    seconds the daemon (all its processes), the sandbox and PostgreSQL used meanwhile."""
    await sb.clear(http)
    sends_before = await send_seconds(http, d.url)
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
    await once_each(http, sb, devices)
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
    sends = await send_seconds(http, d.url)
    waits = []
    for service, (total, count) in sorted(sends.items()):
        total -= sends_before.get(service, (0.0, 0))[0]
        count -= sends_before.get(service, (0.0, 0))[1]
        if count:
            waits.append(f"{service} {total / count * 1000:.1f} ms")
    # Little's law: with every send slot busy, a slot is held slots / rate seconds per delivery:
    # the push request itself (above), then the wait for its outcome's group commit.
    print(f"         mean push request: {', '.join(waits)}; each of the {slots} send slots"
          f" held {slots * elapsed / devices * 1000:.1f} ms per delivery", flush=True)
    return Run(elapsed, Cpu.used(accepted_cpu, done_cpu))


async def raw_run(http: aiohttp.ClientSession, sb: harness.Sandbox, devices: int,
                  concurrency: int, tag: int, cpu: Cpu) -> Run:
    """The baseline loop over as many fresh tokens: elapsed seconds, CPU seconds the loop
    and the sandbox used."""
    await sb.clear(http)
    half = devices // 2
    ios = [f"raw{tag}-ios-{i:06d}" for i in range(half)]
    android = [f"raw{tag}-android-{i:06d}" for i in range(devices - half)]
    before = cpu.snapshot()
    elapsed = await raw_loop(sb.directory, ios, android, concurrency)
    after = cpu.snapshot()
    await once_each(http, sb, devices)
    print(f"  raw    {devices / elapsed:8,.0f} msgs/s  {elapsed:6.2f} s"
          f"  cpu s: {Cpu.spent(before, after)}", flush=True)
    return Run(elapsed, Cpu.used(before, after))


async def once_each(http: aiohttp.ClientSession, sb: harness.Sandbox, devices: int) -> None:
    """The sandbox recorded exactly one request per device, each answered 200."""
    got = await sb.deliveries(http)
    per_token = collections.Counter(d["token"] for d in got)
    if len(per_token) != devices or set(per_token.values()) != {1}:
        twice = sum(1 for n in per_token.values() if n > 1)
        raise RuntimeError(f"the sandbox saw {len(got)} requests for {len(per_token)} devices"
                           f" ({twice} more than once), not one for each of {devices}")
    if any(d["status"] != 200 for d in got):
        raise RuntimeError("the sandbox refused some requests")


def postgres_backends(database: str) -> Pids:
    """The PostgreSQL backends serving `database` (their process titles name it), looked up
    at each snapshot: pools open connections during a run."""
    def find() -> list[int]:
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                out.append(int(entry.name))
        return out
    return find


async def alternate(http: aiohttp.ClientSession, url: str, d: harness.Daemon,
                    sb: harness.Sandbox, devices: int, concurrency: int, rounds: int,
                    profile: Path | None, workers: int) -> tuple[list[Run], list[Run]]:
    """raw, engine, raw, engine, ...: the runs of each."""
    token = harness.staff_token(url)
    raw: list[Run] = []
    engine: list[Run] = []
    conn = await asyncpg.connect(url)
    try:
        raw_cpu = Cpu({"client": fixed(os.getpid()), "sandbox": fixed(sb.proc.pid)})
        engine_cpu = Cpu({"daemon": lambda: family(d.proc.pid), "sandbox": fixed(sb.proc.pid),
                          "postgres": postgres_backends(urlsplit(url).path.lstrip("/"))})
        for r in range(rounds):
            print(f"round {r + 1}")
            out = profile and profile / f"round{r + 1}"
            with profiled({"client": os.getpid(), "sandbox-raw": sb.proc.pid}, out):
                raw.append(await raw_run(http, sb, devices, concurrency, r, raw_cpu))
            with profiled({"daemon": d.proc.pid, "sandbox": sb.proc.pid}, out):
                engine.append(await engine_run(http, conn, d, sb, token, devices, engine_cpu,
                                               2 * concurrency * workers))
    finally:
        await conn.close()
    return raw, engine


@dataclass(frozen=True)
class Run:
    """One timed run: seconds, and CPU seconds per group of processes."""

    elapsed: float
    cpu: dict[str, float]


def _median_us(runs: list[Run], name: str, devices: int) -> float:
    return statistics.median(r.cpu.get(name, 0.0) for r in runs) / devices * 1e6


def report(devices: int, concurrency: int, results: dict[int, tuple[list[Run], list[Run]]],
           ) -> tuple[float, float]:
    """Print the comparison per number of worker processes; the lowest throughput ratio and
    the highest CPU ratio."""
    print(f"\n{devices:,} devices ({devices // 2:,} APNs + {devices - devices // 2:,} FCM),"
          f" concurrency {concurrency} per service and process, cpus {os.cpu_count()};"
          f" every run: exactly one request per device recorded, every delivery sent")
    print("CPU per message in us (median of the runs); a figure is CPU time over messages,"
          " so it holds whatever the wall clock did")
    print(f"{'':24}{'msgs/s':>8}  {'ratio':>5}  {'client':>7}{'daemon':>7}{'sandbox':>8}"
          f"{'pg':>6}{'total':>7}")
    ratios = []
    cpus = []
    for workers, (raw_runs, engine_runs) in results.items():
        raw = devices / statistics.median(r.elapsed for r in raw_runs)
        engine = devices / statistics.median(r.elapsed for r in engine_runs)
        ratios.append(engine / raw)
        rc, rs = (_median_us(raw_runs, n, devices) for n in ("client", "sandbox"))
        ed, es, ep = (_median_us(engine_runs, n, devices) for n in ("daemon", "sandbox",
                                                                      "postgres"))
        print(f"{'raw loop (baseline)':24}{raw:8,.0f}  {1:5.2f}  {rc:7.0f}{'':7}{rs:8.0f}"
              f"{'':6}{rc + rs:7.0f}")
        label = f"alertd, {workers} worker{'s' if workers > 1 else ''}"
        print(f"{label:24}{engine:8,.0f}  {engine / raw:5.2f}  {'':7}{ed:7.0f}{es:8.0f}"
              f"{ep:6.0f}{ed + es + ep:7.0f}")
        print(f"{'':24}daemon CPU per delivery / client CPU per message: {ed / rc:.2f}")
        cpus.append(ed / rc)
    print(f"targets: ratio >= {TARGET_RATIO:.2f}, daemon CPU / client CPU <= {TARGET_CPU:.2f}")
    return min(ratios), max(cpus)


async def main(devices: int, concurrency: int, rounds: int, batch_size: int | None,
               profile: Path | None, workers: list[int], transport: str,
               fanout_chunk: int | None = None) -> int:
    """Set everything up, alternate raw and engine runs for each number of worker processes,
    print the comparison."""
    lon, lat = city_points(devices)
    platforms = ["ios" if i % 2 else "android" for i in range(devices)]
    tokens = [f"fanout-{p}-{i:06d}" for i, p in enumerate(platforms)]
    extra = {"apns_concurrency": str(concurrency), "fcm_concurrency": str(concurrency),
             "apns_max_connections": "4",
             "apns_transport": "aioapns" if transport == "classic" else "curl",
             "fcm_transport": "aiohttp" if transport == "classic" else "curl"}
    print(f"daemon transports: apns {extra['apns_transport']}, fcm {extra['fcm_transport']}")
    if batch_size:
        extra["dispatch_batch_size"] = str(batch_size)
    if fanout_chunk:
        extra["orders_fanout_chunk"] = str(fanout_chunk)
    timeout = aiohttp.ClientTimeout(total=120)
    results: dict[int, tuple[list[Run], list[Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="alertd-bench-fanout-") as tmp:
        async with harness.database("alertd_bench_fanout") as url, \
                aiohttp.ClientSession(timeout=timeout) as http, \
                harness.sandbox(Path(tmp) / "sandbox") as sb:
            started = time.perf_counter()
            await harness.seed(url, platforms, tokens, lon, lat)
            print(f"seeded {devices:,} devices in {time.perf_counter() - started:.1f} s")
            for n in workers:
                print(f"-- {n} worker process{'es' if n > 1 else ' (in the main process)'}")
                async with harness.daemon(url, sb.config, Path(tmp) / f"daemon-w{n}.log", http,
                                          workers=n, **extra) as d:
                    results[n] = await alternate(http, url, d, sb, devices, concurrency,
                                                 rounds, profile and profile / f"w{n}", n)
            stats = await sb.stats(http)
    received = sum(stats["received"].values())
    if received != 2 * rounds * devices * len(workers):
        raise RuntimeError(f"the sandbox received {received} requests in all,"
                           f" not {2 * rounds * devices * len(workers)}")
    ratio, cpu = report(devices, concurrency, results)
    return 0 if ratio >= TARGET_RATIO and cpu <= TARGET_CPU else 1


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
    parser.add_argument("--workers", default="1,2",
                        help="comma list of worker process counts to measure (--workers of"
                             " alertd run; 1: the dispatcher in the main process)")
    parser.add_argument("--transport", choices=("curl", "classic"), default="curl",
                        help="the daemon's apns.transport / fcm.transport: curl (the default)"
                             " or classic (aioapns and aiohttp, the baseline's own clients)")
    parser.add_argument("--fanout-chunk", type=int, default=None,
                        help="orders.fanout_chunk for the daemon (default: its configuration;"
                             " more than --devices: the whole fan-out in one transaction)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record py-spy collapsed stacks of the daemon and the sandbox"
                             " during the engine runs into this directory")
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.devices, options.concurrency, options.rounds,
                              options.batch_size, options.profile,
                              [int(n) for n in options.workers.split(",")],
                              options.transport, options.fanout_chunk)))
