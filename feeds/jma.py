"""JMA disaster XML (気象庁防災情報XML): the Control and Head of any report, and warnings.

Every report's Control and Head are read; the Body is read only for the meteorological
warning schema (``body/meteorology1``), whose ``Warning`` elements list, per area, the kinds of
warning and their status (発表, 継続, 解除, なし, …). Other bodies (tsunami, earthquake, …) give
an empty `warnings`. Areas are kept by their code exactly as written (6 or 7 digits for
municipal areas) and never by name: names repeat across Japan (福島町 is in Hokkaido).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from xml.etree.ElementTree import Element

from feeds import errors, xmlsafe

NS_REPORT: Final = "http://xml.kishou.go.jp/jmaxml1/"
NS_HEAD: Final = "http://xml.kishou.go.jp/jmaxml1/informationBasis1/"
NS_METEOROLOGY: Final = "http://xml.kishou.go.jp/jmaxml1/body/meteorology1/"
MAX_BYTES: Final = 2_000_000

CONTROL_STATUSES: Final = frozenset({"通常", "訓練", "試験"})
INFO_TYPES: Final = frozenset({"発表", "訂正", "遅延", "取消"})
_LEVEL: Final = re.compile(r"警戒レベル([1-5])(相当)?")
# Kind names of the 2026 warning scheme start with their level (レベル３大雨警報).
_NAMED_LEVEL: Final = re.compile(r"^レベル([1-5])")


@dataclass(frozen=True, slots=True)
class JmaLevel:
    """A 警戒レベル equivalent a Kind states, and what it is about: the Significancy's or
    Property's type (e.g. 大雨浸水危険度), or "" when the Kind states it untyped (in its text or
    as the レベルN of its name)."""

    source: str
    level: int


@dataclass(frozen=True, slots=True)
class JmaKind:
    """One kind of warning for an area (e.g. レベル３大雨警報) and its status (発表, 解除, …)."""

    name: str
    code: str
    status: str
    level_equivalent: int | None
    levels: tuple[JmaLevel, ...] = ()


@dataclass(frozen=True, slots=True)
class JmaAreaWarning:
    """The warning kinds in force, issued or lifted for one area, by its JMA area code."""

    area_code: str
    area_name: str
    kinds: tuple[JmaKind, ...]
    warning_type: str


@dataclass(frozen=True, slots=True)
class JmaReport:
    """A JMA report's Control and Head, and its area warnings when it carries any."""

    title: str
    control_title: str
    control_status: str
    sent: datetime
    info_type: str
    info_kind: str
    report_datetime: datetime
    target_datetime: datetime | None
    event_id: str | None
    serial: str | None
    editorial_office: str
    publishing_office: str
    headline: str
    warnings: tuple[JmaAreaWarning, ...]

    @property
    def is_exercise(self) -> bool:
        """Whether this is a drill (訓練) or test (試験) message rather than a real one."""
        return self.control_status != "通常"


def _quote(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "…")


def _child(parent: Element, ns: str, name: str) -> Element | None:
    return parent.find(f"{{{ns}}}{name}")


def _text(parent: Element | None, ns: str, name: str) -> str:
    """The stripped text of parent/ns:name, "" when absent or empty."""
    if parent is None:
        return ""
    found = _child(parent, ns, name)
    return (found.text or "").strip() if found is not None else ""


def _required(parent: Element, ns: str, name: str, where: str) -> str:
    value = _text(parent, ns, name)
    if not value:
        raise errors.InvalidMessage(f"JMA report has no {where}/{name}")
    return value


def _datetime(text: str, what: str) -> datetime:
    """An ISO 8601 time with an offset; naive or unreadable times are refused."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise errors.InvalidMessage(f"JMA {what} {_quote(text)} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise errors.InvalidMessage(f"JMA {what} {_quote(text)} has no UTC offset")
    return value


def level_equivalent(kind: Element) -> int | None:
    """The highest 警戒レベルN(相当) stated anywhere inside a Kind (full-width digits too)."""
    levels = [
        int(match.group(1))
        for text in kind.itertext()
        for match in _LEVEL.finditer(unicodedata.normalize("NFKC", text))
    ]
    return max(levels) if levels else None


def typed_levels(kind: Element) -> tuple[JmaLevel, ...]:
    """Every 警戒レベルN(相当) a Kind states, with the type of the Significancy or Property it
    is stated in, and the レベルN its name starts with; its LastKind (what it was) is skipped."""
    found: list[JmaLevel] = []

    def walk(element: Element, source: str) -> None:
        if element.tag == f"{{{NS_METEOROLOGY}}}Significancy":
            source = element.get("type", "").strip() or source
        elif element.tag == f"{{{NS_METEOROLOGY}}}Property":
            source = _text(element, NS_METEOROLOGY, "Type") or source
        for match in _LEVEL.finditer(unicodedata.normalize("NFKC", element.text or "")):
            found.append(JmaLevel(source, int(match.group(1))))
        for child in element:
            if child.tag != f"{{{NS_METEOROLOGY}}}LastKind":
                walk(child, source)

    walk(kind, "")
    named = _NAMED_LEVEL.match(unicodedata.normalize("NFKC", _text(kind, NS_METEOROLOGY, "Name")))
    if named:
        found.append(JmaLevel("", int(named.group(1))))
    return tuple(dict.fromkeys(found))


def _kind(element: Element) -> JmaKind:
    return JmaKind(
        name=_text(element, NS_METEOROLOGY, "Name"),
        code=_text(element, NS_METEOROLOGY, "Code"),
        status=_text(element, NS_METEOROLOGY, "Status"),
        level_equivalent=level_equivalent(element),
        levels=typed_levels(element),
    )


def _area(element: Element) -> tuple[str, str]:
    """An Area's (code, name); an area without a numeric code cannot be resolved."""
    name = _text(element, NS_METEOROLOGY, "Name")
    code = _text(element, NS_METEOROLOGY, "Code")
    if not (code.isascii() and code.isdigit()):
        raise errors.UnresolvableArea(
            f"JMA area {name[:60] or '(unnamed)'} has no numeric code ({_quote(code)}); "
            "areas are never matched by name")
    return code, name


def _item_areas(item: Element) -> list[Element]:
    direct = item.findall(f"{{{NS_METEOROLOGY}}}Area")
    nested = item.findall(f"{{{NS_METEOROLOGY}}}Areas/{{{NS_METEOROLOGY}}}Area")
    return direct + nested


def warnings(body: Element | None) -> tuple[JmaAreaWarning, ...]:
    """The area warnings of a meteorology1 Body, in document order; () for any other body."""
    if body is None or body.tag != f"{{{NS_METEOROLOGY}}}Body":
        return ()
    found: list[JmaAreaWarning] = []
    for warning in body.findall(f"{{{NS_METEOROLOGY}}}Warning"):
        warning_type = warning.get("type", "").strip()
        for item in warning.findall(f"{{{NS_METEOROLOGY}}}Item"):
            kinds = tuple(_kind(k) for k in item.findall(f"{{{NS_METEOROLOGY}}}Kind"))
            for area in _item_areas(item):
                code, name = _area(area)
                found.append(JmaAreaWarning(code, name, kinds, warning_type))
    return tuple(found)


def _root(data: bytes, max_bytes: int) -> Element:
    root = xmlsafe.parse(data, max_bytes=max_bytes)
    if root.tag != f"{{{NS_REPORT}}}Report":
        raise errors.InvalidMessage(
            f"root element is {_quote(root.tag)}, expected Report in namespace {NS_REPORT}")
    return root


def parse(data: bytes, *, max_bytes: int = MAX_BYTES) -> JmaReport:
    """Parse a JMA disaster XML report; FeedError subclasses say why one is refused."""
    root = _root(data, max_bytes)
    control = _child(root, NS_REPORT, "Control")
    head = _child(root, NS_HEAD, "Head")
    if control is None or head is None:
        raise errors.InvalidMessage("JMA report lacks its Control or Head (informationBasis1)")
    control_status = _required(control, NS_REPORT, "Status", "Control")
    if control_status not in CONTROL_STATUSES:
        raise errors.InvalidMessage(
            f"JMA Control/Status {_quote(control_status)} is not one of 通常/訓練/試験")
    info_type = _required(head, NS_HEAD, "InfoType", "Head")
    if info_type not in INFO_TYPES:
        raise errors.InvalidMessage(f"JMA Head/InfoType {_quote(info_type)} is not one of "
                                    "発表/訂正/遅延/取消")
    target = _text(head, NS_HEAD, "TargetDateTime")
    body = next((child for child in root if child.tag.endswith("}Body")), None)
    return JmaReport(
        title=_required(head, NS_HEAD, "Title", "Head"),
        control_title=_required(control, NS_REPORT, "Title", "Control"),
        control_status=control_status,
        sent=_datetime(_required(control, NS_REPORT, "DateTime", "Control"), "Control/DateTime"),
        info_type=info_type,
        info_kind=_text(head, NS_HEAD, "InfoKind"),
        report_datetime=_datetime(_required(head, NS_HEAD, "ReportDateTime", "Head"),
                                  "Head/ReportDateTime"),
        target_datetime=_datetime(target, "Head/TargetDateTime") if target else None,
        event_id=_text(head, NS_HEAD, "EventID") or None,
        serial=_text(head, NS_HEAD, "Serial") or None,
        editorial_office=_text(control, NS_REPORT, "EditorialOffice"),
        publishing_office=_text(control, NS_REPORT, "PublishingOffice"),
        headline=_text(_child(head, NS_HEAD, "Headline"), NS_HEAD, "Text"),
        warnings=warnings(body),
    )
