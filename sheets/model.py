"""The My Evacuation Sheet (マイ避難シート) as domain values, and the limits that bound it.

Modelled on Fukushima Prefecture's sheet, Tokyo's マイ・タイムライン and the Cabinet Office's
避難行動判定フロー: where the household lives and what threatens the home (from the hazard map),
who lives there and who needs help, where it goes, and at which 警戒レベル it leaves.

Every optional field is ``None`` when the document leaves it out, so ``as_json`` gives back the
document as it was sent (`sheets.validate` builds these values; nothing else sees raw JSON).
The enumerations and limits below are the one source for the validator and the JSON Schema.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from feeds.shelters import HAZARDS

__all__ = ["HAZARDS"]

LEVELS: Final = (3, 4, 5)
"""警戒レベル at which a household may plan to leave: 3 高齢者等避難, 4 避難指示, 5 緊急安全確保."""
ACTION_LEVELS: Final = ("1", "2", "3", "4", "5")
"""A マイ・タイムライン plans actions from level 1 (早期注意情報) to 5."""
PLACE_KINDS: Final = ("home", "work", "school", "relative", "other")
DEPTH_BANDS: Final = ("<0.5", "0.5-3", "3-5", ">5")
"""Expected inundation depth in metres, as the hazard maps' legends group it."""
DURATION_BANDS: Final = ("<12h", "12h-1d", "1d-3d", "3d-1w", "1w-2w", "2w-4w", ">4w")
"""浸水継続時間 (how long the water stays above 0.5 m), as the flood maps' legends group it."""
LANDSLIDE_ZONES: Final = ("none", "warning", "special")
"""none; 土砂災害警戒区域 (yellow zone); 土砂災害特別警戒区域 (red zone)."""
AGE_BANDS: Final = ("0-5", "6-12", "13-17", "18-64", "65-74", "75+")
NEEDS: Final = ("elderly", "infant", "pregnant", "disability", "medical")
PET_KINDS: Final = ("dog", "cat", "other")
DESTINATION_KINDS: Final = ("shelter", "relative", "hotel", "stay")
TRAVEL_MODES: Final = ("walk", "wheelchair", "bicycle", "car", "public_transport", "other")

MAX_PLACES: Final = 5
MAX_MEMBERS: Final = 10
MAX_PETS: Final = 10
MAX_PET_COUNT: Final = 50
MAX_DESTINATIONS: Final = 5
MAX_CONTACTS: Final = 10
MAX_CARRY_ITEMS: Final = 50
MAX_ACTIONS_PER_LEVEL: Final = 20
MAX_FLOORS: Final = 200
MAX_MINUTES: Final = 1440
MAX_SUPPLIES_DAYS: Final = 365

# Age bands whose members take longer to leave, like the needs below (高齢者・乳幼児).
_SLOW_AGES: Final = frozenset({"0-5", "65-74", "75+"})


@dataclass(frozen=True, slots=True)
class TextRule:
    """Limits of one kind of text field: length in code points, and whether line breaks and
    tabs are allowed. Other control characters (C0, DEL, C1; NUL included) and lone surrogates
    never are."""

    max_len: int
    multiline: bool = False
    min_len: int = 1

    @property
    def forbidden(self) -> str:
        """A regular expression (Python and ECMA-262 alike) matching a forbidden character."""
        if self.multiline:
            return "[\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]"
        return "[\\u0000-\\u001f\\u007f-\\u009f]"


NAME: Final = TextRule(100)
"""Names and labels: the sheet's name, places, members, contacts, carry items, shelter IDs."""
PHONE: Final = TextRule(30)
ACTION: Final = TextRule(200)
NOTE: Final = TextRule(500, multiline=True)
"""Route notes and free notes."""


def _drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Place:
    """A place the household cares about; ``floor`` is the floor it lives on (1 = ground floor,
    as 1階), ``floors`` the building's storeys (階数)."""

    kind: str
    lat: float
    lon: float
    label: str | None = None
    floors: int | None = None
    floor: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The place as the document writes it."""
        return _drop_none({"kind": self.kind, "lat": self.lat, "lon": self.lon,
                           "label": self.label, "floors": self.floors, "floor": self.floor})


@dataclass(frozen=True, slots=True)
class Hazards:
    """What the hazard map says about the home. Water hazards with a vertical escape (river
    flood, storm surge, inland flood) carry a depth band; a tsunami zone and the house-collapse
    zone are yes/no. Left out: not in that zone (or not known)."""

    flood_depth: str | None = None
    flood_duration: str | None = None
    house_collapse_zone: bool | None = None
    landslide: str | None = None
    tsunami: bool | None = None
    storm_surge_depth: str | None = None
    inland_flood_depth: str | None = None

    def depth(self, hazard: str) -> str | None:
        """The depth band for a water hazard (flood, storm_surge, inland_flood), else None."""
        return {"flood": self.flood_depth, "storm_surge": self.storm_surge_depth,
                "inland_flood": self.inland_flood_depth}.get(hazard)

    @property
    def exposed(self) -> tuple[str, ...]:
        """The hazards the map puts the home in, in HAZARDS order."""
        found = {
            "flood": self.flood_depth is not None or bool(self.house_collapse_zone),
            "landslide": self.landslide not in (None, "none"),
            "storm_surge": self.storm_surge_depth is not None,
            "tsunami": bool(self.tsunami),
            "inland_flood": self.inland_flood_depth is not None,
        }
        return tuple(h for h in HAZARDS if found.get(h, False))

    def as_json(self) -> dict[str, Any]:
        """The hazards as the document writes them."""
        return _drop_none({
            "flood_depth": self.flood_depth, "flood_duration": self.flood_duration,
            "house_collapse_zone": self.house_collapse_zone, "landslide": self.landslide,
            "tsunami": self.tsunami, "storm_surge_depth": self.storm_surge_depth,
            "inland_flood_depth": self.inland_flood_depth,
        })


@dataclass(frozen=True, slots=True)
class Member:
    """A household member: age band, needs, and whether (and by whom) they are helped to leave."""

    label: str | None = None
    age: str | None = None
    needs: tuple[str, ...] | None = None
    needs_support: bool | None = None
    supported_by: str | None = None

    @property
    def needs_time(self) -> bool:
        """Whether this member takes longer to leave (the 高齢者等 of 警戒レベル3)."""
        return bool(self.needs) or bool(self.needs_support) or self.age in _SLOW_AGES

    def as_json(self) -> dict[str, Any]:
        """The member as the document writes it."""
        return _drop_none({"label": self.label, "age": self.age,
                           "needs": list(self.needs) if self.needs is not None else None,
                           "needs_support": self.needs_support,
                           "supported_by": self.supported_by})


@dataclass(frozen=True, slots=True)
class Pet:
    """Pets evacuating with the household (同行避難)."""

    kind: str
    count: int | None = None
    label: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The pet entry as the document writes it."""
        return _drop_none({"kind": self.kind, "count": self.count, "label": self.label})


@dataclass(frozen=True, slots=True)
class ShelterDestination:
    """A designated shelter, by the ID of the shelter list."""

    shelter_id: str
    route: str | None = None
    mode: str | None = None
    minutes: int | None = None
    kind: str = "shelter"

    def as_json(self) -> dict[str, Any]:
        """The destination as the document writes it."""
        return _drop_none({"kind": self.kind, "shelter_id": self.shelter_id,
                           "route": self.route, "mode": self.mode, "minutes": self.minutes})


@dataclass(frozen=True, slots=True)
class RelativeDestination:
    """A relative's or friend's home in a safe place (親戚・知人宅)."""

    lat: float
    lon: float
    label: str | None = None
    route: str | None = None
    mode: str | None = None
    minutes: int | None = None
    kind: str = "relative"

    def as_json(self) -> dict[str, Any]:
        """The destination as the document writes it."""
        return _drop_none({"kind": self.kind, "lat": self.lat, "lon": self.lon,
                           "label": self.label, "route": self.route, "mode": self.mode,
                           "minutes": self.minutes})


@dataclass(frozen=True, slots=True)
class HotelDestination:
    """A hotel or inn; its location is optional (both coordinates or neither)."""

    lat: float | None = None
    lon: float | None = None
    label: str | None = None
    route: str | None = None
    mode: str | None = None
    minutes: int | None = None
    kind: str = "hotel"

    def as_json(self) -> dict[str, Any]:
        """The destination as the document writes it."""
        return _drop_none({"kind": self.kind, "lat": self.lat, "lon": self.lon,
                           "label": self.label, "route": self.route, "mode": self.mode,
                           "minutes": self.minutes})


@dataclass(frozen=True, slots=True)
class StayDestination:
    """Staying in (屋内安全確保), optionally moving up to ``floor`` of the home (垂直避難)."""

    floor: int | None = None
    note: str | None = None
    kind: str = "stay"

    def as_json(self) -> dict[str, Any]:
        """The destination as the document writes it."""
        return _drop_none({"kind": self.kind, "floor": self.floor, "note": self.note})


Destination = ShelterDestination | RelativeDestination | HotelDestination | StayDestination


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone to call (緊急連絡先)."""

    label: str
    phone: str | None = None
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The contact as the document writes it."""
        return _drop_none({"label": self.label, "phone": self.phone, "note": self.note})


@dataclass(frozen=True, slots=True)
class MeetingPoint:
    """Where the household meets when apart (家族の集合場所); location: both or neither."""

    label: str
    lat: float | None = None
    lon: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The meeting point as the document writes it."""
        return _drop_none({"label": self.label, "lat": self.lat, "lon": self.lon})


@dataclass(frozen=True, slots=True)
class Sheet:
    """One household's My Evacuation Sheet. ``triggers`` and ``actions`` are pairs in a fixed
    order (HAZARDS; levels 1..5) so the value stays immutable."""

    name: str
    places: tuple[Place, ...]
    hazards: Hazards | None = None
    supplies_days: int | None = None
    members: tuple[Member, ...] | None = None
    pets: tuple[Pet, ...] | None = None
    destinations: tuple[Destination, ...] | None = None
    triggers: tuple[tuple[str, int], ...] | None = None
    actions: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    carry_items: tuple[str, ...] | None = None
    contacts: tuple[Contact, ...] | None = None
    meeting_point: MeetingPoint | None = None
    note: str | None = None

    @property
    def home(self) -> Place:
        """The home place (validation guarantees exactly one)."""
        return next(p for p in self.places if p.kind == "home")

    def trigger(self, hazard: str) -> int | None:
        """The level at which the household leaves for this hazard, if it planned one."""
        return dict(self.triggers or ()).get(hazard)

    @property
    def needs_time(self) -> bool:
        """Whether a member takes longer to leave, so the household should go at level 3."""
        return any(m.needs_time for m in self.members or ())

    @property
    def shelter_ids(self) -> tuple[str, ...]:
        """The shelters the destinations name, in priority order, each once."""
        ids = [d.shelter_id for d in self.destinations or ()
               if isinstance(d, ShelterDestination)]
        return tuple(dict.fromkeys(ids))

    def as_json(self) -> dict[str, Any]:
        """The sheet as the document writes it (what is stored and returned)."""
        def many(items: tuple[Any, ...] | None) -> list[Any] | None:
            return None if items is None else [i.as_json() for i in items]

        return _drop_none({
            "name": self.name,
            "places": many(self.places),
            "hazards": self.hazards.as_json() if self.hazards is not None else None,
            "supplies_days": self.supplies_days,
            "members": many(self.members),
            "pets": many(self.pets),
            "destinations": many(self.destinations),
            "triggers": dict(self.triggers) if self.triggers is not None else None,
            "actions": ({level: list(items) for level, items in self.actions}
                        if self.actions is not None else None),
            "carry_items": list(self.carry_items) if self.carry_items is not None else None,
            "contacts": many(self.contacts),
            "meeting_point": (self.meeting_point.as_json()
                              if self.meeting_point is not None else None),
            "note": self.note,
        })


@dataclass(frozen=True, slots=True)
class StoredSheet:
    """A sheet as the server keeps it: its client-chosen id, the server-assigned version, and
    either the sheet or a tombstone (``deleted``, no sheet)."""

    id: uuid.UUID
    version: int
    deleted: bool
    sheet: Sheet | None

    def as_json(self) -> dict[str, Any]:
        """The stored sheet as the API shows it (a tombstone has no ``sheet``)."""
        out: dict[str, Any] = {"id": str(self.id), "version": self.version,
                               "deleted": self.deleted}
        if self.sheet is not None:
            out["sheet"] = self.sheet.as_json()
        return out
