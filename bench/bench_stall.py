"""Stall benchmark: how long one heavy staff request takes, and the longest /healthz wait while
it runs.

The heavy request is the self-intersecting star of the issue (every vertex joined to one almost
opposite, so that its n edges cross about n²/2 times) sent to `POST /v1/staff/orders:preview`
by a viewer, or inside a CAP message to `POST /v1/staff/cap`. While it is in flight a second
client asks `/healthz` back to back (a new request as soon as the last one answered) and keeps
the longest wait and the number of answers.

Baseline, measured in the same run: the same /healthz loop for as long with no heavy request.

    .venv/bin/python bench/bench_stall.py [--vertices 800] [--cap] [--setting KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

CENTRE = (140.47, 37.75)  # Fukushima City, lon/lat


def star(n: int, radius_deg: float = 0.05) -> list[list[float]]:
    """A closed ring of n vertices on a circle, each joined to one almost opposite."""
    k = n // 2 - 1
    while math.gcd(n, k) != 1:
        k -= 1
    ring = [[round(CENTRE[0] + radius_deg * math.cos(2 * math.pi * i * k / n), 5),
             round(CENTRE[1] + radius_deg * math.sin(2 * math.pi * i * k / n), 5)]
            for i in range(n)]
    return [*ring, ring[0]]


def cap_message(ring: list[list[float]]) -> bytes:
    """A CAP 1.2 evacuation Alert whose area is the ring (lat,lon pairs)."""
    pairs = " ".join(f"{lat},{lon}" for lon, lat in ring)
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>bench-star-{time.time_ns()}</identifier><sender>bench@example.jp</sender>
  <sent>{now}</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>ja-JP</language><category>Met</category><event>洪水</event>
    <responseType>Evacuate</responseType><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty><headline>避難指示</headline>
    <area><areaDesc>star</areaDesc><polygon>{pairs}</polygon></area></info>
</alert>""".encode()


async def health_loop(http: aiohttp.ClientSession, url: str, stop: asyncio.Event
                      ) -> tuple[int, float]:
    """Ask /healthz back to back until stopped: (answers, longest wait in seconds)."""
    answers, longest = 0, 0.0
    while not stop.is_set():
        started = time.perf_counter()
        async with http.get(f"{url}/healthz") as r:
            await r.read()
            assert r.status == 200
        longest = max(longest, time.perf_counter() - started)
        answers += 1
    return answers, longest


async def heavy(http: aiohttp.ClientSession, url: str, token: str, ring: list[list[float]],
                cap: bool) -> tuple[int, Any, float]:
    """The heavy request: (status, answer, seconds)."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    if cap:
        headers["Content-Type"] = "application/cap+xml"
        req = http.post(f"{url}/v1/staff/cap", data=cap_message(ring), headers=headers)
    else:
        body = {"level": 4, "hazard": "flood", "headline": {"ja": "避難指示"},
                "area": {"type": "Polygon", "coordinates": [ring]}}
        req = http.post(f"{url}/v1/staff/orders:preview", json=body, headers=headers)
    async with req as r:
        answer = await r.json()
        return r.status, answer, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vertices", type=int, default=800)
    parser.add_argument("--cap", action="store_true", help="post the star inside a CAP Alert")
    parser.add_argument("--setting", action="append", default=[],
                        help="a daemon setting, e.g. orders_max_self_intersections=1000000")
    args = parser.parse_args()
    ring = star(args.vertices)
    settings = dict(s.split("=", 1) for s in args.setting)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        timeout = aiohttp.ClientTimeout(total=600)
        async with harness.database("alertd_bench_stall") as db_url, \
                harness.sandbox(work / "sandbox") as sb, \
                aiohttp.ClientSession(timeout=timeout) as http, \
                harness.daemon(db_url, sb.config, work / "daemon.log", http, **settings) as d, \
                aiohttp.ClientSession(timeout=timeout) as probe:
            token = harness.staff_token(db_url, "operator" if args.cap else "viewer")
            stop = asyncio.Event()
            base = asyncio.create_task(health_loop(probe, d.url, stop))
            await asyncio.sleep(2.0)
            stop.set()
            base_answers, base_longest = await base
            stop = asyncio.Event()
            loop_task = asyncio.create_task(health_loop(probe, d.url, stop))
            status, answer, seconds = await heavy(http, d.url, token, ring, args.cap)
            stop.set()
            answers, longest = await loop_task
    size = len(json.dumps(ring))
    print(f"star of {args.vertices} vertices ({size:,} bytes of coordinates), "
          f"{'CAP' if args.cap else 'preview'}: {status} in {seconds:.2f} s")
    print(f"  answer: {json.dumps(answer, ensure_ascii=False)[:300]}")
    print(f"  /healthz during it: {answers} answers, longest wait {longest * 1000:.0f} ms")
    print(f"  /healthz baseline (idle, 2 s): {base_answers} answers, "
          f"longest wait {base_longest * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
