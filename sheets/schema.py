"""The published JSON Schema (draft 2020-12) of the sheet, served at ``GET /v1/schemas/sheet``.

Built from the same enumerations and limits as `sheets.validate`, and kept true by a property
test (tests/unit/test_sheets_schema.py): documents the schema allows, the validator accepts, and
the two agree on documents a mutation away from valid ones. A few rules are the validator's
alone, because JSON Schema cannot state them (they are listed in ``$comment`` and in
`UNEXPRESSED`). Self-contained: no ``$ref``, so it embeds anywhere (OpenAPI included).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from sheets import advice, model
from sheets.validate import DESTINATION_FIELDS

UNEXPRESSED: Final = (
    "a place's floor is at most its floors",
    "a stay destination's floor is at most the home's floors",
    "texts hold no lone surrogates (\\ud800-\\udfff escapes)",
)


def sheet_schema() -> dict[str, Any]:
    """The sheet's JSON Schema (a fresh copy the caller may change)."""
    return copy.deepcopy(_SHEET)


def advice_schema() -> dict[str, Any]:
    """The JSON Schema of one advice item (see sheets.advice)."""
    return copy.deepcopy(_ADVICE)


def _text(rule: model.TextRule, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "minLength": rule.min_len, "maxLength": rule.max_len,
                           "not": {"pattern": rule.forbidden}}
    if description:
        out["description"] = description
    return out


def _choice(options: tuple[str, ...], description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "enum": list(options)}
    if description:
        out["description"] = description
    return out


def _integer(lo: int, hi: int, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
    if description:
        out["description"] = description
    return out


def _list(item: dict[str, Any], max_items: int, **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": item, "maxItems": max_items, **extra}


def _object(properties: dict[str, Any], required: tuple[str, ...] = (),
            **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties,
                           "additionalProperties": False, **extra}
    if required:
        out["required"] = list(required)
    return out


_LAT: Final = {"type": "number", "minimum": -90, "maximum": 90}
_LON: Final = {"type": "number", "minimum": -180, "maximum": 180}
_FLOORS: Final = _integer(1, model.MAX_FLOORS)
_PAIR: Final = {"lat": ["lon"], "lon": ["lat"]}
_TRAVEL: Final = {
    "route": _text(model.NOTE, "route note"),
    "mode": _choice(model.TRAVEL_MODES, "how the household travels"),
    "minutes": _integer(0, model.MAX_MINUTES, "travel time in minutes"),
}
_DEPTH: Final = _choice(model.DEPTH_BANDS, "expected inundation depth band, metres")

_PLACE: Final = _object({
    "kind": _choice(model.PLACE_KINDS),
    "lat": _LAT, "lon": _LON, "label": _text(model.NAME),
    "floors": _integer(1, model.MAX_FLOORS, "storeys of the building (階数)"),
    "floor": _integer(1, model.MAX_FLOORS, "the floor the household lives on; 1 = ground floor"),
}, ("kind", "lat", "lon"))

_HAZARDS: Final = _object({
    "flood_depth": _DEPTH,
    "flood_duration": _choice(model.DURATION_BANDS, "浸水継続時間, how long the water stays"),
    "house_collapse_zone": {"type": "boolean", "description": "家屋倒壊等氾濫想定区域"},
    "landslide": _choice(model.LANDSLIDE_ZONES,
                         "土砂災害警戒区域 (warning) / 土砂災害特別警戒区域 (special)"),
    "tsunami": {"type": "boolean", "description": "inside the tsunami inundation zone"},
    "storm_surge_depth": _DEPTH,
    "inland_flood_depth": _DEPTH,
}, description="What the hazard map says about the home; a field left out means not in that "
               "zone (or not known), the object left out means the map was not checked.")

_MEMBER: Final = _object({
    "label": _text(model.NAME),
    "age": _choice(model.AGE_BANDS),
    "needs": _list(_choice(model.NEEDS), len(model.NEEDS), uniqueItems=True),
    "needs_support": {"type": "boolean"},
    "supported_by": _text(model.NAME, "who helps this member to leave"),
})

_PET: Final = _object({"kind": _choice(model.PET_KINDS),
                       "count": _integer(1, model.MAX_PET_COUNT), "label": _text(model.NAME)},
                      ("kind",))

_DESTINATION_PROPERTIES: Final = {
    "shelter_id": _text(model.NAME, "the shelter's ID in the shelter list"),
    "lat": _LAT, "lon": _LON, "label": _text(model.NAME),
    "floor": _integer(1, model.MAX_FLOORS, "the floor to move up to (垂直避難)"),
    "note": _text(model.NOTE), **_TRAVEL,
}
_DESTINATION_REQUIRED: Final = {"shelter": ("kind", "shelter_id"),
                                "relative": ("kind", "lat", "lon"), "hotel": ("kind",),
                                "stay": ("kind",)}


def _destination(kind: str) -> dict[str, Any]:
    properties = {"kind": {"const": kind}} | {
        key: _DESTINATION_PROPERTIES[key] for key in DESTINATION_FIELDS[kind] if key != "kind"}
    extra = {"dependentRequired": _PAIR} if kind == "hotel" else {}
    return _object(properties, _DESTINATION_REQUIRED[kind], **extra)


_SHEET: Final = _object({
    "name": _text(model.NAME),
    "places": _list(_PLACE, model.MAX_PLACES, minItems=1,
                    contains=_object({"kind": {"const": "home"}}, ("kind",),
                                     additionalProperties=True),
                    minContains=1, maxContains=1),
    "hazards": _HAZARDS,
    "supplies_days": _integer(0, model.MAX_SUPPLIES_DAYS,
                              "days the household's water and food last (備蓄)"),
    "members": _list(_MEMBER, model.MAX_MEMBERS),
    "pets": _list(_PET, model.MAX_PETS),
    "destinations": _list({"oneOf": [_destination(k) for k in model.DESTINATION_KINDS]},
                          model.MAX_DESTINATIONS, description="in priority order"),
    "triggers": _object({h: {"enum": list(model.LEVELS)} for h in model.HAZARDS},
                        description="警戒レベル at which the household leaves, per hazard"),
    "actions": _object({lv: _list(_text(model.ACTION), model.MAX_ACTIONS_PER_LEVEL)
                        for lv in model.ACTION_LEVELS},
                       description="マイ・タイムライン: what to do at each 警戒レベル"),
    "carry_items": _list(_text(model.NAME), model.MAX_CARRY_ITEMS),
    "contacts": _list(_object({"label": _text(model.NAME), "phone": _text(model.PHONE),
                               "note": _text(model.NOTE)}, ("label",)), model.MAX_CONTACTS),
    "meeting_point": _object({"label": _text(model.NAME), "lat": _LAT, "lon": _LON},
                             ("label",), dependentRequired=_PAIR),
    "note": _text(model.NOTE),
}, ("name", "places"), **{
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "My Evacuation Sheet (マイ避難シート)",
    "$comment": "Also checked by the server, beyond this schema: " + "; ".join(UNEXPRESSED),
})

_ADVICE: Final = _object({
    "code": _choice(advice.CODES),
    "severity": _choice(advice.SEVERITIES),
    "hazards": {"type": "array", "items": {"enum": list(model.HAZARDS)}},
    "text": _object({"ja": {"type": "string"}, "en": {"type": "string"}}, ("ja", "en")),
}, ("code", "severity", "hazards", "text"))
