"""Feed indexes: Atom (JMA publishes its disaster XML as Atom) and RSS 2.0.

`parse_feed` turns an index into `Entry` values pointing at the documents to fetch;
`document_kind` tells an index from a single CAP or JMA document by its root element (namespace
and local name, never a prefix), so a poller configured with one URL can accept either.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal
from xml.etree.ElementTree import Element

from feeds import edxl, errors, xmlsafe

NS_ATOM: Final = "http://www.w3.org/2005/Atom"
CAP_NAMESPACES: Final = frozenset({
    "urn:oasis:names:tc:emergency:cap:1.2",
    "urn:oasis:names:tc:emergency:cap:1.1",
    "http://www.incident.com/cap/1.0",
})
NS_JMA: Final = "http://xml.kishou.go.jp/jmaxml1/"
MAX_BYTES: Final = 5_000_000

DocumentKind = Literal["atom", "rss", "cap", "edxl", "jma", "unknown"]
_DECLARATION = re.compile(r"\A<\?xml[^>]*\?>\s*")


SKIPPED_REASON: Final = "the entry has neither a link nor an inline CAP message"


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a feed, identified by `id`: a document to fetch (`link`), or the CAP
    messages (or EDXL-DE distributions) it carries itself (`inline`, each a document)."""

    id: str
    updated: datetime | None
    title: str
    link: str
    content_type: str | None
    author: str | None
    summary: str
    inline: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry with neither a link nor inline CAP: nothing to take from it (`raw`: its XML)."""

    id: str
    title: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Feed:
    """A parsed feed index: the entries to take, and those skipped (see :class:`Skipped`)."""

    kind: Literal["atom", "rss"]
    title: str
    entries: tuple[Entry, ...]
    skipped_entries: tuple[Skipped, ...] = ()

    @property
    def skipped(self) -> int:
        """How many entries were skipped."""
        return len(self.skipped_entries)


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
    if edxl.is_distribution(namespace, local):
        return "edxl"
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


def carried(entry: Any) -> list[Any]:
    """The CAP alerts and EDXL-DE distributions an entry carries itself (in its content, or as
    elements of its own), outermost first; works on ElementTree and lxml elements alike."""
    found: list[Any] = []
    stack = list(reversed(list(entry)))
    while stack:  # no recursion: a hostile feed may nest deeply
        element = stack.pop()
        if not isinstance(element.tag, str):  # comments, processing instructions
            continue
        namespace, local = xmlsafe.split(element.tag)
        if ((local == "alert" and namespace in CAP_NAMESPACES)
                or edxl.is_distribution(namespace, local)):
            found.append(element)
        else:
            stack.extend(reversed(list(element)))
    return found


def _escaped(entry: Element, content_tag: str) -> bytes | None:
    """A CAP message carried as escaped text in a content element typed as CAP."""
    content = entry.find(content_tag)
    if content is None or "cap" not in (content.get("type") or "").lower() or len(content):
        return None
    text = _DECLARATION.sub("", (content.text or "").strip(), count=1)
    return text.encode("utf-8") if text.startswith("<") else None


def _fallback_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _atom_entry(entry: Element, inline: tuple[bytes, ...]) -> Entry:
    a = f"{{{NS_ATOM}}}"
    link, content_type = _atom_link(entry)
    author = _text(entry, f"{a}author/{a}name")
    return Entry(
        id=_text(entry, f"{a}id") or link or (_fallback_id(inline[0]) if inline else ""),
        updated=rfc3339(_text(entry, f"{a}updated") or _text(entry, f"{a}published")),
        title=_text(entry, f"{a}title"),
        link=link,
        content_type=content_type,
        author=author or None,
        summary="" if inline else _text(entry, f"{a}content") or _text(entry, f"{a}summary"),
        inline=inline,
    )


def _rss_item(item: Element, inline: tuple[bytes, ...]) -> Entry:
    enclosure = item.find("enclosure")
    link = _text(item, "link") or (enclosure.get("url", "").strip()
                                   if enclosure is not None else "")
    return Entry(
        id=_text(item, "guid") or link or (_fallback_id(inline[0]) if inline else ""),
        updated=rfc822(_text(item, "pubDate")),
        title=_text(item, "title"),
        link=link,
        content_type=enclosure.get("type") if enclosure is not None else None,
        author=_text(item, "author") or None,
        summary="" if inline else _text(item, "description"),
        inline=inline,
    )


def _inline(data: bytes, elements: list[Element], content_tag: str, path: str,
            max_bytes: int) -> list[tuple[bytes, ...]]:
    """The inline documents of each entry. They are cut out of an lxml reading of the feed, so
    that each keeps its own prefixes and namespace declarations (a signature over it still
    verifies); the plain reading only tells whether any entry carries one."""
    escaped = [_escaped(e, content_tag) for e in elements]
    if not any(carried(e) for e in elements):
        return [(doc,) if doc is not None else () for doc in escaped]
    twins = xmlsafe.tree(data, max_bytes=max_bytes).findall(path)
    return [tuple(xmlsafe.document(x) for x in carried(twin)) or ((doc,) if doc else ())
            for twin, doc in zip(twins, escaped, strict=True)]


def _feed(kind: Literal["atom", "rss"], title: str, entries: list[Entry],
          elements: list[Element]) -> Feed:
    kept: list[Entry] = []
    skipped: list[Skipped] = []
    for entry, element in zip(entries, elements, strict=True):
        if entry.link or entry.inline:
            kept.append(entry)
        else:
            raw = ET.tostring(element, encoding="utf-8")
            skipped.append(Skipped(entry.id or _fallback_id(raw), entry.title, raw))
    return Feed(kind, title, tuple(kept), tuple(skipped))


def parse_feed(data: bytes, *, max_bytes: int = MAX_BYTES) -> Feed:
    """Parse an Atom or RSS 2.0 feed index; anything else raises InvalidMessage."""
    root = xmlsafe.parse(data, max_bytes=max_bytes)
    kind = kind_of(root)
    if kind == "atom":
        path = f"{{{NS_ATOM}}}entry"
        elements = root.findall(path)
        inline = _inline(data, elements, f"{{{NS_ATOM}}}content", path, max_bytes)
        entries = [_atom_entry(e, i) for e, i in zip(elements, inline, strict=True)]
        return _feed("atom", _text(root, f"{{{NS_ATOM}}}title"), entries, elements)
    if kind == "rss":
        channel = root.find("channel")
        if channel is None:
            raise errors.InvalidMessage("RSS document has no channel")
        elements = channel.findall("item")
        inline = _inline(data, elements, "description", "channel/item", max_bytes)
        entries = [_rss_item(e, i) for e, i in zip(elements, inline, strict=True)]
        return _feed("rss", _text(channel, "title"), entries, elements)
    raise errors.InvalidMessage(
        f"not a feed: root element {root.tag[:100]!r} (a {kind} document), expected Atom "
        f"{{{NS_ATOM}}}feed or RSS 2.0 rss")
