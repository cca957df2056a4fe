"""OASIS CAP 1.1 / 1.2 messages: untrusted bytes to frozen domain values.

Elements are matched by namespace URI, never by prefix. The rules, strict where a mistake
would misdirect an evacuation order and lenient where feeds are known to be sloppy:

- Strict (:class:`~feeds.errors.InvalidMessage`): the ``alert`` header (``identifier``,
  ``sender``, ``sent``, ``status``, ``msgType``, ``scope`` present, once, with valid values),
  every ``references`` triple, and every date-time that is present (a wrong ``expires``
  decides when an order ends, so it is never guessed). CAP 1.0 is refused: its
  ``references`` and key/value elements have other shapes.
- Lenient: empty elements count as absent; enumerations match case-insensitively; an empty or
  unknown ``urgency``/``severity``/``certainty`` is None, unknown categories and response
  types are left out; ``language`` defaults to ``en-US``; key/value pairs without a value
  are left out.
- Shapes are repaired or dropped one by one: ``+`` signs, stray commas and any whitespace
  between pairs are tolerated, an open ring is closed, longitudes a little past ±180 are read
  across the antimeridian, a shape that is empty is ignored, and one that is out of range or
  too small (fewer than 4 positions once closed) is dropped; a circle that is unreadable is
  dropped. Every repair or drop is described in :attr:`CapAlert.warnings`. A polygon with
  stray characters (not a list of ``lat,lon`` pairs) fails the message: a part of an
  evacuation area is never silently left out.

Shape parsing and area geometry live in :mod:`feeds.cap_area`; :class:`CapArea`,
:class:`Circle`, :func:`parse_polygon`, :func:`parse_circle` and :func:`area_geometry` are
re-exported here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from feeds import xmlsafe
from feeds.cap_area import SHOWN, show
from feeds.cap_area import CapArea as CapArea
from feeds.cap_area import Circle as Circle
from feeds.cap_area import Ring as Ring
from feeds.cap_area import area_geometry as area_geometry
from feeds.cap_area import parse_circle as parse_circle
from feeds.cap_area import parse_polygon as parse_polygon
from feeds.errors import InvalidMessage

Version = Literal["1.1", "1.2"]
Status = Literal["Actual", "Exercise", "System", "Test", "Draft"]
MsgType = Literal["Alert", "Update", "Cancel", "Ack", "Error"]
Scope = Literal["Public", "Restricted", "Private"]
E = TypeVar("E", bound=str)

NAMESPACES: dict[str, Version] = {
    "urn:oasis:names:tc:emergency:cap:1.1": "1.1",
    "urn:oasis:names:tc:emergency:cap:1.2": "1.2",
}
CAP_10 = "http://www.incident.com/cap/1.0"
DEFAULT_MAX_BYTES = 1_048_576
DEFAULT_LANGUAGE = "en-US"


def _names(*values: E) -> dict[str, E]:
    """An enumeration keyed by its lower-cased values, for case-insensitive matching."""
    return {v.lower(): v for v in values}


STATUSES: dict[str, Status] = _names("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES: dict[str, MsgType] = _names("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES: dict[str, Scope] = _names("Public", "Restricted", "Private")
CATEGORIES = _names(
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
    "CBRNE", "Other",
)
RESPONSE_TYPES = _names(
    "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"
)
URGENCIES = _names("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = _names("Extreme", "Severe", "Moderate", "Minor", "Unknown")
# CAP 1.1 asks that 1.0's "Very Likely" be read as "Likely".
CERTAINTIES = {**_names("Observed", "Likely", "Possible", "Unlikely", "Unknown"),
               "very likely": "Likely"}

_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:[+-][0-9]{2}:[0-9]{2}|Z)"
)
_KEY_FORBIDDEN = re.compile(r"[\s,<&]")


@dataclass(frozen=True, slots=True)
class CapReference:
    """One earlier message named in ``references``."""

    sender: str
    identifier: str
    sent: str

    @property
    def key(self) -> tuple[str, str]:
        """The referenced message's key: (sender, identifier)."""
        return self.sender, self.identifier


@dataclass(frozen=True, slots=True)
class CapInfo:
    """One ``info`` block: the alert in one language."""

    language: str = DEFAULT_LANGUAGE
    categories: tuple[str, ...] = ()
    event: str = ""
    response_types: tuple[str, ...] = ()
    urgency: str | None = None
    severity: str | None = None
    certainty: str | None = None
    event_codes: tuple[tuple[str, str], ...] = ()
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    areas: tuple[CapArea, ...] = ()


@dataclass(frozen=True, slots=True)
class CapAlert:
    """A CAP message; ``warnings`` lists the repairs and drops made while reading it."""

    version: Version
    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    references: tuple[CapReference, ...] = ()
    infos: tuple[CapInfo, ...] = ()
    note: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """The message's stable key: (sender, identifier)."""
        return self.sender, self.identifier


def _version(root: ET.Element) -> tuple[str, Version]:
    """The CAP namespace and version of the root element, or InvalidMessage."""
    namespace, local = xmlsafe.split(root.tag)
    if local == "alert" and namespace in NAMESPACES:
        return namespace, NAMESPACES[namespace]
    if namespace == CAP_10:
        raise InvalidMessage("CAP 1.0 is not supported: send CAP 1.1 or 1.2")
    where = f"in namespace {show(namespace)}" if namespace else "without a namespace"
    raise InvalidMessage(
        f"not a CAP 1.1/1.2 alert: the root element is <{local[:SHOWN]}> {where}"
    )


def _key_part(value: str, name: str) -> str:
    """An identifier or sender, refused if it holds characters CAP forbids there."""
    if _KEY_FORBIDDEN.search(value):
        raise InvalidMessage(
            f"<{name}> {show(value)} must not contain whitespace, commas, '<' or '&'"
        )
    return value


def _enum(value: str, allowed: dict[str, E], name: str) -> E:
    """A required enumeration value, matched case-insensitively."""
    found = allowed.get(value.lower())
    if found is None:
        raise InvalidMessage(
            f"<{name}> {show(value)} is not one of {', '.join(allowed.values())}"
        )
    return found


def parse_datetime(value: str, label: str) -> datetime:
    """A CAP date-time with its UTC offset (``-00:00`` and ``Z`` mean UTC), or InvalidMessage."""
    if _DATETIME.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidMessage(
        f"{label} {show(value)} is not a date-time with an offset, like 2025-04-13T05:52:12+09:00"
    )


def parse_references(value: str | None) -> tuple[CapReference, ...]:
    """The whitespace-separated ``sender,identifier,sent`` triples of ``references``."""
    if value is None:
        return ()
    found = []
    for token in value.split():
        parts = token.split(",")
        if len(parts) != 3 or not all(parts):
            raise InvalidMessage(
                f"<references> entry {show(token)} is not a sender,identifier,sent triple"
            )
        found.append(CapReference(sender=parts[0], identifier=parts[1], sent=parts[2]))
    return tuple(found)


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> CapAlert:
    """Parse a CAP 1.1 or 1.2 message, refusing unsafe, malformed or invalid input."""
    root = xmlsafe.parse(data, max_bytes=max_bytes)
    ns, version = _version(root)
    kids = xmlsafe.children(root, ns)
    warnings: list[str] = []
    identifier = _key_part(xmlsafe.required(kids, "identifier"), "identifier")
    sender = _key_part(xmlsafe.required(kids, "sender"), "sender")
    sent = parse_datetime(xmlsafe.required(kids, "sent"), "<sent>")
    status = _enum(xmlsafe.required(kids, "status"), STATUSES, "status")
    msg_type = _enum(xmlsafe.required(kids, "msgType"), MSG_TYPES, "msgType")
    scope = _enum(xmlsafe.required(kids, "scope"), SCOPES, "scope")
    references = parse_references(xmlsafe.optional(kids, "references"))
    infos = tuple(
        _info(xmlsafe.children(element, ns), ns, f"info {i}", warnings)
        for i, element in enumerate(kids.get("info", ()), start=1)
    )
    return CapAlert(
        version=version,
        identifier=identifier,
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=scope,
        references=references,
        infos=infos,
        note=xmlsafe.optional(kids, "note"),
        warnings=tuple(warnings),
    )


def _lenient(
    kids: xmlsafe.Children, name: str, allowed: dict[str, str], where: str, warnings: list[str]
) -> tuple[str, ...]:
    """Every known value of a repeatable enumeration; unknown ones are noted and left out."""
    found: dict[str, None] = {}
    for element in kids.get(name, ()):
        value = xmlsafe.text(element).strip()
        if not value:
            continue
        known = allowed.get(value.lower())
        if known is None:
            warnings.append(f"{where}: ignored unknown <{name}> {show(value)}")
        else:
            found[known] = None
    return tuple(found)


def _single(
    kids: xmlsafe.Children, name: str, allowed: dict[str, str], where: str, warnings: list[str]
) -> str | None:
    """The first known value of an optional-ish enumeration, or None."""
    values = _lenient(kids, name, allowed, where, warnings)
    return values[0] if values else None


def _when(kids: xmlsafe.Children, name: str, where: str) -> datetime | None:
    """An optional date-time: None when absent or empty, InvalidMessage when unreadable."""
    value = xmlsafe.optional(kids, name)
    return None if value is None else parse_datetime(value, f"{where}: <{name}>")


def _pairs(kids: xmlsafe.Children, ns: str, name: str) -> tuple[tuple[str, str], ...]:
    """The (valueName, value) pairs of ``name`` children; pairs missing either are left out."""
    found = []
    for element in kids.get(name, ()):
        pair = xmlsafe.children(element, ns)
        key, value = xmlsafe.optional(pair, "valueName"), xmlsafe.optional(pair, "value")
        if key is not None and value is not None:
            found.append((key, value))
    return tuple(found)


def _info(kids: xmlsafe.Children, ns: str, where: str, warnings: list[str]) -> CapInfo:
    """One ``info`` block."""
    return CapInfo(
        language=xmlsafe.optional(kids, "language") or DEFAULT_LANGUAGE,
        categories=_lenient(kids, "category", CATEGORIES, where, warnings),
        event=xmlsafe.optional(kids, "event") or "",
        response_types=_lenient(kids, "responseType", RESPONSE_TYPES, where, warnings),
        urgency=_single(kids, "urgency", URGENCIES, where, warnings),
        severity=_single(kids, "severity", SEVERITIES, where, warnings),
        certainty=_single(kids, "certainty", CERTAINTIES, where, warnings),
        event_codes=_pairs(kids, ns, "eventCode"),
        effective=_when(kids, "effective", where),
        onset=_when(kids, "onset", where),
        expires=_when(kids, "expires", where),
        sender_name=xmlsafe.optional(kids, "senderName"),
        headline=xmlsafe.optional(kids, "headline"),
        description=xmlsafe.optional(kids, "description"),
        instruction=xmlsafe.optional(kids, "instruction"),
        web=xmlsafe.optional(kids, "web"),
        parameters=_pairs(kids, ns, "parameter"),
        areas=tuple(
            _area(xmlsafe.children(area, ns), ns, f"{where} area {i}", warnings)
            for i, area in enumerate(kids.get("area", ()), start=1)
        ),
    )


def _area(kids: xmlsafe.Children, ns: str, where: str, warnings: list[str]) -> CapArea:
    """One ``area``, its unusable shapes dropped with a warning each."""
    polygons = []
    for i, polygon in enumerate(kids.get("polygon", ()), start=1):
        ring = parse_polygon(xmlsafe.text(polygon), f"{where} polygon {i}", warnings)
        if ring is not None:
            polygons.append(ring)
    circles = []
    for i, circle in enumerate(kids.get("circle", ()), start=1):
        found = parse_circle(xmlsafe.text(circle), f"{where} circle {i}", warnings)
        if found is not None:
            circles.append(found)
    return CapArea(
        desc=xmlsafe.optional(kids, "areaDesc") or "",
        polygons=tuple(polygons),
        circles=tuple(circles),
        geocodes=_pairs(kids, ns, "geocode"),
    )
