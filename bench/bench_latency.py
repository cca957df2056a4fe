"""Latency benchmark: order accepted -> first push recorded by the sandbox, with 1,000,000
registered points in the daemon's index.

Set-up: a fresh migrated database with 1,000,000 devices, each with a current location,
spread uniformly over Fukushima Prefecture's bounding box and seeded with COPY (the
device_points NOTIFY trigger is disabled during the load); a few devices are planted around
ten town centres. `alertd run` is then started as a process against `alertd sandbox` (its
start-up time until /readyz, index load included, is printed against the start-up time on an
empty database). Ten orders follow, one at a time, each a 100 m circle around one of the
centres reaching a handful of devices. For each: the POST round-trip, and the time from
sending the POST to the first push for that order recorded by the sandbox (the sandbox's
`at` timestamp against the client's wall clock when it sent the POST; same machine clock).

Baseline, measured in the same run: the same clock for a push sent straight at the sandbox
by a plain client (aiohttp FCM HTTP v1 and aioapns, connections already open), i.e. the
floor any server adds its own latency to. Not part of the test suite:

    .venv/bin/python bench/bench_latency.py [--points 1000000] [--orders 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aioapns
import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from alertd.delivery import apns, fcm

BBOX = (139.16, 36.79, 141.05, 37.98)  # Fukushima Prefecture, lon/lat
CENTRES = [  # (name, lon, lat): town centres, one order each
    ("Fukushima", 140.4748, 37.7608), ("Koriyama", 140.3597, 37.4005),
    ("Iwaki", 140.8877, 37.0505), ("Aizuwakamatsu", 139.9297, 37.4948),
    ("Sukagawa", 140.3725, 37.2866), ("Shirakawa", 140.2110, 37.1262),
    ("Soma", 140.9196, 37.7967), ("Minamisoma", 140.9574, 37.6421),
    ("Date", 140.5628, 37.8191), ("Nihonmatsu", 140.4314, 37.5847),
]
PLANTED = 5  # devices planted within ~30 m of each centre
RADIUS_M = 100
TARGET_MS = 300.0
SEED = 20240601


def points(n: int) -> tuple[list[float], list[float]]:
    """n locations: uniform over the prefecture's box, the first ones planted at the centres."""
    rng = np.random.default_rng(SEED)
    lon = rng.uniform(BBOX[0], BBOX[2], n)
    lat = rng.uniform(BBOX[1], BBOX[3], n)
    for i, (_, clon, clat) in enumerate(CENTRES):
        rows = slice(i * PLANTED, (i + 1) * PLANTED)
        lon[rows] = clon + rng.uniform(-0.00035, 0.00035, PLANTED)
        lat[rows] = clat + rng.uniform(-0.00025, 0.00025, PLANTED)
    return lon.tolist(), lat.tolist()


def _alert_id(delivery: dict[str, Any]) -> str | None:
    payload = delivery.get("payload")
    if not isinstance(payload, dict):
        return None
    if delivery.get("service") == "fcm":
        payload = (payload.get("message") or {}).get("data") or {}
    value = payload.get("alert_id")
    return value if isinstance(value, str) else None


def _at(delivery: dict[str, Any]) -> float:
    return datetime.fromisoformat(delivery["at"]).timestamp()


async def first_push(http: aiohttp.ClientSession, sb: harness.Sandbox, alert_id: str,
                     expected: int, deadline_s: float = 30.0) -> float:
    """Wall-clock time (sandbox `at`) of the first push for alert_id; returns once all
    `expected` pushes for it have arrived, so the next measurement starts quiet."""
    seen: list[float] = []
    tokens: set[str] = set()
    since = 0
    until = time.monotonic() + deadline_s
    while len(seen) < expected:
        if time.monotonic() > until:
            raise RuntimeError(f"only {len(seen)} of {expected} pushes for {alert_id} arrived")
        fresh = await sb.deliveries(http, since)
        since += len(fresh)
        mine = [d for d in fresh if _alert_id(d) == alert_id]
        if tokens & {d["token"] for d in mine} or len({d["token"] for d in mine}) < len(mine):
            raise RuntimeError(f"a device received {alert_id} more than once")
        tokens |= {d["token"] for d in mine}
        seen += [_at(d) for d in mine]
        if len(seen) < expected:
            await asyncio.sleep(0.005)
    return min(seen)


def _read_config(path: Path) -> tuple[dict[str, Any], str]:
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    return config, Path(config["apns"]["key_file"]).read_text(encoding="utf-8")


async def raw_latency(http: aiohttp.ClientSession, sb: harness.Sandbox,
                      rounds: int) -> tuple[list[float], list[float]]:
    """Send -> recorded latency (ms) of single pushes straight at the sandbox: (fcm, apns)."""
    config, key = await asyncio.to_thread(_read_config, sb.config)
    a, f = config["apns"], config["fcm"]
    account = fcm.load_service_account(f["service_account_file"])
    form = {"grant_type": fcm.JWT_BEARER, "assertion": fcm.assertion(account, time.time())}
    async with http.post(account.token_uri, data=form) as r:
        access = (await r.json())["access_token"]
    url = f"{f['endpoint']}/v1/projects/{account.project_id}/messages:send"
    headers = {"Authorization": f"Bearer {access}", "Content-Type": "application/json"}
    client = aioapns.APNs(key=key,
                          key_id=a["key_id"], team_id=a["team_id"], topic=a["topic"],
                          max_connections=1, ssl_context=apns.ssl_context(a["ca_file"]))
    client.pool.protocol_class = apns.protocol_class(a["host"], a["port"], False)
    fcm_ms: list[float] = []
    apns_ms: list[float] = []
    try:
        for i in range(rounds + 1):  # the first of each opens the connection: not counted
            alert = str(uuid.uuid4())
            body = {"message": {"token": f"raw-{i}", "notification": {"title": "t", "body": "b"},
                                "data": {"alert_id": alert, "kind": "order", "level": "4"}}}
            await sb.clear(http)
            sent = time.time()
            async with http.post(url, data=json.dumps(body), headers=headers) as r:
                await r.read()
            at = await first_push(http, sb, alert, 1)
            if i:
                fcm_ms.append((at - sent) * 1000)
            alert = str(uuid.uuid4())
            request = aioapns.NotificationRequest(
                device_token=f"raw-{i}", message={"aps": {"alert": "t"}, "alert_id": alert},
                push_type=aioapns.PushType.ALERT)
            await sb.clear(http)
            sent = time.time()
            await client.send_notification(request)
            at = await first_push(http, sb, alert, 1)
            if i:
                apns_ms.append((at - sent) * 1000)
    finally:
        client.pool.close()
    return fcm_ms, apns_ms


def summary(values: list[float]) -> str:
    """min / median / max in milliseconds."""
    return (f"min {min(values):7.1f}  median {statistics.median(values):7.1f}"
            f"  max {max(values):7.1f} ms")


async def main(n: int, orders: int, workers: int) -> int:
    """Seed, start, measure, print."""
    platforms = ["ios" if i % 2 else "android" for i in range(n)]
    tokens = [f"lat-{i:07d}" for i in range(n)]
    lon, lat = points(n)
    timeout = aiohttp.ClientTimeout(total=60)
    with tempfile.TemporaryDirectory(prefix="alertd-bench-latency-") as tmp:
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                harness.sandbox(Path(tmp) / "sandbox") as sb:
            async with harness.database("alertd_bench_latency_empty") as empty_url, \
                    harness.daemon(empty_url, sb.config, Path(tmp) / "empty.log", http) as d0:
                empty_start = d0.ready_s
            async with harness.database("alertd_bench_latency") as url:
                started = time.perf_counter()
                await harness.seed(url, platforms, tokens, lon, lat)
                seeded = time.perf_counter() - started
                print(f"seeded {n:,} devices with a location in {seeded:.1f} s")
                async with harness.daemon(url, sb.config, Path(tmp) / "daemon.log", http,
                                          workers=workers) as d:
                    print(f"daemon ready in {d.ready_s:.2f} s with {n:,} points"
                          f" (empty database: {empty_start:.2f} s;"
                          f" index load ~{d.ready_s - empty_start:.2f} s)")
                    token = harness.staff_token(url)
                    post_ms, first_ms = await run_orders(http, sb, d, token, orders)
            raw_fcm, raw_apns = await raw_latency(http, sb, orders)
    raw = raw_fcm + raw_apns
    print(f"\n{orders} orders, each a {RADIUS_M} m circle reaching a few devices, among {n:,}"
          f" indexed points; {workers} worker process(es); cpus {os.cpu_count()};"
          f" every device received its order once")
    print(f"POST round-trip (201)             {summary(post_ms)}")
    print(f"POST sent -> first push recorded  {summary(first_ms)}")
    print(f"baseline: raw push -> recorded    {summary(raw)}"
          f"  (FCM median {statistics.median(raw_fcm):.1f}, APNs median"
          f" {statistics.median(raw_apns):.1f})")
    median = statistics.median(first_ms)
    print(f"ratio engine/raw (medians)        {median / statistics.median(raw):7.1f}x;"
          f" engine adds {median - statistics.median(raw):.1f} ms")
    print(f"median {median:.1f} ms (target < {TARGET_MS:.0f} ms)")
    return 0 if median < TARGET_MS else 1


async def run_orders(http: aiohttp.ClientSession, sb: harness.Sandbox, d: harness.Daemon,
                     token: str, orders: int) -> tuple[list[float], list[float]]:
    """Issue the orders one at a time; (POST round-trips, POST -> first push), in ms."""
    post_ms: list[float] = []
    first_ms: list[float] = []
    for i in range(orders):
        name, lon, lat = CENTRES[i % len(CENTRES)]
        body = {"level": 4, "hazard": "flood",
                "area": {"circle": {"lat": lat, "lon": lon, "radius_m": RADIUS_M}},
                "headline": {"ja": f"避難指示 {name}", "en": f"Evacuate {name}"}}
        await sb.clear(http)
        sent = time.time()
        t0 = time.perf_counter()
        answer = await harness.post_order(http, d.url, token, body)
        post_ms.append((time.perf_counter() - t0) * 1000)
        if answer["devices"] < PLANTED:
            raise RuntimeError(f"the order at {name} reached {answer['devices']} devices")
        at = await first_push(http, sb, answer["id"], answer["devices"])
        first_ms.append((at - sent) * 1000)
        print(f"order {i + 1:2d} {name:<14} {answer['devices']:2d} devices  POST"
              f" {post_ms[-1]:6.1f} ms  first push {first_ms[-1]:6.1f} ms", flush=True)
    return post_ms, first_ms


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2,
                        help="--workers of alertd run (1: the dispatcher in the main process)")
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.points, options.orders, options.workers)))
