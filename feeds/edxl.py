"""OASIS EDXL-DE 1.0 / 2.0 distributions: the CAP messages they carry, each a document of its own.

National systems often wrap CAP in an EDXL Distribution Element: one ``EDXLDistribution`` with
``contentObject`` elements (in 2.0 inside ``content``), each ``xmlContent`` holding the messages
in ``embeddedXMLContent``. :func:`unwrap` cuts every CAP ``alert`` found there out of the
envelope with the namespace declarations it uses and nothing else, so that each is handled like
a message posted on its own, and an XML signature made over it before it was wrapped still
verifies. Elements are matched by namespace URI, never by prefix; the envelope is screened like
any other input (:mod:`feeds.xmlsafe`: no DTD, no entity, no XInclude).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from feeds import cap, xmlsafe
from feeds.cap_area import show
from feeds.errors import InvalidMessage

NAMESPACES: Final = {
    "urn:oasis:names:tc:emergency:EDXL:DE:1.0": "1.0",
    "urn:oasis:names:tc:emergency:EDXL:DE:2.0": "2.0",
}
ROOT: Final = "EDXLDistribution"


@dataclass(frozen=True, slots=True)
class Distribution:
    """An EDXL distribution: its id and sender, and the CAP messages it carries (as documents)."""

    version: str
    distribution_id: str
    sender_id: str
    alerts: tuple[bytes, ...]
    others: int  # embedded XML documents that are not CAP, left alone


def is_distribution(namespace: str, local: str) -> bool:
    """Whether a root element (namespace URI and local name) is an EDXL-DE distribution."""
    return local == ROOT and namespace in NAMESPACES


def _is_cap(element: Any) -> bool:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return False
    namespace, local = xmlsafe.split(tag)
    return local == "alert" and namespace in cap.NAMESPACES


def _child_text(root: Any, namespace: str, local: str) -> str:
    found = root.find(xmlsafe.qname(namespace, local))
    return "".join(found.itertext()).strip() if found is not None else ""


def unwrap(data: bytes, *, max_bytes: int) -> Distribution | None:
    """The CAP messages of an EDXL-DE 1.0/2.0 distribution (InvalidMessage if it carries none);
    None when the document is not a distribution."""
    root = xmlsafe.tree(data, max_bytes=max_bytes)
    namespace, local = xmlsafe.split(root.tag)
    if not is_distribution(namespace, local):
        return None
    alerts: list[bytes] = []
    others = 0
    for holder in root.iter(xmlsafe.qname(namespace, "embeddedXMLContent")):
        for element in holder:
            if _is_cap(element):
                alerts.append(xmlsafe.document(element))
            elif isinstance(element.tag, str):
                others += 1
    distribution = Distribution(
        version=NAMESPACES[namespace],
        distribution_id=_child_text(root, namespace, "distributionID"),
        sender_id=_child_text(root, namespace, "senderID"),
        alerts=tuple(alerts),
        others=others,
    )
    if not alerts:
        raise InvalidMessage(
            f"the EDXL-DE {distribution.version} distribution "
            f"{show(distribution.distribution_id)} carries no CAP alert in embeddedXMLContent"
            + (f" ({others} other embedded documents)" if others else ""))
    return distribution
