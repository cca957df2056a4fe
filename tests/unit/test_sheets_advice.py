"""sheets.advice: the advice a sheet gets, following the Cabinet Office's 避難行動判定フロー."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from sheets import advice, advice_texts, schema, validate
from sheets.advice import ShelterFacts, StayVerdict

HOME = {"kind": "home", "lat": 37.75, "lon": 140.47}
SCHOOL = ShelterFacts("第一小学校", frozenset({"flood", "earthquake", "fire"}))
HILL = ShelterFacts("丘の上公園", frozenset({"flood", "landslide", "tsunami", "storm_surge",
                                             "inland_flood"}))
HALL = ShelterFacts("市民会館", frozenset())  # a 指定避難所 without hazard flags
SHELTERS = {"school": SCHOOL, "hill": HILL, "hall": HALL}
SETTLED = {"triggers": {"flood": 4, "landslide": 4, "tsunami": 4, "storm_surge": 4,
                        "inland_flood": 4},
           "destinations": [{"kind": "shelter", "shelter_id": "hill"}]}


def sheet(home: dict[str, Any] | None = None, **fields: Any) -> Any:
    return validate.parse({"name": "家", "places": [{**HOME, **(home or {})}], **fields})


def codes(doc: Any, shelters: dict[str, ShelterFacts] | None = None
          ) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(a.code, a.severity, a.hazards)
            for a in advice.advise(doc, SHELTERS if shelters is None else shelters)]


CASES: list[tuple[str, Any, list[tuple[str, str, tuple[str, ...]]]]] = [
    ("hazard map not checked, no plan", sheet(), [
        ("no_destination", "warning", ()), ("hazards_unknown", "info", ())]),
    ("checked, nothing mapped", sheet(hazards={}, **SETTLED), [
        ("no_mapped_hazard", "info", ())]),
    ("3-5 m flood on the ground floor", sheet({"floor": 1}, hazards={"flood_depth": "3-5"},
                                             **SETTLED), [
        ("floor_inundated", "danger", ("flood",))]),
    ("3-5 m flood on the third floor, duration and supplies unknown",
     sheet({"floors": 5, "floor": 3}, hazards={"flood_depth": "3-5"}, **SETTLED), [
         ("stay_possible_if_supplies", "info", ("flood",))]),
    ("0.5-3 m flood, moving up to the second floor",
     sheet({"floors": 2, "floor": 1}, hazards={"flood_depth": "0.5-3", "flood_duration": "<12h"},
           supplies_days=1, triggers=SETTLED["triggers"],
           destinations=[{"kind": "stay", "floor": 2}]), [
         ("stay_possible", "info", ("flood",))]),
    ("shallow flood, supplies too short for a week-long flood",
     sheet(hazards={"flood_depth": "<0.5", "flood_duration": "3d-1w"}, supplies_days=3,
           **SETTLED), [("supplies_short", "warning", ("flood",))]),
    ("house-collapse zone on the tenth floor",
     sheet({"floors": 12, "floor": 10}, hazards={"flood_depth": "0.5-3",
                                                 "house_collapse_zone": True}, **SETTLED), [
         ("house_collapse_zone", "danger", ("flood",))]),
    ("over 5 m, third floor: cannot tell", sheet({"floor": 3}, hazards={"flood_depth": ">5"},
                                                 **SETTLED), [
        ("depth_unbounded", "warning", ("flood",))]),
    ("over 5 m, second floor", sheet({"floor": 2}, hazards={"flood_depth": ">5"}, **SETTLED), [
        ("floor_inundated", "danger", ("flood",))]),
    ("flood and inland flood, floor unknown",
     sheet(hazards={"flood_depth": "0.5-3", "inland_flood_depth": "0.5-3"}, **SETTLED), [
         ("floor_unknown", "warning", ("flood", "inland_flood"))]),
    ("storm surge and inland flood above the water",
     sheet({"floor": 4}, hazards={"storm_surge_depth": "3-5", "inland_flood_depth": "<0.5"},
           **SETTLED), [
         ("stay_possible_if_supplies", "info", ("storm_surge", "inland_flood"))]),
    ("landslide special zone, tsunami zone",
     sheet(hazards={"landslide": "special", "tsunami": True}, **SETTLED), [
         ("landslide_zone", "danger", ("landslide",)), ("tsunami_zone", "danger", ("tsunami",))]),
    ("staying in a landslide zone",
     sheet(hazards={"landslide": "warning"}, triggers={"landslide": 3},
           destinations=[{"kind": "stay"}]), [
         ("landslide_zone", "danger", ("landslide",)),
         ("stay_not_safe", "danger", ("landslide",))]),
    ("shelter not designated for landslides",
     sheet(hazards={"landslide": "warning"}, triggers={"landslide": 4},
           destinations=[{"kind": "shelter", "shelter_id": "school"}]), [
         ("landslide_zone", "danger", ("landslide",)),
         ("shelter_not_designated", "warning", ("landslide",))]),
    ("shelter checked against trigger hazards too; unflagged shelters serve any hazard",
     sheet(hazards={}, triggers={"tsunami": 4, "volcano": 4},
           destinations=[{"kind": "shelter", "shelter_id": "school"},
                         {"kind": "shelter", "shelter_id": "hall"},
                         {"kind": "shelter", "shelter_id": "school"}]), [
         ("shelter_not_designated", "warning", ("tsunami", "volcano")),
         ("no_mapped_hazard", "info", ())]),
    ("shelter no longer listed", sheet(hazards={}, destinations=[
        {"kind": "shelter", "shelter_id": "gone"}]), [
        ("shelter_unknown", "warning", ()), ("no_mapped_hazard", "info", ())]),
    ("exposed hazards without triggers",
     sheet({"floor": 2}, hazards={"flood_depth": "0.5-3", "landslide": "warning"},
           triggers={"tsunami": 4}, destinations=[{"kind": "shelter", "shelter_id": "hill"}]), [
         ("landslide_zone", "danger", ("landslide",)),
         ("no_trigger", "warning", ("flood", "landslide")),
         ("stay_possible_if_supplies", "info", ("flood",))]),
    ("members who need time, triggers at 4 and 5",
     sheet(hazards={}, members=[{"age": "75+"}, {"age": "18-64"}],
           triggers={"flood": 4, "landslide": 3, "storm_surge": 5},
           destinations=[{"kind": "relative", "lat": 37.5, "lon": 140.1}]), [
         ("leave_at_level_3", "warning", ("flood", "storm_surge")),
         ("trigger_level_5", "warning", ("storm_surge",)),
         ("no_mapped_hazard", "info", ())]),
    ("members who need no time, trigger at 4",
     sheet(hazards={}, members=[{"age": "18-64", "needs": []}, {"needs_support": False}],
           triggers={"flood": 4}, destinations=[{"kind": "hotel"}]), [
         ("no_mapped_hazard", "info", ())]),
    ("support needed, no helper; pets going to a shelter",
     sheet(hazards={}, members=[{"needs": ["medical"], "needs_support": True},
                                {"needs_support": True, "supported_by": "隣の佐藤さん"}],
           pets=[{"kind": "cat"}], triggers={"flood": 3},
           destinations=[{"kind": "shelter", "shelter_id": "hill"}]), [
         ("support_unassigned", "warning", ()), ("no_mapped_hazard", "info", ()),
         ("pets_shelter", "info", ())]),
]


@pytest.mark.parametrize(("doc", "expected"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_advice_table(doc: Any, expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    """Each sheet gets exactly this advice (code, severity, hazards), most severe first."""
    assert codes(doc) == expected


def test_every_code_is_reached_by_the_table() -> None:
    """The table above exercises every advice code there is."""
    reached = {code for _, doc, _ in CASES for code, _, _ in codes(doc)}
    assert reached == set(advice.CODES)


def test_ground_floor_flood_text() -> None:
    """The >3 m ground-floor case says so, in Japanese and English."""
    found = advice.advise(sheet({"floor": 1}, hazards={"flood_depth": "3-5"}), {})
    item = next(a for a in found if a.code == "floor_inundated")
    assert item.ja == ("洪水の想定浸水深は3〜5mで、1階まで浸水するおそれがあります。"
                       "自宅にとどまるのは危険です。立退き避難をしてください。")
    assert item.en == ("Expected flood depth is 3–5 m, enough to flood the ground floor: "
                       "staying in is not safe — leave.")


def test_texts_name_the_shelter_and_the_hazards() -> None:
    """Shelter and hazard names are filled in, joined the Japanese and the English way."""
    found = advice.advise(sheet(hazards={}, triggers={"landslide": 4, "tsunami": 4,
                                                      "volcano": 4},
                                destinations=[{"kind": "shelter", "shelter_id": "school"}]),
                          SHELTERS)
    item = next(a for a in found if a.code == "shelter_not_designated")
    assert item.ja == ("避難先「第一小学校」は、土砂災害・津波・火山現象の指定緊急避難場所では"
                       "ありません。土砂災害・津波・火山現象のときの避難先を別に決めておきましょう。")
    assert item.en == ("Your destination shelter 第一小学校 is not designated for landslides, "
                       "tsunamis and volcanic eruptions: choose another destination for "
                       "landslides, tsunamis and volcanic eruptions.")


def test_every_text_is_filled_and_shown_as_the_schema_says() -> None:
    """No advice text keeps a placeholder, and every item matches the published advice schema."""
    checker = jsonschema.Draft202012Validator(schema.advice_schema())
    for _, doc, _ in CASES:
        for item in advice.advise(doc, SHELTERS):
            assert not re.search(r"[{}]", item.ja + item.en), item
            checker.validate(item.as_json())
    assert set(advice_texts.TEXTS) == set(advice.CODES)


@pytest.mark.parametrize(("home", "hazards", "extra", "hazard", "verdict"), [
    ({}, None, {}, "flood", StayVerdict(None, "hazards_unknown")),
    ({}, {}, {}, "flood", StayVerdict(True, "no_mapped_hazard")),
    ({}, {}, {}, "earthquake", StayVerdict(None, "not_judged")),
    ({"floor": 1}, {"flood_depth": "0.5-3"}, {}, "flood", StayVerdict(False, "floor_inundated")),
    ({"floor": 2}, {"flood_depth": "0.5-3"}, {}, "flood",
     StayVerdict(True, "stay_possible_if_supplies")),
    ({"floor": 1}, {"flood_depth": "0.5-3"}, {"destinations": [{"kind": "stay", "floor": 2}]},
     "flood", StayVerdict(True, "stay_possible_if_supplies")),
    ({}, {"flood_depth": "<0.5"}, {}, "flood", StayVerdict(True, "stay_possible_if_supplies")),
    ({}, {"flood_depth": "3-5"}, {}, "flood", StayVerdict(None, "floor_unknown")),
    ({"floor": 9}, {"flood_depth": ">5"}, {}, "flood", StayVerdict(None, "depth_unbounded")),
    ({"floor": 9}, {"house_collapse_zone": True}, {}, "flood",
     StayVerdict(False, "house_collapse_zone")),
    ({"floor": 3}, {"flood_depth": "3-5", "flood_duration": ">4w"}, {"supplies_days": 365},
     "flood", StayVerdict(False, "supplies_short")),
    ({"floor": 3}, {"flood_depth": "3-5", "flood_duration": "2w-4w"}, {"supplies_days": 28},
     "flood", StayVerdict(True, "stay_possible")),
    ({"floor": 1}, {"storm_surge_depth": "3-5"}, {}, "storm_surge",
     StayVerdict(False, "floor_inundated")),
    ({"floor": 1}, {"storm_surge_depth": "3-5"}, {}, "flood", StayVerdict(True,
                                                                          "no_mapped_hazard")),
    ({"floor": 30}, {"landslide": "warning"}, {}, "landslide",
     StayVerdict(False, "landslide_zone")),
    ({}, {"landslide": "none"}, {}, "landslide", StayVerdict(True, "no_mapped_hazard")),
    ({"floor": 30}, {"tsunami": True}, {}, "tsunami", StayVerdict(False, "tsunami_zone")),
    ({}, {"tsunami": False}, {}, "tsunami", StayVerdict(True, "no_mapped_hazard")),
])
def test_stay_verdicts(home: dict[str, Any], hazards: dict[str, Any] | None,
                       extra: dict[str, Any], hazard: str, verdict: StayVerdict) -> None:
    """Staying in is judged per hazard from the map, the floor (or the floor moved up to) and
    the supplies against how long the water stays."""
    fields = {**extra, **({"hazards": hazards} if hazards is not None else {})}
    assert advice.stay(sheet(home, **fields), hazard) == verdict
