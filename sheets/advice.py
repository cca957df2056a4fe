"""Advice derived from a sheet (pure), following the Cabinet Office's 避難行動判定フロー.

The flow: is the home in a zone the hazard map colours? If not, leaving is as a rule not
needed. If it is, leave (立退き避難) — unless, for water, the home is outside the
house-collapse zone, the household is above the expected water and its supplies last until
the water recedes: then staying in (屋内安全確保) is possible. A landslide or tsunami zone is
always left. Households with members who need time leave at 警戒レベル3 (高齢者等避難), the
others by level 4; level 5 is too late to count on.

`stay` answers that question for one hazard (the renderer uses it too); `advise` lists the
advice for a sheet, most severe first. Shelter facts come in through a mapping, so the API
layer looks them up and this stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sheets import advice_texts as texts
from sheets import model

SEVERITIES: Final = ("danger", "warning", "info")
# Every advice code with its severity, in the order advice of one severity is listed.
_TABLE: Final = (
    ("house_collapse_zone", "danger"), ("landslide_zone", "danger"), ("tsunami_zone", "danger"),
    ("floor_inundated", "danger"), ("stay_not_safe", "danger"),
    ("depth_unbounded", "warning"), ("floor_unknown", "warning"), ("supplies_short", "warning"),
    ("no_destination", "warning"), ("shelter_unknown", "warning"),
    ("shelter_not_designated", "warning"), ("no_trigger", "warning"),
    ("leave_at_level_3", "warning"), ("trigger_level_5", "warning"),
    ("support_unassigned", "warning"),
    ("hazards_unknown", "info"), ("no_mapped_hazard", "info"), ("stay_possible", "info"),
    ("stay_possible_if_supplies", "info"), ("pets_shelter", "info"),
)
CODES: Final = tuple(code for code, _ in _TABLE)
_SEVERITY: Final = dict(_TABLE)
# The highest floor the water of a depth band reaches above its floor level (1 = 1階); ">5" is
# open-ended: at least the second floor, maybe more (5–10 m reaches 3〜4階).
_FLOODED_FLOORS: Final = {"<0.5": 0, "0.5-3": 1, "3-5": 2, ">5": 2}
# The days the water may stay, by 浸水継続時間 band (its upper end).
_DURATION_DAYS: Final = {"<12h": 0.5, "12h-1d": 1, "1d-3d": 3, "3d-1w": 7, "1w-2w": 14,
                         "2w-4w": 28, ">4w": float("inf")}


@dataclass(frozen=True, slots=True)
class ShelterFacts:
    """What advice needs of a shelter: its name and hazard flags (none: a 指定避難所 listed
    without flags, which, as for openings, is taken to serve any hazard)."""

    name: str
    hazards: frozenset[str]


@dataclass(frozen=True, slots=True)
class StayVerdict:
    """Whether staying in is safe for one hazard: True (possible), False (leave) or None (the
    sheet cannot tell), and the advice code that says why."""

    safe: bool | None
    code: str


@dataclass(frozen=True, slots=True)
class Advice:
    """One piece of advice: a stable code, its severity, the hazards it is about, its text."""

    code: str
    severity: str
    hazards: tuple[str, ...]
    ja: str
    en: str

    def as_json(self) -> dict[str, Any]:
        """The advice as the API shows it."""
        return {"code": self.code, "severity": self.severity, "hazards": list(self.hazards),
                "text": {"ja": self.ja, "en": self.en}}


def stay(sheet: model.Sheet, hazard: str) -> StayVerdict:
    """Whether the household may stay in (屋内安全確保) during this hazard, per the flow."""
    hazards = sheet.hazards
    if hazards is None:
        return StayVerdict(None, "hazards_unknown")
    if hazard not in hazards.exposed:
        if hazard in ("earthquake", "fire", "volcano"):
            return StayVerdict(None, "not_judged")  # the sheet has no map for these
        return StayVerdict(True, "no_mapped_hazard")
    if hazard == "landslide":
        return StayVerdict(False, "landslide_zone")
    if hazard == "tsunami":
        return StayVerdict(False, "tsunami_zone")
    if hazard == "flood" and hazards.house_collapse_zone:
        return StayVerdict(False, "house_collapse_zone")
    band = hazards.depth(hazard)
    floor = stay_floor(sheet)
    if band is not None and band != "<0.5":
        if floor is None:
            return StayVerdict(None, "floor_unknown")
        if floor <= _FLOODED_FLOORS[band]:
            return StayVerdict(False, "floor_inundated")
        if band == ">5":
            return StayVerdict(None, "depth_unbounded")
    if hazard == "flood" and hazards.flood_duration is not None \
            and sheet.supplies_days is not None:
        if sheet.supplies_days < _DURATION_DAYS[hazards.flood_duration]:
            return StayVerdict(False, "supplies_short")
        return StayVerdict(True, "stay_possible")
    return StayVerdict(True, "stay_possible_if_supplies")


def trigger(sheet: model.Sheet, hazard: str) -> int | None:
    """The level at which the household should leave for this hazard: the one it planned,
    brought forward to 3 (高齢者等避難) when a member needs time, planned or not; None when it
    planned none and needs no head start."""
    planned = sheet.trigger(hazard)
    if sheet.needs_time:
        return 3 if planned is None else min(planned, 3)
    return planned


def designated(flags: Collection[str], hazard: str) -> bool:
    """Whether a shelter with these hazard flags is designated for this hazard (a shelter
    listed without flags, a 指定避難所, is taken to serve any hazard, as for openings)."""
    return not flags or hazard in flags


def stay_floor(sheet: model.Sheet) -> int | None:
    """The floor the household would stay on: its first stay destination's, else its home's."""
    for dest in sheet.destinations or ():
        if isinstance(dest, model.StayDestination) and dest.floor is not None:
            return dest.floor
    return sheet.home.floor


def advise(sheet: model.Sheet, shelters: Mapping[str, ShelterFacts]) -> tuple[Advice, ...]:
    """The advice for a sheet, most severe first; `shelters` maps the sheet's shelter ids
    (`Sheet.shelter_ids`) to their facts, leaving out ids not in the shelter list."""
    found = [*_home(sheet), *_plan(sheet, shelters), *_household(sheet)]
    return tuple(sorted(found, key=lambda a: (SEVERITIES.index(a.severity), CODES.index(a.code),
                                              [model.HAZARDS.index(h) for h in a.hazards])))


def _advice(code: str, hazards: tuple[str, ...] = (), **values: Any) -> Advice:
    ja, en = texts.TEXTS[code]
    ja_values = {k: v[0] if isinstance(v, tuple) else v for k, v in values.items()}
    en_values = {k: v[1] if isinstance(v, tuple) else v for k, v in values.items()}
    return Advice(code, _SEVERITY[code], hazards,
                  ja.format(hazards=texts.hazards_ja(hazards) if hazards else "", **ja_values),
                  en.format(hazards=texts.hazards_en(hazards) if hazards else "", **en_values))


def _home(sheet: model.Sheet) -> list[Advice]:
    """What the hazard map says about staying at home, per exposed hazard."""
    hazards = sheet.hazards
    if hazards is None:
        return [_advice("hazards_unknown")]
    if not hazards.exposed:
        return [_advice("no_mapped_hazard")]
    out: list[Advice] = []
    grouped: dict[str, list[str]] = {}
    floor = stay_floor(sheet)
    for hazard in hazards.exposed:
        code = stay(sheet, hazard).code
        if code in ("floor_inundated", "depth_unbounded"):
            band = hazards.depth(hazard) or ""
            out.append(_advice(code, (hazard,), hazard=(texts.HAZARD_JA[hazard],
                                                         texts.WATER_EN[hazard]),
                               depth=texts.DEPTH[band],
                               floor=(str(floor), texts.floor_en(floor or 1))))
        elif code == "landslide_zone":
            out.append(_advice(code, (hazard,), zone=texts.ZONE[hazards.landslide or ""]))
        elif code == "supplies_short":
            out.append(_advice(code, (hazard,),
                               duration=texts.DURATION[hazards.flood_duration or ""],
                               days=sheet.supplies_days))
        else:
            grouped.setdefault(code, []).append(hazard)
    out += [_advice(code, tuple(hs)) for code, hs in grouped.items()]
    return out


def _plan(sheet: model.Sheet, shelters: Mapping[str, ShelterFacts]) -> list[Advice]:
    """Whether the destinations suit the home's hazards and the household's triggers."""
    out: list[Advice] = []
    exposed = sheet.hazards.exposed if sheet.hazards is not None else ()
    destinations = sheet.destinations or ()
    if not destinations:
        out.append(_advice("no_destination"))
    if any(isinstance(d, model.StayDestination) for d in destinations):
        unsafe = tuple(h for h in exposed if stay(sheet, h).safe is False)
        if unsafe:
            out.append(_advice("stay_not_safe", unsafe))
    relevant = set(exposed) | {h for h, _ in sheet.triggers or ()}
    for shelter_id in sheet.shelter_ids:
        facts = shelters.get(shelter_id)
        if facts is None:
            out.append(_advice("shelter_unknown", shelter_id=shelter_id))
            continue
        missing = tuple(h for h in model.HAZARDS
                        if h in relevant and not designated(facts.hazards, h))
        if missing:
            out.append(_advice("shelter_not_designated", missing, shelter=facts.name))
    untriggered = tuple(h for h in exposed if sheet.trigger(h) is None)
    if untriggered:
        out.append(_advice("no_trigger", untriggered))
    late = tuple(h for h, level in sheet.triggers or () if level > 3)
    if sheet.needs_time and late:
        out.append(_advice("leave_at_level_3", late))
    too_late = tuple(h for h, level in sheet.triggers or () if level == 5)
    if too_late:
        out.append(_advice("trigger_level_5", too_late))
    return out


def _household(sheet: model.Sheet) -> list[Advice]:
    """Help for members who need it, and pets."""
    out: list[Advice] = []
    if any(m.needs_support and not m.supported_by for m in sheet.members or ()):
        out.append(_advice("support_unassigned"))
    if sheet.pets and sheet.shelter_ids:
        out.append(_advice("pets_shelter"))
    return out
