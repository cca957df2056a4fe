"""sheets.validate: a sheet document becomes a Sheet, or SheetInvalid lists every field error."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from sheets import model, validate
from sheets.errors import FieldError, SheetInvalid

HOME = {"kind": "home", "lat": 37.7503, "lon": 140.4676, "label": "自宅", "floors": 2, "floor": 1}
FULL: dict[str, Any] = {
    "name": "福島家",
    "places": [HOME, {"kind": "work", "lat": 37.4, "lon": 140.38},
               {"kind": "school", "lat": 37.76, "lon": 140.47, "label": "小学校"}],
    "hazards": {"flood_depth": "3-5", "flood_duration": "1d-3d", "house_collapse_zone": False,
                "landslide": "warning", "tsunami": False, "storm_surge_depth": "<0.5",
                "inland_flood_depth": "0.5-3"},
    "supplies_days": 3,
    "members": [{"label": "祖母", "age": "75+", "needs": ["elderly", "disability"],
                 "needs_support": True, "supported_by": "長男"},
                {"age": "0-5", "needs": ["infant"]}, {"age": "18-64"}],
    "pets": [{"kind": "dog", "count": 1, "label": "ポチ"}],
    "destinations": [
        {"kind": "shelter", "shelter_id": "07201-0001", "route": "県道を北へ", "mode": "car",
         "minutes": 10},
        {"kind": "relative", "lat": 37.5, "lon": 140.1, "label": "伯母の家", "minutes": 40},
        {"kind": "hotel", "label": "駅前ホテル"},
        {"kind": "stay", "floor": 2, "note": "2階の寝室へ"},
    ],
    "triggers": {"flood": 3, "landslide": 3, "earthquake": 4},
    "actions": {"1": ["天気予報を確認"], "3": ["祖母と避難開始", "ペットを連れる"], "4": []},
    "carry_items": ["お薬手帳", "モバイルバッテリー"],
    "contacts": [{"label": "長男", "phone": "090-0000-0000", "note": "勤務先"}],
    "meeting_point": {"label": "公園", "lat": 37.75, "lon": 140.46},
    "note": "1行目\n2行目\tタブ",
}
MINIMAL = {"name": "家", "places": [{"kind": "home", "lat": 37.75, "lon": 140.47}]}


def errors_of(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(SheetInvalid) as caught:
        validate.parse(document)
    return [(f.path, f.reason) for f in caught.value.fields]


def with_(path: tuple[str | int, ...], value: Any, doc: dict[str, Any] = MINIMAL) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def test_full_sheet_parses_to_the_model() -> None:
    """Every field of a complete sheet lands in the model, in order and with its types."""
    sheet = validate.parse(FULL)
    assert sheet.home == model.Place("home", 37.7503, 140.4676, "自宅", 2, 1)
    assert sheet.hazards == model.Hazards("3-5", "1d-3d", False, "warning", False, "<0.5", "0.5-3")
    assert sheet.members is not None and sheet.members[0] == model.Member(
        "祖母", "75+", ("elderly", "disability"), True, "長男")
    assert sheet.destinations == (
        model.ShelterDestination("07201-0001", "県道を北へ", "car", 10),
        model.RelativeDestination(37.5, 140.1, "伯母の家", None, None, 40),
        model.HotelDestination(label="駅前ホテル"),
        model.StayDestination(2, "2階の寝室へ"),
    )
    assert sheet.triggers == (("flood", 3), ("landslide", 3), ("earthquake", 4))
    assert sheet.actions == (("1", ("天気予報を確認",)),
                             ("3", ("祖母と避難開始", "ペットを連れる")), ("4", ()))
    assert sheet.trigger("flood") == 3 and sheet.trigger("tsunami") is None
    assert sheet.shelter_ids == ("07201-0001",)
    assert sheet.needs_time is True


def test_as_json_gives_the_document_back() -> None:
    """A parsed sheet written out is the document it came from, empty lists and falses kept."""
    assert validate.parse(FULL).as_json() == FULL
    assert validate.parse(MINIMAL).as_json() == MINIMAL


def test_stored_sheet_json_shows_a_tombstone_without_a_sheet() -> None:
    """A stored sheet shows id, version and its sheet; a tombstone shows deleted and no sheet."""
    sheet_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    live = model.StoredSheet(sheet_id, 3, False, validate.parse(MINIMAL))
    gone = model.StoredSheet(sheet_id, 4, True, None)
    assert live.as_json() == {"id": str(sheet_id), "version": 3, "deleted": False,
                              "sheet": MINIMAL}
    assert gone.as_json() == {"id": str(sheet_id), "version": 4, "deleted": True}


def test_every_error_is_collected_with_its_exact_path() -> None:
    """A document wrong in many places gets one error per bad field, in reading order."""
    bad = {
        "name": "",
        "places": [{"kind": "home", "lat": 91, "lon": "x", "floors": 2, "floor": 3, "colour": 1},
                   {"kind": "cave", "lat": 0, "lon": 181}],
        "hazards": {"flood_depth": "1m", "landslide": True},
        "members": [{"age": "80", "needs": ["elderly", "elderly"]}, "grandpa"],
        "destinations": [{"kind": "stay", "minutes": 5}, {"kind": "hotel", "lat": 1},
                         {"kind": "boat"}, {"shelter_id": "x"}, {"kind": "shelter"}],
        "triggers": {"flood": 2, "snow": 3},
        "actions": {"3": ["a\x00"], "9": []},
        "contacts": [{"phone": "1" * 31}],
        "meeting_point": {"label": "park", "lon": 1},
        "zzz": 1,
    }
    assert errors_of(bad) == [
        ("name", "must not be empty"),
        ("places[0].lat", "must be between -90 and 90"),
        ("places[0].lon", "must be a number"),
        ("places[0].floor", "must not be above floors (2)"),
        ("places[0].colour", "unknown field"),
        ("places[1].kind", "must be one of home, work, school, relative, other"),
        ("places[1].lon", "must be between -180 and 180"),
        ("hazards.flood_depth", "must be one of <0.5, 0.5-3, 3-5, >5"),
        ("hazards.landslide", "must be one of none, warning, special"),
        ("members[0].age", "must be one of 0-5, 6-12, 13-17, 18-64, 65-74, 75+"),
        ("members[0].needs", "must not repeat an item"),
        ("members[1]", "must be an object"),
        ("destinations[0].minutes", "unknown field"),
        ("destinations[1].lon", "is required when lat is given"),
        ("destinations[2].kind", "must be one of shelter, relative, hotel, stay"),
        ("destinations[3].kind", "is required"),
        ("destinations[4].shelter_id", "is required"),
        ("triggers.flood", "must be 3, 4 or 5"),
        ("triggers.snow", "unknown hazard (one of flood, landslide, storm_surge, earthquake, "
                          "tsunami, fire, inland_flood, volcano)"),
        ('actions["3"][0]', "must not contain NUL characters"),
        ('actions["9"]', "unknown level (one of 1, 2, 3, 4, 5)"),
        ("contacts[0].label", "is required"),
        ("contacts[0].phone", "must be at most 30 characters"),
        ("meeting_point.lat", "is required when lon is given"),
        ("zzz", "unknown field"),
    ]


def test_a_document_that_is_not_an_object_is_one_error_at_the_root() -> None:
    """A list, a string or null as the document is reported at the empty path."""
    for document in ([], "sheet", None):
        assert errors_of(document) == [("", "must be an object")]


def test_required_fields_are_named() -> None:
    """An empty object names both required fields."""
    assert errors_of({}) == [("name", "is required"), ("places", "is required")]


@pytest.mark.parametrize(("places", "found"), [
    ([{"kind": "work", "lat": 1, "lon": 1}], 0),
    ([{"kind": "home", "lat": 1, "lon": 1}, {"kind": "home", "lat": 2, "lon": 2}], 2),
])
def test_exactly_one_home(places: list[dict[str, Any]], found: int) -> None:
    """No home, or two, is refused at places, naming how many were found."""
    assert errors_of(with_(("places",), places)) == [
        ("places", f"must have exactly one place of kind home (found {found})")]


def test_a_broken_home_still_counts_as_the_home() -> None:
    """A home with a bad coordinate gets that error alone, not a missing-home error too."""
    assert errors_of(with_(("places",), [{"kind": "home", "lat": 100, "lon": 1}])) == [
        ("places[0].lat", "must be between -90 and 90")]


@pytest.mark.parametrize(("field", "limit", "item"), [
    ("places", model.MAX_PLACES, {"kind": "other", "lat": 1, "lon": 1}),
    ("members", model.MAX_MEMBERS, {}),
    ("pets", model.MAX_PETS, {"kind": "cat"}),
    ("destinations", model.MAX_DESTINATIONS, {"kind": "stay"}),
    ("contacts", model.MAX_CONTACTS, {"label": "x"}),
    ("carry_items", model.MAX_CARRY_ITEMS, "水"),
])
def test_list_limits(field: str, limit: int, item: Any) -> None:
    """Each list takes up to its limit and refuses one more."""
    head = [HOME] if field == "places" else []
    validate.parse(with_((field,), head + [item] * (limit - len(head))))
    assert errors_of(with_((field,), head + [item] * (limit + 1 - len(head)))) == [
        (field, f"must have at most {limit} items")]


def test_places_must_not_be_empty() -> None:
    """An empty places list is one error."""
    assert errors_of(with_(("places",), [])) == [("places", "must have at least 1 item")]


@pytest.mark.parametrize(("value", "reason"), [
    ("x" * 101, "must be at most 100 characters"),
    ("", "must not be empty"),
    ("a\x00b", "must not contain NUL characters"),
    ("a\ud800b", "must not contain lone surrogates"),
    ("a\nb", "must not contain control characters"),
    ("a\x7fb", "must not contain control characters"),
    ("a\x85b", "must not contain control characters"),
    (3, "must be a string"),
])
def test_single_line_text_rules(value: Any, reason: str) -> None:
    """Names refuse overlong, empty, NUL, lone surrogates, controls (line breaks too), non-text."""
    assert errors_of(with_(("name",), value)) == [("name", reason)]


def test_text_at_its_limit_and_beyond_the_bmp_is_accepted() -> None:
    """100 code points are a valid name even when each is an astral character (length is
    counted in code points, as JSON Schema counts it)."""
    assert validate.parse(with_(("name",), "𠮷" * 100)).name == "𠮷" * 100


def test_notes_allow_line_breaks_and_tabs_only() -> None:
    """A note keeps CR, LF and tab but refuses other controls."""
    assert validate.parse(with_(("note",), "a\r\nb\tc")).note == "a\r\nb\tc"
    assert errors_of(with_(("note",), "a\x0bb")) == [
        ("note", "must not contain control characters other than line breaks and tabs")]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("lat", 90.0001, "must be between -90 and 90"),
    ("lat", True, "must be a number"),
    ("lat", float("nan"), "must be between -90 and 90"),
    ("lon", float("inf"), "must be between -180 and 180"),
    ("lon", 10**400, "must be between -180 and 180"),
    ("floors", 0, "must be between 1 and 200"),
    ("floors", 201, "must be between 1 and 200"),
    ("floors", 2.5, "must be an integer"),
    ("floor", "1", "must be an integer"),
])
def test_place_number_rules(field: str, value: Any, reason: str) -> None:
    """Coordinates are finite and in range; storeys and floor are integers 1..200."""
    assert errors_of(with_(("places", 0, field), value)) == [(f"places[0].{field}", reason)]


def test_number_edges_are_accepted() -> None:
    """lat ±90, lon ±180, 200 floors, and 3.0 as an integer are accepted."""
    sheet = validate.parse(with_(("places", 0), {"kind": "home", "lat": -90, "lon": 180,
                                                 "floors": 200.0, "floor": 200}))
    assert sheet.home == model.Place("home", -90.0, 180.0, None, 200, 200)
    assert isinstance(sheet.home.floors, int)


def test_minutes_and_levels() -> None:
    """Travel minutes are 0..1440; a trigger is 3, 4 or 5 (not a boolean, not 2)."""
    ok = with_(("destinations",), [{"kind": "shelter", "shelter_id": "a", "minutes": 1440},
                                   {"kind": "shelter", "shelter_id": "b", "minutes": 0}])
    validate.parse(with_(("triggers",), {"flood": 5.0, "tsunami": 3}, ok))
    assert errors_of(with_(("destinations",), [
        {"kind": "shelter", "shelter_id": "a", "minutes": 1441}])) == [
        ("destinations[0].minutes", "must be between 0 and 1440")]
    assert errors_of(with_(("triggers",), {"flood": True, "fire": 2, "volcano": "4"})) == [
        ("triggers.flood", "must be 3, 4 or 5"), ("triggers.fire", "must be 3, 4 or 5"),
        ("triggers.volcano", "must be 3, 4 or 5")]


@pytest.mark.parametrize(("destination", "errors"), [
    ({"kind": "stay", "route": "x"}, [("destinations[0].route", "unknown field")]),
    ({"kind": "relative", "lat": 1}, [("destinations[0].lon", "is required")]),
    ({"kind": "shelter", "shelter_id": "a", "lat": 1}, [("destinations[0].lat",
                                                         "unknown field")]),
    ({"kind": "hotel", "lon": 1}, [("destinations[0].lat", "is required when lon is given")]),
    ({"kind": "shelter", "shelter_id": "a", "mode": "boat"},
     [("destinations[0].mode",
       "must be one of walk, wheelchair, bicycle, car, public_transport, other")]),
])
def test_destination_fields_per_kind(destination: dict[str, Any],
                                     errors: list[tuple[str, str]]) -> None:
    """Each destination kind takes its own fields: travel fields only for going somewhere."""
    assert errors_of(with_(("destinations",), [destination])) == errors


def test_stay_floor_must_be_in_the_home() -> None:
    """Moving up to a floor the home does not have is refused at that destination."""
    doc = with_(("places", 0, "floors"), 2)
    assert errors_of(with_(("destinations",), [{"kind": "stay"}, {"kind": "stay", "floor": 3}],
                           doc)) == [("destinations[1].floor", "must not be above the home's "
                                                               "floors (2)")]


def test_keys_that_are_not_identifiers_are_quoted_in_paths() -> None:
    """An unknown key with a dot, a space or a control character is written as a JSON string."""
    assert errors_of({**MINIMAL, "a.b": 1, "x y": 2, "\x00": 3}) == [
        ('["a.b"]', "unknown field"), ('["x y"]', "unknown field"),
        ('["\\u0000"]', "unknown field")]
    assert validate.key_path("members[0]", "label") == "members[0].label"


def test_field_error_json() -> None:
    """A field error shows as path and reason."""
    assert FieldError("places[0].lat", "must be a number").as_json() == {
        "path": "places[0].lat", "reason": "must be a number"}
