"""Parsing a sheet document (decoded JSON) into a `Sheet`, collecting every field error.

`parse` never stops at the first problem: it reads the whole document and raises
`SheetInvalid` with one `FieldError` per bad field, in reading order. A field with a bad value
gets one error and is not looked into further; unknown fields are refused.

Paths name the field as a JavaScript/jq accessor from the document's root: ``name``,
``places[0].lat``, ``hazards.flood_depth``, ``triggers.flood``; a key that is not an identifier
(``[A-Za-z_][A-Za-z0-9_]*``) is written as a JSON string in brackets, so ``actions["3"][0]`` and
``members[1]["bad key"]``. The document itself is the empty path ``""``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from sheets import model
from sheets.errors import FieldError, SheetInvalid

T = TypeVar("T")
Parser = Callable[[Any, str, "_Errors"], T]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FORBIDDEN = {rule: re.compile(rule.forbidden)
              for rule in (model.NAME, model.PHONE, model.ACTION, model.NOTE)}
_TRAVEL = ("route", "mode", "minutes")
DESTINATION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "shelter": ("kind", "shelter_id", *_TRAVEL),
    "relative": ("kind", "lat", "lon", "label", *_TRAVEL),
    "hotel": ("kind", "lat", "lon", "label", *_TRAVEL),
    "stay": ("kind", "floor", "note"),
}


def parse(document: Any) -> model.Sheet:
    """The sheet in a decoded JSON document, or `SheetInvalid` listing every field error."""
    errs = _Errors()
    ok, sheet = errs.run(document, "", _sheet)
    if errs.items or not ok:
        raise SheetInvalid(errs.items)
    return sheet


def key_path(path: str, key: str) -> str:
    """The path of an object member (see the module docstring for the syntax)."""
    if _IDENT.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


class _Bad(Exception):
    """This value is wrong, for this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Failed(Exception):
    """Something inside this value was wrong, and has been recorded."""


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, reason: str) -> None:
        self.items.append(FieldError(path, reason))

    def run(self, raw: Any, path: str, parse: Parser[T]) -> tuple[bool, T]:
        """Parse one value; on failure record why and answer (False, a placeholder)."""
        try:
            return True, parse(raw, path, self)
        except _Bad as bad:
            self.add(path, bad.reason)
        except _Failed:
            pass
        return False, cast(T, None)


class _Object:
    """A JSON object being read. `req` and `opt` record problems and return a placeholder for a
    bad field; `close` then raises, so placeholders never reach a model value."""

    def __init__(self, raw: Any, path: str, errs: _Errors, allowed: tuple[str, ...],
                 unknown: str = "unknown field") -> None:
        if not isinstance(raw, dict):
            raise _Bad("must be an object")
        self.raw, self.path, self.errs, self.allowed = raw, path, errs, allowed
        self.unknown = unknown
        self.failed = False

    def has(self, key: str) -> bool:
        return key in self.raw

    def req(self, key: str, parse: Parser[T]) -> T:
        if key not in self.raw:
            self.errs.add(key_path(self.path, key), "is required")
            self.failed = True
            return cast(T, None)
        return cast(T, self.opt(key, parse))

    def opt(self, key: str, parse: Parser[T]) -> T | None:
        if key not in self.raw:
            return None
        ok, value = self.errs.run(self.raw[key], key_path(self.path, key), parse)
        self.failed |= not ok
        return value

    def pair(self, first: str, second: str) -> None:
        """Both fields or neither."""
        for have, missing in ((first, second), (second, first)):
            if have in self.raw and missing not in self.raw:
                self.error(missing, f"is required when {have} is given")

    def error(self, key: str, reason: str) -> None:
        self.errs.add(key_path(self.path, key), reason)
        self.failed = True

    def close(self) -> None:
        for key in self.raw:
            if key not in self.allowed:
                self.error(key, self.unknown)
        if self.failed:
            raise _Failed


# --- leaves --------------------------------------------------------------------------------


def text(rule: model.TextRule) -> Parser[str]:
    """A string within the rule's length, without lone surrogates or forbidden controls."""
    def parse(raw: Any, _path: str, _errs: _Errors) -> str:
        if not isinstance(raw, str):
            raise _Bad("must be a string")
        if len(raw) < rule.min_len:
            raise _Bad("must not be empty")
        if len(raw) > rule.max_len:
            raise _Bad(f"must be at most {rule.max_len} characters")
        if _SURROGATE.search(raw):
            raise _Bad("must not contain lone surrogates")
        if "\x00" in raw:
            raise _Bad("must not contain NUL characters")
        if _FORBIDDEN[rule].search(raw):
            raise _Bad("must not contain control characters other than line breaks and tabs"
                       if rule.multiline else "must not contain control characters")
        return raw
    return parse


def number(lo: float, hi: float) -> Parser[float]:
    """A finite number within [lo, hi]."""
    def parse(raw: Any, _path: str, _errs: _Errors) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise _Bad("must be a number")
        try:
            value = float(raw)
        except OverflowError:  # an integer with hundreds of digits
            value = math.inf
        if not math.isfinite(value) or not lo <= value <= hi:
            raise _Bad(f"must be between {lo:g} and {hi:g}")
        return value
    return parse


def integer(lo: int, hi: int) -> Parser[int]:
    """An integer within [lo, hi]; 3.0 counts as 3, as in JSON Schema."""
    def parse(raw: Any, _path: str, _errs: _Errors) -> int:
        if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _Bad("must be an integer")
        if not lo <= raw <= hi:
            raise _Bad(f"must be between {lo} and {hi}")
        return raw
    return parse


def choice(options: tuple[str, ...]) -> Parser[str]:
    """One of a fixed set of strings."""
    def parse(raw: Any, _path: str, _errs: _Errors) -> str:
        if not isinstance(raw, str) or raw not in options:
            raise _Bad(f"must be one of {', '.join(options)}")
        return raw
    return parse


def boolean(raw: Any, _path: str, _errs: _Errors) -> bool:
    """true or false."""
    if not isinstance(raw, bool):
        raise _Bad("must be true or false")
    return raw


def level(raw: Any, _path: str, _errs: _Errors) -> int:
    """A 警戒レベル at which to leave: 3, 4 or 5 (3.0 counts as 3, as in JSON Schema)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw not in model.LEVELS:
        raise _Bad("must be 3, 4 or 5")
    return int(raw)


def items(item: Parser[T], max_items: int, *, min_items: int = 0,
          unique: bool = False) -> Parser[tuple[T, ...]]:
    """A list of at most max_items values, each parsed (and its errors collected)."""
    def parse(raw: Any, path: str, errs: _Errors) -> tuple[T, ...]:
        if not isinstance(raw, list):
            raise _Bad("must be a list")
        if len(raw) < min_items:
            raise _Bad(f"must have at least {min_items} item{'s' if min_items > 1 else ''}")
        if len(raw) > max_items:
            raise _Bad(f"must have at most {max_items} items")
        results = [errs.run(value, f"{path}[{i}]", item) for i, value in enumerate(raw)]
        if not all(ok for ok, _ in results):
            raise _Failed
        values = tuple(value for _, value in results)
        if unique and len(set(values)) != len(values):
            raise _Bad("must not repeat an item")
        return values
    return parse


# --- the parts of a sheet -----------------------------------------------------------------

LAT, LON = number(-90, 90), number(-180, 180)
MINUTES = integer(0, model.MAX_MINUTES)
FLOORS = integer(1, model.MAX_FLOORS)
ROUTE, MODE = text(model.NOTE), choice(model.TRAVEL_MODES)


def _place(raw: Any, path: str, errs: _Errors) -> model.Place:
    o = _Object(raw, path, errs, ("kind", "lat", "lon", "label", "floors", "floor"))
    place = model.Place(kind=o.req("kind", choice(model.PLACE_KINDS)), lat=o.req("lat", LAT),
                        lon=o.req("lon", LON), label=o.opt("label", text(model.NAME)),
                        floors=o.opt("floors", FLOORS), floor=o.opt("floor", FLOORS))
    if place.floor is not None and place.floors is not None and place.floor > place.floors:
        o.error("floor", f"must not be above floors ({place.floors})")
    o.close()
    return place


def _places(raw: Any, path: str, errs: _Errors) -> tuple[model.Place, ...]:
    ok, places = errs.run(raw, path, items(_place, model.MAX_PLACES, min_items=1))
    if isinstance(raw, list) and 0 < len(raw) <= model.MAX_PLACES:
        # Counted on the raw items, so a home with a bad field still counts.
        homes = sum(1 for p in raw if isinstance(p, dict) and p.get("kind") == "home")
        if homes != 1:
            raise _Bad(f"must have exactly one place of kind home (found {homes})")
    if not ok:
        raise _Failed
    return places


def _hazards(raw: Any, path: str, errs: _Errors) -> model.Hazards:
    o = _Object(raw, path, errs, ("flood_depth", "flood_duration", "house_collapse_zone",
                                  "landslide", "tsunami", "storm_surge_depth",
                                  "inland_flood_depth"))
    depth = choice(model.DEPTH_BANDS)
    hazards = model.Hazards(
        flood_depth=o.opt("flood_depth", depth),
        flood_duration=o.opt("flood_duration", choice(model.DURATION_BANDS)),
        house_collapse_zone=o.opt("house_collapse_zone", boolean),
        landslide=o.opt("landslide", choice(model.LANDSLIDE_ZONES)),
        tsunami=o.opt("tsunami", boolean),
        storm_surge_depth=o.opt("storm_surge_depth", depth),
        inland_flood_depth=o.opt("inland_flood_depth", depth),
    )
    o.close()
    return hazards


def _member(raw: Any, path: str, errs: _Errors) -> model.Member:
    o = _Object(raw, path, errs, ("label", "age", "needs", "needs_support", "supported_by"))
    member = model.Member(
        label=o.opt("label", text(model.NAME)), age=o.opt("age", choice(model.AGE_BANDS)),
        needs=o.opt("needs", items(choice(model.NEEDS), len(model.NEEDS), unique=True)),
        needs_support=o.opt("needs_support", boolean),
        supported_by=o.opt("supported_by", text(model.NAME)))
    o.close()
    return member


def _pet(raw: Any, path: str, errs: _Errors) -> model.Pet:
    o = _Object(raw, path, errs, ("kind", "count", "label"))
    pet = model.Pet(kind=o.req("kind", choice(model.PET_KINDS)),
                    count=o.opt("count", integer(1, model.MAX_PET_COUNT)),
                    label=o.opt("label", text(model.NAME)))
    o.close()
    return pet


def _destination(raw: Any, path: str, errs: _Errors) -> model.Destination:
    o = _Object(raw, path, errs, ())
    kind = o.req("kind", choice(model.DESTINATION_KINDS))
    if o.failed:
        raise _Failed
    o.allowed = DESTINATION_FIELDS[kind]
    dest: model.Destination
    if kind == "stay":
        dest = model.StayDestination(floor=o.opt("floor", FLOORS),
                                     note=o.opt("note", text(model.NOTE)))
    elif kind == "shelter":
        dest = model.ShelterDestination(
            shelter_id=o.req("shelter_id", text(model.NAME)), route=o.opt("route", ROUTE),
            mode=o.opt("mode", MODE), minutes=o.opt("minutes", MINUTES))
    elif kind == "relative":
        dest = model.RelativeDestination(
            lat=o.req("lat", LAT), lon=o.req("lon", LON), label=o.opt("label", text(model.NAME)),
            route=o.opt("route", ROUTE), mode=o.opt("mode", MODE),
            minutes=o.opt("minutes", MINUTES))
    else:
        o.pair("lat", "lon")
        dest = model.HotelDestination(
            lat=o.opt("lat", LAT), lon=o.opt("lon", LON), label=o.opt("label", text(model.NAME)),
            route=o.opt("route", ROUTE), mode=o.opt("mode", MODE),
            minutes=o.opt("minutes", MINUTES))
    o.close()
    return dest


def _triggers(raw: Any, path: str, errs: _Errors) -> tuple[tuple[str, int], ...]:
    o = _Object(raw, path, errs, model.HAZARDS,
                f"unknown hazard (one of {', '.join(model.HAZARDS)})")
    found = {h: o.opt(h, level) for h in model.HAZARDS}
    o.close()
    return tuple((h, v) for h, v in found.items() if v is not None)


def _actions(raw: Any, path: str, errs: _Errors) -> tuple[tuple[str, tuple[str, ...]], ...]:
    o = _Object(raw, path, errs, model.ACTION_LEVELS, "unknown level (one of 1, 2, 3, 4, 5)")
    todo = items(text(model.ACTION), model.MAX_ACTIONS_PER_LEVEL)
    found = {lv: o.opt(lv, todo) for lv in model.ACTION_LEVELS}
    o.close()
    return tuple((lv, v) for lv, v in found.items() if v is not None)


def _contact(raw: Any, path: str, errs: _Errors) -> model.Contact:
    o = _Object(raw, path, errs, ("label", "phone", "note"))
    contact = model.Contact(label=o.req("label", text(model.NAME)),
                            phone=o.opt("phone", text(model.PHONE)),
                            note=o.opt("note", text(model.NOTE)))
    o.close()
    return contact


def _meeting_point(raw: Any, path: str, errs: _Errors) -> model.MeetingPoint:
    o = _Object(raw, path, errs, ("label", "lat", "lon"))
    o.pair("lat", "lon")
    point = model.MeetingPoint(label=o.req("label", text(model.NAME)), lat=o.opt("lat", LAT),
                               lon=o.opt("lon", LON))
    o.close()
    return point


SHEET_FIELDS = ("name", "places", "hazards", "supplies_days", "members", "pets", "destinations",
                "triggers", "actions", "carry_items", "contacts", "meeting_point", "note")


def _sheet(raw: Any, path: str, errs: _Errors) -> model.Sheet:
    o = _Object(raw, path, errs, SHEET_FIELDS)
    sheet = model.Sheet(
        name=o.req("name", text(model.NAME)),
        places=o.req("places", _places),
        hazards=o.opt("hazards", _hazards),
        supplies_days=o.opt("supplies_days", integer(0, model.MAX_SUPPLIES_DAYS)),
        members=o.opt("members", items(_member, model.MAX_MEMBERS)),
        pets=o.opt("pets", items(_pet, model.MAX_PETS)),
        destinations=o.opt("destinations", items(_destination, model.MAX_DESTINATIONS)),
        triggers=o.opt("triggers", _triggers),
        actions=o.opt("actions", _actions),
        carry_items=o.opt("carry_items", items(text(model.NAME), model.MAX_CARRY_ITEMS)),
        contacts=o.opt("contacts", items(_contact, model.MAX_CONTACTS)),
        meeting_point=o.opt("meeting_point", _meeting_point),
        note=o.opt("note", text(model.NOTE)),
    )
    # A field that failed holds a placeholder None: the check needs both parts sound.
    if sheet.places is not None and sheet.destinations is not None:
        floors = sheet.home.floors
        for i, dest in enumerate(sheet.destinations):
            if isinstance(dest, model.StayDestination) and dest.floor is not None \
                    and floors is not None and dest.floor > floors:
                o.failed = True
                errs.add(f"destinations[{i}].floor",
                         f"must not be above the home's floors ({floors})")
    o.close()
    return sheet
