"""JMA heads-up end to end: a polled JMA feed warns a household's municipality, and the phone
whose sheet leaves at that level gets one `warning` push through the sandbox per episode."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.e2e.conftest import (
    Client,
    Daemon,
    Sandbox,
    daemon_env,
    free_port_base,
    push_kind,
    wait_for,
)

pytestmark = pytest.mark.e2e

JMA = Path(__file__).resolve().parent.parent / "fixtures" / "jma"
HEAVY_RAIN = (JMA / "10_jmaxml_VPWW55_R06_heavyrain_level_warning.xml").read_bytes()
FUKUSHIMA_CITY = (37.75, 140.45)  # 0720100, warned by sample 10 moved to prefecture 07
# (entry, JMA report time, lift everything): issued, continued, lifted, issued again.
REPORTS = [("r1", "11:00", False), ("r2", "12:00", False), ("r3", "13:00", True),
           ("r4", "14:00", False)]


def _report(hour: str, lift_all: bool) -> bytes:
    text = HEAVY_RAIN.replace(b"<Code>32", b"<Code>07").decode()
    text = re.sub(r"<ReportDateTime>[^<]+</ReportDateTime>",
                  f"<ReportDateTime>2026-06-01T{hour}:00+09:00</ReportDateTime>", text)
    if lift_all:
        text = text.replace("<Status>継続</Status>", "<Status>解除</Status>")
    return text.encode()


@pytest.fixture
async def jma_feed() -> AsyncIterator[str]:
    """A JMA Atom feed on a free port listing the four reports; its URL."""
    docs: dict[str, bytes] = {f"/{name}.xml": _report(hour, lift)
                              for name, hour, lift in REPORTS}

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/feed.atom":
            return web.Response(body=docs["/feed.atom"], content_type="application/atom+xml")
        if request.path in docs:
            return web.Response(body=docs[request.path], content_type="application/xml")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    entries = "".join(
        f"<entry><id>urn:{name}</id><title>{name}</title>"
        f"<updated>2026-06-01T{hour}:00+09:00</updated>"
        f'<link href="{base}/{name}.xml"/></entry>' for name, hour, _ in REPORTS)
    docs["/feed.atom"] = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>JMA</title><id>urn:jma</id>'
        f"<updated>2026-06-01T14:00:00+09:00</updated>{entries}</feed>").encode()
    yield f"{base}/feed.atom"
    await runner.cleanup()


async def test_heads_up_once_per_episode(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str,
        jma_feed: str, tmp_path: Path) -> None:
    """Issued then continued: one heads-up; lifted then issued again: one more; a phone whose
    sheet leaves only at level 4 gets none."""
    api = Client(http, daemon.url)
    for token, trigger in (("plans-at-3", 3), ("plans-at-4", 4)):
        _, secret = await api.device("ios" if trigger == 3 else "android", token)
        status, body = await api.call("PUT", f"/v1/me/sheets/{uuid.uuid4()}", secret, {
            "name": "家", "triggers": {"inland_flood": trigger},
            "places": [{"kind": "home", "lat": FUKUSHIMA_CITY[0], "lon": FUKUSHIMA_CITY[1]}]})
        assert status == 201, body
    # The feed poller runs on a node of its own, started once the sheets exist.
    port = free_port_base(1)
    feeds = Daemon(port=port, env=daemon_env(db_url, port, ALERTD_FEEDS_JMA_URL=jma_feed),
                   config=sandbox.config, log=tmp_path / "feeds.log", roles="feeds")
    feeds.start()
    await feeds.ready(http)

    conn = await asyncpg.connect(db_url)
    try:
        async def all_reports_handled() -> bool:
            seen = await conn.fetchval("SELECT count(*) FROM feed_entries_seen")
            return bool(seen == len(REPORTS))
        await wait_for(all_reports_handled, "the four JMA reports handled")
        queued = await conn.fetch("SELECT kind, level FROM deliveries ORDER BY id")
    finally:
        await conn.close()
    assert [(r["kind"], r["level"]) for r in queued] == [("warning", 3), ("warning", 3)]

    async def both_sent() -> list[dict[str, Any]] | None:
        got = [d for d in await sandbox.deliveries(http) if d["status"] == 200]
        return got if len(got) >= 2 else None
    pushes = await wait_for(both_sent, "two heads-ups")
    assert [(d["token"], push_kind(d)) for d in pushes] == [
        ("plans-at-3", "warning"), ("plans-at-3", "warning")]
    first, second = (d["payload"] for d in pushes)
    assert first["aps"]["alert"]["title"] == "【気象警報・警戒レベル3相当】内水氾濫"
    assert "福島市" in first["aps"]["alert"]["body"]
    assert first["alert_id"] != second["alert_id"] and first["level"] == 3
