"""Feed pollers against a local HTTP server: ETags, indexes, failures, JMA state, one node."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from alertd import devices, errors, points
from alertd.context import Context
from alertd.ingest import pollers
from tests import capgen
from tests.waiting import wait_for

JMA = Path(__file__).resolve().parent.parent / "fixtures" / "jma"


@dataclass
class Server:
    """A local feed server whose documents tests can change."""

    base: str = ""
    docs: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    conditional: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        """Absolute URL of a path."""
        return self.base + path

    def index(self, path: str, *entries: tuple[str, int]) -> None:
        """Serve an Atom index at `path` linking /<id>.xml for each (id, hour updated)."""
        body = "".join(
            f"<entry><id>urn:{i}</id><title>{i}</title><updated>2026-11-26T{h:02d}:00:00Z"
            f'</updated><link href="{self.url("/" + i + ".xml")}"/></entry>'
            for i, h in entries)
        self.docs[path] = (
            (f'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:f</id>'
             f"<updated>2026-11-26T03:00:00Z</updated>{body}</feed>").encode(),
            "application/atom+xml")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A feed server on a free port; /broken always fails."""
    srv = Server()

    async def handle(request: web.Request) -> web.StreamResponse:
        srv.hits[request.path] += 1
        if request.path == "/broken":
            return web.Response(status=500, text="database is on fire")
        if request.path not in srv.docs:
            return web.Response(status=404)
        body, ctype = srv.docs[request.path]
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            srv.conditional.append(request.path)
            return web.Response(status=304)
        return web.Response(body=body, content_type=ctype, headers={"ETag": etag})

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.base = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for the pollers."""
    async with aiohttp.ClientSession() as s:
        yield s


def _poller(c: Context, http: aiohttp.ClientSession, kind: str, url: str,
            interval: float = 60.0) -> pollers.Poller:
    return pollers.Poller(c, pollers.FeedSpec(f"{kind}:{url}", kind, url, interval), http)


async def _register(p: pollers.Poller) -> None:
    await p.c.pool.execute("INSERT INTO feed_state (name, kind, url) VALUES ($1, $2, $3)",
                           p.spec.name, p.spec.kind, p.spec.url)


async def test_single_cap_document_with_etag(context: Context, server: Server,
                                             http: aiohttp.ClientSession) -> None:
    """A polled CAP document becomes an order; the next poll is conditional and gets a 304."""
    device_id, _ = await devices.register(context.pool, "ios", "t", "ja")
    dev = await devices.get(context.pool, device_id)
    assert dev is not None
    await devices.set_location(context.pool, dev, 37.75, 140.45, None)
    await points.catch_up(context.points)
    server.docs["/cap.xml"] = (capgen.message("polled-1"), "application/cap+xml")
    p = _poller(context, http, "cap", server.url("/cap.xml"))
    await _register(p)
    assert await p.poll_once() == 0
    assert await p.poll_once() == 0
    assert server.conditional == ["/cap.xml"]
    assert await context.pool.fetchval("SELECT count(*) FROM orders WHERE source = 'cap'") == 1
    state = await context.pool.fetchrow("SELECT * FROM feed_state")
    assert state["items_seen"] == 1 and state["etag"] and state["last_success"]


async def test_atom_index_fetches_each_entry_once(context: Context, server: Server,
                                                  http: aiohttp.ClientSession) -> None:
    """Entries of an Atom index are fetched once each, however often the index is polled."""
    server.docs["/e1.xml"] = (capgen.message("idx-1"), "application/cap+xml")
    server.docs["/e2.xml"] = (capgen.message("idx-2"), "application/cap+xml")
    server.index("/index.atom", ("e1", 0))
    p = _poller(context, http, "cap", server.url("/index.atom"))
    await _register(p)
    await p.poll_once()
    server.index("/index.atom", ("e1", 0), ("e2", 0))
    await p.poll_once()
    await p.poll_once()
    assert server.hits["/e1.xml"] == 1 and server.hits["/e2.xml"] == 1
    assert await context.pool.fetchval("SELECT items_seen FROM feed_state") == 2
    assert await context.pool.fetchval("SELECT count(*) FROM cap_messages") == 2


async def test_failing_feed_backs_off_and_others_go_on(context: Context, server: Server,
                                                       http: aiohttp.ClientSession) -> None:
    """A failing feed records its error and backs off; a healthy feed is polled regardless."""
    server.docs["/ok.xml"] = (capgen.message("ok-1"), "application/cap+xml")
    bad = _poller(context, http, "cap", server.url("/broken"))
    good = _poller(context, http, "cap", server.url("/ok.xml"))
    for p in (bad, good):
        await _register(p)
    assert await bad.poll_once() == 1
    assert await bad.poll_once() == 2
    assert await good.poll_once() == 0
    row = await context.pool.fetchrow("SELECT * FROM feed_state WHERE name = $1", bad.spec.name)
    assert (row["last_error"], row["failures"]) == (f"HTTP 500 from {bad.spec.url}", 2)
    assert row["last_success"] is None
    healthy = await context.pool.fetchrow("SELECT * FROM feed_state WHERE name = $1",
                                          good.spec.name)
    assert healthy["last_success"] is not None and healthy["failures"] == 0
    assert pollers.next_delay(bad.spec, 0, 1800) == 60
    assert 60 <= pollers.next_delay(bad.spec, 1, 1800) <= 120  # exact values: test_backoff


async def test_garbage_entry_is_quarantined_not_fatal(context: Context, server: Server,
                                                      http: aiohttp.ClientSession) -> None:
    """A polled document that is not CAP is quarantined with its source; the feed stays healthy."""
    server.docs["/cap.xml"] = (b"<html>maintenance</html>", "text/html")
    p = _poller(context, http, "cap", server.url("/cap.xml"))
    await _register(p)
    assert await p.poll_once() == 0
    row = await context.pool.fetchrow("SELECT source, reason FROM quarantine")
    assert (row["source"], row["reason"]) == (
        p.spec.name, "not a CAP 1.1/1.2 alert: the root element is <html> without a namespace")


async def test_polled_alerts_outside_the_prefecture_are_quarantined(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """A feed carrying a neighbouring prefecture's evacuations (仙台市 by polygon, by code)
    beside ours: theirs are quarantined with the reason and the feed's name, ours is an order,
    and the feed stays healthy."""
    sendai = "38.22,140.82 38.22,140.92 38.30,140.92 38.30,140.82 38.22,140.82"
    server.docs["/m1.xml"] = (capgen.message("miyagi-1", polygon=sendai), "application/cap+xml")
    server.docs["/m2.xml"] = (capgen.message("miyagi-2", polygon=None,
                                             geocode=("LGCode", "041009")), "application/cap+xml")
    server.docs["/f1.xml"] = (capgen.message("fukushima-1"), "application/cap+xml")
    server.index("/index.atom", ("m1", 0), ("m2", 1), ("f1", 2))
    p = _poller(context, http, "cap", server.url("/index.atom"))
    await _register(p)
    assert await p.poll_once() == 0
    rows = await context.pool.fetch("SELECT source, reason FROM quarantine ORDER BY id")
    assert [r["source"] for r in rows] == [p.spec.name, p.spec.name]
    assert sorted(r["reason"][:40] for r in rows) == [
        "area '福島市中心部': its geocodes name no area",
        "area: the area lies wholly outside the p"]
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 1
    assert await context.pool.fetchval("SELECT identifier FROM cap_messages") == "fukushima-1"


async def test_jma_state_for_our_prefecture_only(context: Context, server: Server,
                                                 http: aiohttp.ClientSession) -> None:
    """A JMA warning report sets our areas' state; a Hokkaido report touches nothing here."""
    shimane = (JMA / "10_jmaxml_VPWW55_R06_heavyrain_level_warning.xml").read_bytes()
    ours = shimane.replace(b"<Code>32", b"<Code>07")  # the same report, moved to code 07
    hokkaido = (JMA / "11_jmaxml_VXWW50_landslide_alert_lifted.xml").read_bytes()
    server.docs["/r1.xml"] = (ours, "application/xml")
    server.docs["/r2.xml"] = (hokkaido, "application/xml")
    server.index("/jma.atom", ("r1", 0), ("r2", 0))
    p = _poller(context, http, "jma", server.url("/jma.atom"))
    await _register(p)
    await p.poll_once()
    rows = await context.pool.fetch("SELECT * FROM area_warnings")
    # sample 10's warnings in force, moved to prefecture 07; nothing from Hokkaido (01…)
    assert sorted((r["area_code"], r["level_equivalent"]) for r in rows) == [
        ("0720100", 3), ("0720200", 3), ("0720300", 3), ("0720400", 3), ("0720500", 3),
        ("0720600", 3), ("0720700", 3), ("0720900", 3), ("0734300", 2), ("0738600", 2),
        ("0744100", 2), ("0744800", 2), ("0744900", 2), ("0750100", 3), ("0750500", 3)]
    assert server.hits["/r2.xml"] == 1
    await p.poll_once()
    assert server.hits["/r1.xml"] == 1  # never re-fetched


async def test_only_one_node_polls_a_feed(context: Context, server: Server,
                                          http: aiohttp.ClientSession) -> None:
    """Two pollers of the same feed (two nodes): one holds the lock and polls, the other waits."""
    server.docs["/cap.xml"] = (capgen.message("solo"), "application/cap+xml")
    a = _poller(context, http, "cap", server.url("/cap.xml"), interval=3600)
    b = _poller(context, http, "cap", server.url("/cap.xml"), interval=3600)
    stop = asyncio.Event()
    ta = asyncio.create_task(a.run(stop))

    async def a_polled() -> bool:
        return server.hits["/cap.xml"] == 1 and a.holding
    await wait_for(a_polled, "the first node to poll")
    tb = asyncio.create_task(b.run(stop))

    async def b_tried() -> bool:
        return b.lock_attempts >= 1
    await wait_for(b_tried, "the second node to try the lock")
    assert not b.holding
    assert server.hits["/cap.xml"] == 1
    stop.set()
    await asyncio.gather(ta, tb)


async def test_run_all_keeps_polling_healthy_feeds(server: Server, context: Context) -> None:
    """With a broken feed configured next to a healthy one, the healthy one is still polled."""
    from dataclasses import replace

    server.docs["/ok.xml"] = (capgen.message("ok-run"), "application/cap+xml")
    feeds = replace(context.cfg.feeds, cap_urls=(server.url("/broken"), server.url("/ok.xml")))
    c = Context(cfg=replace(context.cfg, feeds=feeds), pool=context.pool, points=context.points,
                table=context.table)
    stop = asyncio.Event()
    task = asyncio.create_task(pollers.run_all(c, stop))

    async def both_seen() -> bool:
        rows = await context.pool.fetch("SELECT url, last_success, failures FROM feed_state")
        by_url = {r["url"]: r for r in rows}
        ok, bad = by_url.get(server.url("/ok.xml")), by_url.get(server.url("/broken"))
        return bool(ok and ok["last_success"] and bad and bad["failures"] >= 1)
    await wait_for(both_seen, "the healthy feed polled beside the broken one")
    stop.set()
    await task
    assert await context.pool.fetchval("SELECT count(*) FROM cap_messages") == 1


async def test_dead_entry_link_does_not_hold_back_the_others(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """An index entry whose link is gone is skipped (and noted); the other entries are taken
    oldest first and the feed stays healthy."""
    server.docs["/old.xml"] = (capgen.message("e-old"), "application/cap+xml")
    server.docs["/new.xml"] = (capgen.message("e-new"), "application/cap+xml")
    server.index("/index.atom", ("new", 3), ("gone", 2), ("old", 1))
    p = _poller(context, http, "cap", server.url("/index.atom"))
    await _register(p)
    assert await p.poll_once() == 0
    ids = [r["identifier"] for r in await context.pool.fetch(
        "SELECT identifier FROM cap_messages ORDER BY received_at")]
    assert ids == ["e-old", "e-new"]
    state = await context.pool.fetchrow("SELECT * FROM feed_state")
    assert state["failures"] == 0 and "gone.xml" in state["last_error"]
    await p.poll_once()
    assert server.hits["/gone.xml"] == 2 and server.hits["/old.xml"] == 1


async def test_hostile_status_rows_are_quarantined_not_fatal(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """Status rows with absurd values are quarantined; the good rows are applied."""
    await context.pool.execute(
        "INSERT INTO shelters (id, name, lat, lon, kind, source_format) VALUES"
        " ('a', 'A', 37.75, 140.45, 'shelter', 't'), ('b', 'B', 37.76, 140.46, 'shelter', 't')")
    body = (b'[{"shelter_id": "a", "status": "open", "evacuees": 1000000000000},'
            b' {"shelter_id": "zzz", "status": "open"},'
            b' {"shelter_id": "b", "status": "open", "evacuees": 12}]')
    server.docs["/status.json"] = (body, "application/json")
    p = _poller(context, http, "shelter_status", server.url("/status.json"))
    await _register(p)
    assert await p.poll_once() == 0
    states = {r["id"]: r["status"] for r in await context.pool.fetch(
        "SELECT id, status FROM shelters")}
    assert states["b"] == "open"
    reason = await context.pool.fetchval("SELECT reason FROM quarantine")
    assert reason == ("shelter 'a': evacuees must be between 0 and 1,000,000;"
                      " shelter 'zzz': no shelter 'zzz'")


async def test_entry_is_retried_when_the_location_index_is_behind(
        context: Context, stalled_context: Context, server: Server,
        http: aiohttp.ClientSession) -> None:
    """A polled CAP entry that cannot be matched because the location follower is stalled is
    neither lost nor quarantined: the poll fails and the next one applies it."""
    server.docs["/e1.xml"] = (capgen.message("behind-1"), "application/cap+xml")
    server.index("/index.atom", ("e1", 0))
    stuck = _poller(stalled_context, http, "cap", server.url("/index.atom"))
    await _register(stuck)
    assert await stuck.poll_once() == 1
    state = await context.pool.fetchrow(
        "SELECT last_error, etag, (SELECT count(*) FROM feed_entries_seen) AS seen,"
        " (SELECT count(*) FROM quarantine) AS quarantined,"
        " (SELECT count(*) FROM cap_messages) AS cap FROM feed_state")
    assert dict(state) == {"last_error": errors.LocationsBehind().reason, "etag": None,
                           "seen": 0, "quarantined": 0, "cap": 0}
    assert await _poller(context, http, "cap", server.url("/index.atom")).poll_once() == 0
    assert await context.pool.fetchval(
        "SELECT outcome FROM cap_messages WHERE identifier = 'behind-1'") == "order"
    assert server.hits["/e1.xml"] == 2
