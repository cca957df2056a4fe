"""Benchmark GET /v1/me/sync on one daemon process against an aiohttp handler that makes one
asyncpg query and returns the same bytes.

A fresh database holds one device with 3 sheets (home, work and a relative's home, each
naming a shelter), 50 inbox entries and 20 shelters within the sync radius of its home. Both
servers are separate processes on the same machine and PostgreSQL; the same client (asyncio,
`--concurrency` requests in flight over keep-alive connections) loads each for `--seconds`,
alternating daemon, baseline, daemon, baseline, … (`--rounds`); medians are compared.

- **daemon**: `alertd run --role api` (rate limits off), GET /v1/me/sync?limit=100 without a
  cursor: the full first sync (3 sheets, 50 alerts, 20 shelters in one page), every request
  authenticated by the device's secret.
- **baseline**: one `aiohttp.web` process whose handler fetches the daemon's answer bytes
  (captured once) from a table with one asyncpg query on a pool and returns them.

Not part of the tests:

    .venv/bin/python bench/bench_sync.py [--seconds 10] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from alertd import db, shelters
from alertd.delivery import outbox
from alertd.sandbox.handle import DaemonProcess, clean_env, free_port_base

HOME = (37.7500, 140.4700)
BODY = "福島市立第一小学校が開設されました。最寄りの避難所へ向かってください。" * 2
TARGET = 0.5  # the ratio aimed at (requests per second, daemon / baseline)


def sheet(n: int) -> dict[str, Any]:
    """A household sheet with three places near HOME, naming shelter n."""
    lat, lon = HOME
    return {"name": f"家{n}", "places": [
        {"kind": "home", "lat": lat, "lon": lon, "floors": 2, "floor": 1},
        {"kind": "work", "lat": lat + 0.01, "lon": lon + 0.01},
        {"kind": "relative", "lat": lat - 0.01, "lon": lon},
    ], "destinations": [{"kind": "shelter", "shelter_id": f"B-{n:03d}"}],
        "triggers": {"flood": 3}, "members": [{"age": "65-74", "needs": ["elderly"]}]}


async def seed(db_url: str, daemon_url: str, http: aiohttp.ClientSession) -> str:
    """The device (its secret) with its sheets, inbox and nearby shelters."""
    async with http.post(f"{daemon_url}/v1/devices", json={
            "platform": "ios", "push_token": "bench-sync", "locale": "ja"}) as r:
        secret: str = (await r.json())["device_secret"]
        device_id = uuid.UUID((await r.json())["device_id"])
    auth = {"Authorization": f"Bearer {secret}"}
    async with http.put(f"{daemon_url}/v1/me/location", json={"lat": HOME[0], "lon": HOME[1]},
                        headers=auth) as r:
        assert r.status == 204
    for n in range(3):
        async with http.put(f"{daemon_url}/v1/me/sheets/{uuid.uuid4()}", json=sheet(n),
                            headers=auth) as r:
            assert r.status == 201, await r.text()
    conn = await db.connect_one(db_url)
    try:
        await shelters.upsert(conn, [SimpleNamespace(  # type: ignore[misc]
            id=f"B-{n:03d}", name=f"福島市立第{n}小学校", address=f"福島県福島市{n}丁目",
            lat=HOME[0] + (n % 5) * 0.003, lon=HOME[1] + (n // 5) * 0.003,
            hazards=["flood", "earthquake"], capacity=300, municipality_code="072010",
            kind="shelter", source_format="bench") for n in range(20)])
        for n in range(0, 20, 3):
            await shelters.set_status(conn, f"B-{n:03d}", "open", "low", 12, "staff:bench", None)
        expires = datetime.now(UTC) + timedelta(days=7)
        async with conn.transaction():
            await outbox.enqueue(conn, [outbox.NewDelivery(
                device_id=device_id, service="apns", kind="tip" if n % 2 else "shelter_opened",
                title=f"【お知らせ {n}】避難所が開設されました", body=BODY, expires_at=expires,
                alert_id=f"bench-{n}", ref=f"bench:{n}") for n in range(50)])
        await conn.execute("UPDATE deliveries SET state = 'sent'")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return secret


async def body_of(url: str, secret: str, http: aiohttp.ClientSession) -> bytes:
    """The daemon's full first sync, checked: 3 sheets, 50 alerts, 20 shelters, one page."""
    headers = {"Authorization": f"Bearer {secret}"}
    for _ in range(200):  # the inbox waits for the snapshot horizon (migration 0013)
        async with http.get(f"{url}/v1/me/sync?limit=100", headers=headers) as r:
            raw = await r.read()
            page = await r.json()
        counts = (len(page["sheets"]), len(page["alerts"]), len(page["shelters"]), page["more"])
        if counts == (3, 50, 20, False):
            return raw
        await asyncio.sleep(0.05)
    raise SystemExit(f"unexpected sync page: {counts}")


def serve_baseline(port: int, db_url: str) -> None:
    """The baseline server (run in its own process): one asyncpg query, the stored bytes."""
    from aiohttp import web

    async def app() -> web.Application:
        pool = await asyncpg.create_pool(db_url, min_size=2, max_size=10)

        async def handler(request: web.Request) -> web.Response:
            body = await pool.fetchval("SELECT body FROM bench_answer WHERE id = 1")
            return web.Response(body=body, content_type="application/json", charset="utf-8")

        application = web.Application()
        application.router.add_get("/v1/me/sync", handler)
        return application

    web.run_app(app(), host="127.0.0.1", port=port, print=None, access_log=None)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: str, secret: str, seconds: float, concurrency: int,
               expect: int, pid: int | None = None) -> tuple[float, float, float, float]:
    """Requests per second, p50 and p99 latency (ms) over `seconds` with `concurrency`
    requests in flight, and the server's CPU milliseconds per request (when its pid is
    known)."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession(connector=connector) as http:
        async def worker() -> None:
            while time.perf_counter() < end:
                start = time.perf_counter()
                async with http.get(f"{url}/v1/me/sync?limit=100", headers=headers) as r:
                    body = await r.read()
                    if r.status != 200 or abs(len(body) - expect) > 64:
                        raise SystemExit(f"bad answer {r.status}: {body[:200]!r}")
                latencies.append(time.perf_counter() - start)
        began, cpu = time.perf_counter(), cpu_s(pid) if pid else 0.0
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - began
        cpu = cpu_s(pid) - cpu if pid else float("nan")
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3  # noqa: E731
    return len(latencies) / took, p(0.50), p(0.99), cpu / len(latencies) * 1e3


async def main(args: argparse.Namespace) -> None:
    """Seed, start both servers, load them in alternating rounds, print the comparison."""
    with tempfile.TemporaryDirectory() as tmp:
        async with harness.database("alertd_bench_sync") as db_url, \
                harness.sandbox(Path(tmp) / "sandbox") as sb, \
                aiohttp.ClientSession() as http:
            port = free_port_base(1)
            env = clean_env(ALERTD_DATABASE_URL=db_url, ALERTD_HTTP_PORT=str(port),
                            ALERTD_LOG_FORMAT="json", ALERTD_LOG_LEVEL="warning",
                            ALERTD_RATELIMIT_ENABLED="false")
            daemon = DaemonProcess(port=port, env=env, config=sb.config,
                                   log=Path(tmp) / "daemon.log", roles="api")
            daemon.start()
            base_port = free_port_base(1)
            baseline = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--serve-baseline", str(base_port), db_url)
            try:
                await daemon.ready(http, harness.DEADLINE_S)
                secret = await seed(db_url, daemon.url, http)
                body = await body_of(daemon.url, secret, http)
                conn = await asyncpg.connect(db_url)
                await conn.execute("CREATE TABLE bench_answer (id int PRIMARY KEY, body bytea)")
                await conn.execute("INSERT INTO bench_answer VALUES (1, $1)", body)
                await conn.close()
                base_url = f"http://127.0.0.1:{base_port}"
                for _ in range(200):
                    try:
                        async with http.get(f"{base_url}/v1/me/sync") as r:
                            if await r.read() == body:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
                print(f"GET /v1/me/sync: 3 sheets, 50 alerts, 20 shelters, {len(body)} bytes; "
                      f"{args.concurrency} in flight, {args.seconds:.0f} s per run, "
                      f"{args.rounds} rounds")
                runs: dict[str, list[tuple[float, float, float, float]]] = {
                    "daemon": [], "baseline": []}
                pids = {"daemon": daemon.proc.pid if daemon.proc else None,
                        "baseline": baseline.pid}
                await load(daemon.url, secret, 1.0, args.concurrency, len(body))  # warm-up
                await load(base_url, secret, 1.0, args.concurrency, len(body))
                for _ in range(args.rounds):
                    for name, url in (("daemon", daemon.url), ("baseline", base_url)):
                        result = await load(url, secret, args.seconds, args.concurrency,
                                            len(body), pids[name])
                        runs[name].append(result)
                        print(f"  {name:<8} {result[0]:>8,.0f} req/s  p50 {result[1]:6.1f} ms"
                              f"  p99 {result[2]:6.1f} ms  server CPU {result[3]:.2f} ms/req")
            finally:
                baseline.terminate()
                await baseline.wait()
                daemon.stop()
    d = [statistics.median(x) for x in zip(*runs["daemon"], strict=True)]
    b = [statistics.median(x) for x in zip(*runs["baseline"], strict=True)]
    print(f"{'':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}")
    print(f"{'daemon':<10} {d[0]:>8,.0f} {d[1]:>8.1f} {d[2]:>8.1f} {d[3]:>11.2f}")
    print(f"{'baseline':<10} {b[0]:>8,.0f} {b[1]:>8.1f} {b[2]:>8.1f} {b[3]:>11.2f}")
    print(f"ratio (daemon/baseline req/s): {d[0] / b[0]:.2f} (target >= {TARGET}); "
          f"p99 {d[2] / b[2]:.1f}x the baseline's; server CPU per request "
          f"{d[3] / b[3]:.1f}x the baseline's")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-baseline":
        serve_baseline(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    asyncio.run(main(parser.parse_args()))
