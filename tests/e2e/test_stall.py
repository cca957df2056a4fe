"""One request must not stall everyone: the daemon process keeps answering while a heavy
request is worked on, and refuses what would cost too much."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import shapes
from tests.e2e.conftest import (
    Client,
    Daemon,
    Sandbox,
    daemon_env,
    free_port_base,
    staff_token,
)
from tests.waiting import DEADLINE

pytestmark = pytest.mark.e2e

HEADLINE = {"ja": "避難指示"}


def _order(area: dict[str, Any]) -> dict[str, Any]:
    return {"level": 4, "hazard": "flood", "headline": HEADLINE, "area": area}


async def test_tangled_star_is_refused(daemon: Daemon, http: aiohttp.ClientSession,
                                       db_url: str) -> None:
    """The 800-vertex star of issue 7, previewed by a viewer, answers 422 saying why."""
    viewer = staff_token(db_url, "viewer")
    status, body = await Client(http, daemon.url).call(
        "POST", "/v1/staff/orders:preview", viewer, _order(shapes.star_polygon(800)))
    assert (status, body) == (422, {"error": (
        "area: the polygon intersects itself at more than 1000 points; repairing it would "
        "take too long: please redraw it without crossing edges")})


async def _health(url: str, stop: asyncio.Event) -> tuple[int, float]:
    """Ask /healthz back to back until stopped: (answers, longest wait in seconds)."""
    answers, longest = 0, 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as probe:
        while not stop.is_set():
            started = time.monotonic()
            async with probe.get(f"{url}/healthz") as r:
                assert r.status == 200
                await r.read()
            longest = max(longest, time.monotonic() - started)
            answers += 1
    return answers, longest


async def test_loop_answers_while_a_heavy_job_runs(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """With the crossing limit lifted the star's repair runs in the one worker until its 3 s
    limit: /healthz answers all along (10 times at least, none waiting half as long as the
    heavy request), the preview gets 422, and a fresh worker serves the next large area."""
    port = free_port_base(1)
    env = daemon_env(db_url, port, ALERTD_ORDERS_MAX_SELF_INTERSECTIONS="1000000000",
                     ALERTD_COMPUTE_TIMEOUT_S="3", ALERTD_COMPUTE_WORKERS="1")
    d = Daemon(port=port, env=env, config=sandbox.config, log=tmp_path / "daemon.log",
               extra=["--migrate"])
    d.start()
    await d.ready(http, DEADLINE)
    api = Client(http, d.url)
    viewer = staff_token(db_url, "viewer")
    stop = asyncio.Event()
    probe = asyncio.create_task(_health(d.url, stop))
    started = time.monotonic()
    status, body = await api.call("POST", "/v1/staff/orders:preview", viewer,
                                  _order(shapes.star_polygon(800)))
    heavy_s = time.monotonic() - started
    stop.set()
    answers, longest = await probe
    assert (status, body) == (422, {"error": (
        "processing the area took longer than 3 s, the limit for one request; simplify it "
        "(fewer vertices, fewer shapes)")})
    assert heavy_s >= 3.0
    assert answers >= 10, (answers, longest, heavy_s)
    assert longest < heavy_s / 2, (answers, longest, heavy_s)
    status, body = await api.call("POST", "/v1/staff/orders:preview", viewer, _order(
        {"type": "Polygon", "coordinates": [shapes.circle_ring(100)]}))
    assert (status, body) == (200, {"devices": 0, "by_area": {"072010": 0}})
