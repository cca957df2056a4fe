"""Polled CAP feeds of every shape: EDXL-DE, inline CAP in Atom/RSS, skipped entries, trust."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp
from structlog.testing import capture_logs

from alertd import metrics, settings
from alertd.context import Context
from tests import capgen, capsign
from tests.integration.test_pollers import Server, _poller, _register, http, server

__all__ = ["http", "server"]  # the feed server and client fixtures, shared with test_pollers


def _body(message: bytes) -> str:
    return message.decode().split("?>", 1)[1]


async def _identifiers(context: Context) -> list[str]:
    rows = await context.pool.fetch("SELECT identifier FROM cap_messages ORDER BY identifier")
    return [r["identifier"] for r in rows]


async def test_polled_edxl_distribution_issues_each_message(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """A polled EDXL-DE 1.0 document carrying two alerts makes two orders."""
    raw = capsign.edxl(capgen.message("pe-1"), capgen.message("pe-2"), version="1.0")
    server.docs["/edxl.xml"] = (raw, "application/xml")
    p = _poller(context, http, "cap", server.url("/edxl.xml"))
    await _register(p)
    assert await p.poll_once() == 0
    assert await _identifiers(context) == ["pe-1", "pe-2"]
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 2


async def test_inline_atom_and_rss_entries_are_taken_without_fetching(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """Atom content typed application/cap+xml and an RSS item's embedded alert are applied
    without any fetch, and once only."""
    server.docs["/inline.atom"] = ((
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        '<entry><id>urn:in:1</id><updated>2026-11-26T01:00:00Z</updated>'
        f'<content type="application/cap+xml">{_body(capgen.message("ia-1"))}</content>'
        "</entry></feed>").encode(), "application/atom+xml")
    server.docs["/inline.rss"] = ((
        '<rss version="2.0"><channel><title>t</title><item><guid>r-1</guid>'
        f'{_body(capsign.edxl(capgen.message("ir-1")))}</item></channel></rss>').encode(),
        "application/rss+xml")
    for path in ("/inline.atom", "/inline.rss"):
        p = _poller(context, http, "cap", server.url(path))
        await _register(p)
        assert await p.poll_once() == 0
        server.docs[path] = (server.docs[path][0] + b" ", server.docs[path][1])  # new ETag
        assert await p.poll_once() == 0
    assert await _identifiers(context) == ["ia-1", "ir-1"]
    assert set(server.hits) == {"/inline.atom", "/inline.rss"}
    items = await context.pool.fetch("SELECT items_seen FROM feed_state ORDER BY name")
    assert [r["items_seen"] for r in items] == [1, 1]


async def test_entry_with_nothing_to_take_is_counted_logged_and_quarantined_once(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """An entry with neither link nor inline CAP counts once as skipped in the feed's health
    and the metric, is logged and quarantined; the next poll does not count it again."""
    server.docs["/skip.atom"] = ((
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b'<entry><id>urn:empty:1</id><title>nothing here</title></entry></feed>'),
        "application/atom+xml")
    p = _poller(context, http, "cap", server.url("/skip.atom"))
    await _register(p)
    before = metrics.FEED_SKIPPED.labels(p.spec.name)._value.get()
    with capture_logs() as logs:
        await p.poll_once()
    assert [e["entry"] for e in logs if e["event"] == "feed_entry_skipped"] == ["urn:empty:1"]
    server.docs["/skip.atom"] = (server.docs["/skip.atom"][0] + b" ", "application/atom+xml")
    await p.poll_once()
    state = await context.pool.fetchrow("SELECT items_skipped, items_seen FROM feed_state")
    assert (state["items_skipped"], state["items_seen"]) == (1, 0)
    assert metrics.FEED_SKIPPED.labels(p.spec.name)._value.get() == before + 1
    reasons = await context.pool.fetch("SELECT reason FROM quarantine")
    assert [r["reason"] for r in reasons] == [
        "feed entry 'urn:empty:1': the entry has neither a link nor an inline CAP message"]


async def test_feed_with_trust_anchors_takes_only_signed_messages(
        context: Context, server: Server, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """A feed configured with trust anchors and a sender allowlist applies the signed message
    of its sender, and quarantines the unsigned, the tampered and the foreign one."""
    anchor = tmp_path / "feed.pem"
    anchor.write_bytes(capsign.signer().cert_pem)
    url = server.url("/signed.atom")
    cfg = replace(context.cfg, feeds=replace(context.cfg.feeds, cap_urls=(url,)),
                  trust=replace(context.cfg.trust, feeds=(settings.TrustFeed(
                      url, (capgen.SENDER,), (str(anchor),)),)))
    c = Context(cfg=cfg, pool=context.pool, points=context.points, table=context.table)
    messages = [capsign.sign(capgen.message("ok-1")), capgen.message("unsigned-1"),
                capsign.tamper(capsign.sign(capgen.message("tampered-1"))),
                capsign.sign(capgen.message("foreign-1", sender="other@example.org"))]
    entries = "".join(
        f'<entry><id>urn:s:{i}</id><updated>2026-11-26T0{i}:00:00Z</updated>'
        f'<content type="application/cap+xml">{_body(m)}</content></entry>'
        for i, m in enumerate(messages))
    server.docs["/signed.atom"] = (
        f'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>{entries}</feed>'.encode(),
        "application/atom+xml")
    p = _poller(c, http, "cap", url)
    await _register(p)
    assert await p.poll_once() == 0
    assert await _identifiers(context) == ["ok-1"]
    reasons = [r["reason"] for r in await context.pool.fetch(
        "SELECT reason FROM quarantine ORDER BY id")]
    assert len(reasons) == 3
    assert "not signed" in reasons[0]
    assert reasons[1].startswith("the message's signature does not verify")
    assert reasons[2].startswith("sender 'other@example.org' is not allowed for this source")


def _padded(identifier: str, size: int) -> bytes:
    """A real-sized national message: the description carries ``size`` bytes of text."""
    pad = b"<description>" + b"x" * size + b"</description><instruction>"
    return capgen.message(identifier).replace(b"<instruction>", pad, 1)


async def test_polled_450_kb_message_is_read_whole(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """A 450 KB polled CAP document, arriving in many pieces, is read to its end and issued."""
    server.docs["/big.xml"] = (_padded("big-poll", 450_000), "application/cap+xml")
    p = _poller(context, http, "cap", server.url("/big.xml"))
    await _register(p)
    assert await p.poll_once() == 0
    assert await _identifiers(context) == ["big-poll"]
    assert await context.pool.fetchval("SELECT count(*) FROM quarantine") == 0


async def test_entry_over_the_fetch_limit_is_quarantined_once(
        context: Context, server: Server, http: aiohttp.ClientSession) -> None:
    """An index entry larger than feeds.max_bytes is quarantined with its size and not fetched
    again at the next poll; the other entries are taken."""
    c = Context(cfg=replace(context.cfg, feeds=replace(context.cfg.feeds, max_bytes=20_000)),
                pool=context.pool, points=context.points, table=context.table)
    server.docs["/huge.xml"] = (_padded("huge-poll", 50_000), "application/cap+xml")
    server.docs["/fine.xml"] = (capgen.message("fine-poll"), "application/cap+xml")
    server.index("/limit.atom", ("huge", 1), ("fine", 2))
    p = _poller(c, http, "cap", server.url("/limit.atom"))
    await _register(p)
    assert await p.poll_once() == 0
    server.docs["/limit.atom"] = (server.docs["/limit.atom"][0] + b" ", "application/atom+xml")
    assert await p.poll_once() == 0
    assert server.hits["/huge.xml"] == 1
    assert await _identifiers(context) == ["fine-poll"]
    row = await context.pool.fetchrow("SELECT reason, raw_size FROM quarantine")
    assert row["reason"] == (f"feed entry 'urn:huge': {server.url('/huge.xml')} is larger than "
                             "20000 bytes")
    assert row["raw_size"] == len(server.docs["/huge.xml"][0])
