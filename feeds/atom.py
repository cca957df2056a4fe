"""Feed indexes: Atom (JMA publishes its disaster XML as Atom) and RSS 2.0.

`parse_feed` turns an index into `Entry` values pointing at the documents to fetch;
`document_kind` tells an index from a single CAP or JMA document by its root element (namespace
and local name, never a prefix), so a poller configured with one URL can accept either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal
from xml.etree.ElementTree import Element

from feeds import errors, xmlsafe

NS_ATOM: Final = "http://www.w3.org/2005/Atom"
CAP_NAMESPACES: Final = frozenset({
    "urn:oasis:names:tc:emergency:cap:1.2",
    "urn:oasis:names:tc:emergency:cap:1.1",
    "http://www.incident.com/cap/1.0",
})
NS_JMA: Final = "http://xml.kishou.go.jp/jmaxml1/"
MAX_BYTES: Final = 5_000_000

DocumentKind = Literal["atom", "rss", "cap", "jma", "unknown"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a feed: a document to fetch, identified by `id`."""

    id: str
    updated: datetime | None
    title: str
    link: str
    content_type: str | None
    author: str | None
    summary: str


@dataclass(frozen=True, slots=True)
class Feed:
    """A parsed feed index; `skipped` counts entries with neither id nor link."""

    kind: Literal["atom", "rss"]
    title: str
    entries: tuple[Entry, ...]
    skipped: int


def kind_of(root: Element) -> DocumentKind:
    """What a parsed document is, from its root element's namespace and name."""
    namespace, local = xmlsafe.split(root.tag)
    if (namespace, local) == (NS_ATOM, "feed"):
        return "atom"
    if (namespace, local) == ("", "rss"):
        return "rss"
    if local == "alert" and namespace in CAP_NAMESPACES:
        return "cap"
    if (namespace, local) == (NS_JMA, "Report"):
        return "jma"
    return "unknown"


def document_kind(data: bytes, *, max_bytes: int = MAX_BYTES) -> DocumentKind:
    """What a document is (Atom, RSS, CAP, JMA or unknown); unreadable XML is "unknown"."""
    try:
        return kind_of(xmlsafe.parse(data, max_bytes=max_bytes))
    except errors.FeedError:
        return "unknown"


def looks_like_feed(data: bytes) -> bool:
    """Whether a document is a feed index (Atom or RSS) rather than a single message."""
    return document_kind(data) in ("atom", "rss")


def _text(parent: Element, tag: str) -> str:
    found = parent.find(tag)
    return "".join(found.itertext()).strip() if found is not None else ""


def _aware(value: datetime) -> datetime | None:
    return value if value.tzinfo is not None else None


def rfc3339(text: str) -> datetime | None:
    """An Atom date (RFC 3339, with offset), or None when absent, naive or unreadable."""
    try:
        return _aware(datetime.fromisoformat(text.strip())) if text.strip() else None
    except ValueError:
        return None


def rfc822(text: str) -> datetime | None:
    """An RSS date (RFC 822/2822), or None when absent, without a zone or unreadable."""
    try:
        return _aware(parsedate_to_datetime(text.strip())) if text.strip() else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _atom_link(entry: Element) -> tuple[str, str | None]:
    """The href and type of an entry's alternate link (rel absent or "alternate")."""
    links = entry.findall(f"{{{NS_ATOM}}}link")
    chosen = next((k for k in links if k.get("rel", "alternate") == "alternate"), None)
    if chosen is None and links:
        chosen = links[0]
    if chosen is None:
        return "", None
    return chosen.get("href", "").strip(), chosen.get("type") or None


def _atom_entry(entry: Element) -> Entry:
    a = f"{{{NS_ATOM}}}"
    link, content_type = _atom_link(entry)
    author = _text(entry, f"{a}author/{a}name")
    return Entry(
        id=_text(entry, f"{a}id") or link,
        updated=rfc3339(_text(entry, f"{a}updated") or _text(entry, f"{a}published")),
        title=_text(entry, f"{a}title"),
        link=link,
        content_type=content_type,
        author=author or None,
        summary=_text(entry, f"{a}content") or _text(entry, f"{a}summary"),
    )


def _rss_item(item: Element) -> Entry:
    link = _text(item, "link")
    enclosure = item.find("enclosure")
    return Entry(
        id=_text(item, "guid") or link,
        updated=rfc822(_text(item, "pubDate")),
        title=_text(item, "title"),
        link=link,
        content_type=enclosure.get("type") if enclosure is not None else None,
        author=_text(item, "author") or None,
        summary=_text(item, "description"),
    )


def _feed(kind: Literal["atom", "rss"], title: str, entries: list[Entry]) -> Feed:
    kept = tuple(e for e in entries if e.id)
    return Feed(kind, title, kept, len(entries) - len(kept))


def parse_feed(data: bytes, *, max_bytes: int = MAX_BYTES) -> Feed:
    """Parse an Atom or RSS 2.0 feed index; anything else raises InvalidMessage."""
    root = xmlsafe.parse(data, max_bytes=max_bytes)
    kind = kind_of(root)
    if kind == "atom":
        entries = [_atom_entry(e) for e in root.findall(f"{{{NS_ATOM}}}entry")]
        return _feed("atom", _text(root, f"{{{NS_ATOM}}}title"), entries)
    if kind == "rss":
        channel = root.find("channel")
        if channel is None:
            raise errors.InvalidMessage("RSS document has no channel")
        items = [_rss_item(i) for i in channel.findall("item")]
        return _feed("rss", _text(channel, "title"), items)
    raise errors.InvalidMessage(
        f"not a feed: root element {root.tag[:100]!r} (a {kind} document), expected Atom "
        f"{{{NS_ATOM}}}feed or RSS 2.0 rss")
