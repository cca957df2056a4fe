"""Tests for feeds.atom: Atom and RSS 2.0 feed indexes, and telling them from single messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from feeds import atom, cap, errors, signatures
from tests import capgen, capsign

JMA_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jma"

# Shaped like JMA's 高頻度（随時） feed (extra.xml), entries trimmed.
JMA_ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja">
  <title>高頻度（随時）</title>
  <subtitle>JMAXML publishing feed</subtitle>
  <updated>2024-11-02T02:20:02+00:00</updated>
  <id>https://www.data.jma.go.jp/developer/xml/feed/extra.xml#short_1730514002</id>
  <link href="https://www.jma.go.jp/" rel="related"/>
  <link href="https://www.data.jma.go.jp/developer/xml/feed/extra.xml" rel="self"/>
  <link href="http://alert-hub.appspot.com/" rel="hub"/>
  <rights type="html">Copyright (C) Japan Meteorological Agency</rights>
  <entry>
    <title>気象警報・注意報（Ｒ０６）</title>
    <id>https://www.data.jma.go.jp/developer/xml/data/20241102021927_0_VPWW55_320000.xml</id>
    <updated>2024-11-02T02:19:27Z</updated>
    <author><name>松江地方気象台</name></author>
    <link type="application/xml"
          href="https://www.data.jma.go.jp/developer/xml/data/20241102021927_0_VPWW55_320000.xml"/>
    <content type="text">【島根県気象警報・注意報】東部、西部では浸水に警戒。</content>
  </entry>
  <entry>
    <title>土砂災害警戒情報</title>
    <id>urn:uuid:2c0a3b3e-0f0c-4d1b-9a4e-0133200</id>
    <updated>2013-08-23T22:15:00+09:00</updated>
    <author><name>函館地方気象台</name></author>
    <link rel="related" href="https://example.invalid/related"/>
    <link rel="alternate" type="application/xml" href="https://example.invalid/VXWW50.xml"/>
    <summary>《全警戒解除》</summary>
  </entry>
</feed>
""".encode()

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
  <title>Fukushima shelter notices</title>
  <link>https://example.invalid/</link>
  <item>
    <title>Shelter opened</title>
    <link>https://example.invalid/items/1</link>
    <guid isPermaLink="false">notice-1</guid>
    <pubDate>Sat, 02 Nov 2024 11:19:00 +0900</pubDate>
    <description>&lt;b&gt;open&lt;/b&gt;</description>
    <enclosure url="https://example.invalid/items/1.xml" type="application/cap+xml" length="1"/>
  </item>
  <item>
    <title>No guid</title>
    <link>https://example.invalid/items/2</link>
    <pubDate>not a date</pubDate>
  </item>
  <item><title>Neither guid nor link</title></item>
</channel></rss>
"""

CAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier></alert>"""
CAP11_PREFIXED = (b'<cap:alert xmlns:cap="urn:oasis:names:tc:emergency:cap:1.1">'
                  b"<cap:identifier>x</cap:identifier></cap:alert>")


def test_jma_atom_feed() -> None:
    """A JMA-style Atom feed gives its title and entries with id, time, link, type and author."""
    feed = atom.parse_feed(JMA_ATOM)
    assert feed.kind == "atom"
    assert feed.title == "高頻度（随時）"
    assert feed.skipped == 0
    first, second = feed.entries
    assert first.id.endswith("20241102021927_0_VPWW55_320000.xml")
    assert first.link == first.id
    assert first.updated == datetime(2024, 11, 2, 2, 19, 27, tzinfo=UTC)
    assert first.title == "気象警報・注意報（Ｒ０６）"
    assert first.content_type == "application/xml"
    assert first.author == "松江地方気象台"
    assert first.summary.startswith("【島根県気象警報・注意報】")
    assert second.link == "https://example.invalid/VXWW50.xml"
    assert second.updated == datetime(2013, 8, 23, 22, 15, tzinfo=timezone(timedelta(hours=9)))
    assert second.summary == "《全警戒解除》"


def test_atom_entry_without_id_falls_back_to_link_or_is_skipped() -> None:
    """An entry lacking id uses its link; one lacking both is counted as skipped."""
    data = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
      <entry><title>a</title><link href="https://example.invalid/a"/><updated>bad</updated></entry>
      <entry><title>b</title></entry></feed>"""
    feed = atom.parse_feed(data)
    assert [e.id for e in feed.entries] == ["https://example.invalid/a"]
    assert feed.entries[0].updated is None
    assert feed.entries[0].content_type is None and feed.entries[0].author is None
    assert feed.skipped == 1


def test_atom_naive_updated_is_none() -> None:
    """An updated time without an offset is not guessed at."""
    data = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
      <entry><id>x</id><link href="https://example.invalid/x"/>
      <updated>2024-11-02T11:19:00</updated></entry></feed>"""
    assert atom.parse_feed(data).entries[0].updated is None


def test_rss_feed() -> None:
    """RSS 2.0 items give guid (else link) as id, pubDate as an aware time, enclosure type."""
    feed = atom.parse_feed(RSS)
    assert feed.kind == "rss"
    assert feed.title == "Fukushima shelter notices"
    first, second = feed.entries
    assert first.id == "notice-1"
    assert first.link == "https://example.invalid/items/1"
    assert first.updated == datetime(2024, 11, 2, 2, 19, tzinfo=UTC)
    assert first.content_type == "application/cap+xml"
    assert first.summary == "<b>open</b>"
    assert second.id == "https://example.invalid/items/2"
    assert second.updated is None
    assert feed.skipped == 1


@pytest.mark.parametrize(("data", "kind"), [
    (JMA_ATOM, "atom"),
    (RSS, "rss"),
    (CAP, "cap"),
    (CAP11_PREFIXED, "cap"),
    ((JMA_FIXTURES / "12_jmaxml_VTSE41_tsunami_torikeshi_cancel.xml").read_bytes(), "jma"),
    (b"<feed/>", "unknown"),
    (b'<alert xmlns="urn:example"/>', "unknown"),
    (b"not xml", "unknown"),
    (b'<!DOCTYPE feed [<!ENTITY x "y">]><feed xmlns="http://www.w3.org/2005/Atom"/>', "unknown"),
])
def test_document_kind(data: bytes, kind: str) -> None:
    """The root element's namespace and name (never its prefix) tell what a document is."""
    assert atom.document_kind(data) == kind
    assert atom.looks_like_feed(data) is (kind in ("atom", "rss"))


def test_single_cap_is_not_a_feed() -> None:
    """Parsing a CAP message as a feed is refused, naming what was found."""
    with pytest.raises(errors.InvalidMessage, match="cap"):
        atom.parse_feed(CAP)


@pytest.mark.parametrize(("data", "error", "reason"), [
    (b'<!DOCTYPE f SYSTEM "http://example.invalid/x"><feed/>', errors.UnsafeXml,
     "DOCTYPE is not allowed (found <!DOCTYPE f ...>)"),
    (b"<feed", errors.MalformedXml, "not well-formed XML: unclosed token: line 1, column 0"),
    (b'<rss version="2.0"/>', errors.InvalidMessage, "RSS document has no channel"),
])
def test_feed_refusals(data: bytes, error: type[errors.FeedError], reason: str) -> None:
    """DTDs, malformed XML and an RSS without channel are refused with FeedError subclasses."""
    with pytest.raises(error) as caught:
        atom.parse_feed(data)
    assert caught.value.reason == reason


def test_feed_size_limit() -> None:
    """A feed larger than max_bytes is refused."""
    with pytest.raises(errors.TooLarge):
        atom.parse_feed(JMA_ATOM, max_bytes=100)


def _atom_with(entries: str) -> bytes:
    return (f'<feed xmlns="http://www.w3.org/2005/Atom"><title>CAP</title>{entries}</feed>'
            .encode())


def _body(message: bytes) -> str:
    return message.decode().split("?>", 1)[1]


def test_atom_entry_with_cap_content_is_taken_without_a_link() -> None:
    """<content type="application/cap+xml"> holding an alert makes an entry with the alert as a
    document of its own (its namespace only) and no link to fetch."""
    data = _atom_with(
        '<entry><id>urn:x:1</id><updated>2026-06-01T09:00:00+09:00</updated>'
        f'<content type="application/cap+xml">{_body(capgen.message("in-1"))}</content></entry>')
    (entry,) = atom.parse_feed(data).entries
    assert (entry.id, entry.link, entry.summary) == ("urn:x:1", "", "")
    (doc,) = entry.inline
    assert cap.parse(doc).identifier == "in-1"
    assert b"Atom" not in doc


def test_rss_item_with_an_embedded_alert_and_no_guid() -> None:
    """An RSS item carrying a CAP alert as a child element is taken, with an id made from the
    message when it has neither guid nor link."""
    data = (b'<rss version="2.0"><channel><title>t</title><item><title>a</title>'
            + _body(capgen.message("rss-1")).encode() + b"</item></channel></rss>")
    (entry,) = atom.parse_feed(data).entries
    assert entry.id.startswith("sha256:") and entry.link == ""
    assert [cap.parse(d).identifier for d in entry.inline] == ["rss-1"]


def test_escaped_cap_content_is_taken() -> None:
    """A CAP message escaped as text in a content typed application/cap+xml is taken too."""
    escaped = escape(capgen.message("esc-1").decode())
    data = _atom_with(f'<entry><id>e</id><content type="application/cap+xml">{escaped}'
                      "</content></entry>")
    (entry,) = atom.parse_feed(data).entries
    assert [cap.parse(d).identifier for d in entry.inline] == ["esc-1"]


def test_signed_inline_message_keeps_its_signature() -> None:
    """A signed alert carried inline in a feed that declares other prefixes still verifies."""
    signed = capsign.sign(capgen.message("sig-in"))
    data = (b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:georss="http://www.georss.org/'
            b'georss"><title>t</title><entry><id>s</id><content type="application/cap+xml">'
            + _body(signed).encode() + b"</content></entry></feed>")
    (doc,) = atom.parse_feed(data).entries[0].inline
    verified = signatures.verified(doc, [capsign.signer().cert_pem], max_bytes=1_000_000)
    assert cap.parse(verified).identifier == "sig-in"


def test_inline_edxl_distribution_is_carried_whole() -> None:
    """An entry carrying an EDXL-DE distribution hands over the distribution itself."""
    data = _atom_with(f'<entry><id>d</id><content type="application/xml">'
                      f"{_body(capsign.edxl(capgen.message('de-1')))}</content></entry>")
    (doc,) = atom.parse_feed(data).entries[0].inline
    assert atom.document_kind(doc) == "edxl"


def test_entry_with_neither_link_nor_inline_cap_is_skipped_with_its_xml() -> None:
    """An entry with an id but neither a link nor inline CAP is skipped, keeping its id and XML."""
    feed = atom.parse_feed(_atom_with("<entry><id>urn:x:empty</id><title>nothing</title>"
                                      "<content type=\"text\">just words</content></entry>"))
    assert feed.entries == ()
    (skipped,) = feed.skipped_entries
    assert (skipped.id, skipped.title) == ("urn:x:empty", "nothing")
    assert b"just words" in skipped.raw
