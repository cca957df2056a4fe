"""Safe XML parsing for untrusted feed input, and namespace-aware element lookups.

:func:`parse` reads a document in two passes over the same bytes, both with the C expat parser:

1. a *screening* pass with no element handlers (so it runs at C speed) that refuses, the moment
   expat reports them, a DOCTYPE (and with it every DTD, entity declaration, external entity
   and parameter entity: none of these can exist without one) and any declaration of the
   XInclude namespace. Expat never fetches anything itself; no external-entity handler is
   installed and parameter-entity parsing is off, so nothing is ever opened or resolved;
2. the ordinary ``xml.etree.ElementTree`` build, which only ever sees screened documents.

Refusing the DOCTYPE outright, rather than expanding entities carefully, is what makes entity
bombs ("billion laughs", quadratic blow-up) and XXE impossible rather than merely bounded.
ElementTree resolves prefixes to namespace URIs (``{uri}local``), so the lookups below match
elements by URI whatever prefix the sender chose.

Encodings expat cannot read natively (multi-byte ones such as Shift_JIS or EUC-JP, which
Japanese systems still emit) are transcoded to UTF-8 with Python's codecs first; the result
goes through the same screening.
"""

from __future__ import annotations

import codecs
import copy
import re
import xml.etree.ElementTree as ET
from typing import Any
from xml.parsers import expat

from lxml import etree as lxml_etree

from feeds.errors import InvalidMessage, MalformedXml, TooLarge, UnsafeXml

Children = dict[str, list[ET.Element]]
XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"}
)
# Encodings expat decodes itself; anything else is transcoded with Python's codecs.
_NATIVE = frozenset({"utf_8", "utf_16", "utf_16_be", "utf_16_le", "ascii", "latin_1"})
_DECLARED = re.compile(
    rb"\A(?:\xef\xbb\xbf)?<\?xml[^>]*?\bencoding\s*=\s*([\"'])([A-Za-z][A-Za-z0-9._-]*)\1"
)
_DECLARED_TEXT = re.compile(
    r"(\A\ufeff?<\?xml[^>]*?\bencoding\s*=\s*[\"'])[A-Za-z][A-Za-z0-9._-]*"
)
# Japanese senders label cp932 (Shift_JIS plus the NEC/IBM extensions such as ① and ㈱) as
# Shift_JIS or by its IANA name; decoding it strictly as Shift_JIS would refuse those characters.
_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932"}
_SHOWN = 120


def _on_doctype(name: str | None, *_: object) -> None:
    """Refuse a DOCTYPE as soon as it starts, before its internal subset is read."""
    raise UnsafeXml(f"DOCTYPE is not allowed (found <!DOCTYPE {(name or '')[:_SHOWN]} ...>)")


def _on_entity_decl(name: str | None, *_: object) -> None:
    """Refuse an entity or notation declaration (unreachable without a DOCTYPE; kept as a guard)."""
    raise UnsafeXml(f"entity declarations are not allowed (found {(name or '')[:_SHOWN]!r})")


def _on_external_entity(*_: object) -> int:
    """Refuse a reference to an external entity instead of resolving it."""
    raise UnsafeXml("external entities are not allowed")


def _on_namespace(_prefix: str | None, uri: str | None) -> None:
    """Refuse any declaration of the XInclude namespace."""
    if uri in XINCLUDE_NAMESPACES:
        raise UnsafeXml("XInclude is not allowed")


def _transcode(data: bytes) -> bytes:
    """The document in UTF-8 if it declares an encoding expat cannot decode itself."""
    declared = _DECLARED.match(data)
    if declared is None:
        return data
    name = declared.group(2).decode("ascii")
    try:
        codec = codecs.lookup(_ALIASES.get(name.lower(), name)).name
    except LookupError:
        raise MalformedXml(f"unknown encoding {name!r}") from None
    if codec.replace("-", "_") in _NATIVE:
        return data
    try:
        text = data.decode(codec)
        # The declaration is ASCII in every encoding that can carry one readably, so it is
        # found again in the decoded text and made to tell the truth about the new bytes.
        return _DECLARED_TEXT.sub(r"\g<1>UTF-8", text, count=1).encode("utf-8")
    except (UnicodeError, LookupError, ValueError) as exc:
        raise MalformedXml(f"the document cannot be decoded as {name!r}: {exc}") from None


def _screen(data: bytes) -> None:
    """Pass 1: refuse DTDs, entities and XInclude; report malformed XML with its position."""
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _on_doctype
    parser.EntityDeclHandler = _on_entity_decl
    parser.UnparsedEntityDeclHandler = _on_entity_decl
    parser.NotationDeclHandler = _on_entity_decl
    parser.ExternalEntityRefHandler = _on_external_entity
    parser.StartNamespaceDeclHandler = _on_namespace
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        # expat's unknown-encoding handler: a declared encoding it cannot use.
        raise MalformedXml(f"unreadable XML: {exc}") from None


def screened(data: bytes, *, max_bytes: int) -> bytes:
    """The document (in UTF-8 if expat cannot decode its encoding) once it passed screening:
    oversized, DTD/entity/XInclude-bearing and malformed input is refused."""
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    if len(data) > max_bytes:
        raise TooLarge(f"the document is {len(data)} bytes, more than the limit of {max_bytes}")
    if not data.strip():
        raise MalformedXml("the document is empty")
    data = _transcode(data)
    _screen(data)
    return data


def parse(data: bytes, *, max_bytes: int) -> ET.Element:
    """Parse untrusted XML, refusing oversized, DTD/entity/XInclude-bearing or malformed input."""
    data = screened(data, max_bytes=max_bytes)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        raise MalformedXml(f"not well-formed XML: {exc} (line {line}, column {column})") from None
    except (ValueError, LookupError) as exc:
        raise MalformedXml(f"unreadable XML: {exc}") from None


def _lxml_parser() -> Any:
    # Belt and braces: screened documents hold no DTD, but lxml is told anyway never to load
    # one, resolve an entity or touch the network.
    return lxml_etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                dtd_validation=False, huge_tree=False, remove_blank_text=False)


def tree(data: bytes, *, max_bytes: int) -> Any:
    """Parse untrusted XML with lxml, screened exactly as :func:`parse` does: for the steps
    that need the document's own prefixes and bytes-level fidelity (XML signatures, cutting a
    message out of an envelope). Returns the lxml root element."""
    data = screened(data, max_bytes=max_bytes)
    try:
        return lxml_etree.fromstring(data, parser=_lxml_parser())
    except lxml_etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        raise MalformedXml(f"unreadable XML: {exc}") from None


def document(element: Any) -> bytes:
    """An lxml element as a document of its own (UTF-8, with its declaration), carrying only
    the namespace declarations its subtree uses: an element cut out of an envelope serialises
    as the sender wrote it, so that a signature over it still verifies."""
    alone = copy.deepcopy(element)  # a copy drops the envelope's unused declarations
    return bytes(lxml_etree.tostring(alone, encoding="UTF-8", xml_declaration=True))


def split(tag: str) -> tuple[str, str]:
    """The namespace URI ("" if none) and the local name of an ElementTree tag."""
    if tag[:1] == "{":
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def qname(namespace: str, local: str) -> str:
    """The ElementTree tag of ``local`` in ``namespace`` (any prefix the document used)."""
    return f"{{{namespace}}}{local}" if namespace else local


def find(element: ET.Element, namespace: str, local: str) -> ET.Element | None:
    """The first child of ``element`` named ``local`` in ``namespace``, or None."""
    tag = qname(namespace, local)
    for child in element:
        if child.tag == tag:
            return child
    return None


def children(element: ET.Element, namespace: str) -> Children:
    """The children of ``element`` in ``namespace``, grouped by local name, in document order."""
    grouped: Children = {}
    prefix = qname(namespace, "")
    cut = len(prefix)
    for child in element:
        tag = child.tag
        # Comments and processing instructions have a function as their tag.
        if isinstance(tag, str) and tag.startswith(prefix) and (cut or tag[:1] != "{"):
            grouped.setdefault(tag[cut:], []).append(child)
    return grouped


def text(element: ET.Element) -> str:
    """All the character data inside ``element`` (nested markup flattened), unstripped."""
    if len(element) == 0:
        return element.text or ""
    return "".join(element.itertext())


def optional(kids: Children, name: str) -> str | None:
    """The stripped text of the first ``name`` child that has any; None when absent or empty."""
    for element in kids.get(name, ()):
        value = text(element).strip()
        if value:
            return value
    return None


def required(kids: Children, name: str) -> str:
    """The stripped text of the one ``name`` child; InvalidMessage if missing, empty or repeated."""
    found = kids.get(name, [])
    if len(found) > 1:
        raise InvalidMessage(f"<{name}> appears {len(found)} times; it must appear once")
    value = text(found[0]).strip() if found else ""
    if not value:
        raise InvalidMessage(f"required element <{name}> is missing or empty")
    return value
