"""alertd.plans: what a household's sheet says to do about one alert (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely

from alertd import orders, plans, render
from alertd.delivery import push
from alertd.shelters import StoredShelter
from sheets import validate

AREA = shapely.box(140.40, 37.70, 140.55, 37.80)  # lon/lat, around Fukushima City's centre
HOME = {"kind": "home", "lat": 37.75, "lon": 140.47, "floors": 2, "floor": 1}
OUTSIDE = {"lat": 37.90, "lon": 140.60}
WORK = {"kind": "work", "lat": 37.76, "lon": 140.45, "label": "県庁"}


def shelter(sid: str, name: str, status: str = "open", hazards: tuple[str, ...] = ("flood",),
            crowding: str | None = "low", lat: float = 37.752, lon: float = 140.472
            ) -> StoredShelter:
    """A stored shelter near the home."""
    return StoredShelter(id=sid, name=name, address="", lat=lat, lon=lon, hazards=hazards,
                         capacity=None, status=status, crowding=crowding, evacuees=None,
                         status_at=None, openings=1)


SHELTERS = [
    shelter("mine", "第一小学校", status="not_open"),
    shelter("open", "中央体育館", lat=37.755, lon=140.475),  # ~700 m from the home
    shelter("closer-quake", "耐震ホール", hazards=("earthquake",), lat=37.7505, lon=140.4705),
    shelter("hill", "丘の上公民館", hazards=("landslide", "flood"), lat=37.76, lon=140.48),
    shelter("full", "市民会館", status="full", crowding="full"),
    shelter("busy", "南公民館", crowding="high", lat=37.745, lon=140.46),
    shelter("far", "遠い避難所", lat=37.40, lon=140.38),  # ~40 km away
]


def sheet(home: dict[str, Any] | None = None, places: list[dict[str, Any]] | None = None,
          **fields: Any) -> Any:
    """A validated sheet: the home (with overrides) and other places."""
    return validate.parse({"name": "わが家", "places": [{**HOME, **(home or {})},
                                                         *(places or [])], **fields})


def to(sid: str) -> list[dict[str, Any]]:
    """Destinations: this shelter first."""
    return [{"kind": "shelter", "shelter_id": sid}]


def book(hazard: str = "flood", shelters: list[StoredShelter] | None = None) -> plans.Shelters:
    """The shelter book for a hazard."""
    return plans.Shelters.of(SHELTERS if shelters is None else shelters, hazard)


def plan_of(sheets: list[Any], level: int = 4, hazard: str = "flood",
            shelters: list[StoredShelter] | None = None) -> render.Plan | None:
    """The plan of one household for an order over AREA."""
    return plans.household(sheets, plans.Alert(AREA, level, hazard), book(hazard, shelters))


DEEP = {"flood_depth": "3-5"}
CASES: list[tuple[str, list[Any], int, str, list[StoredShelter] | None, render.Plan]] = [
    ("home in a 3-5 m flood zone on the ground floor: staying in is not safe",
     [sheet(hazards=DEEP, triggers={"flood": 4}, destinations=[{"kind": "stay"}])],
     4, "flood", None,
     render.Plan("home", "", 4, render.Destination("stay", "not_safe"),
                 render.Nearest("中央体育館", pytest.approx(710, abs=30)))),
    ("home on the third floor of a 3-5 m zone: staying in is honoured",
     [sheet({"floors": 5, "floor": 3}, hazards=DEEP, triggers={"flood": 4},
            destinations=[{"kind": "stay"}])],
     4, "flood", None,
     render.Plan("home", "", 4, render.Destination("stay", "safe"))),
    ("shelter not designated for landslides: the nearest open one that is",
     [sheet(hazards={"landslide": "warning"}, triggers={"landslide": 4}, destinations=to("open"))],
     4, "landslide", None,
     render.Plan("home", "", 4, render.Destination("shelter", "unsuitable", "中央体育館"),
                 render.Nearest("丘の上公民館", pytest.approx(1380, abs=60)))),
    ("trigger 3 at a level 4 order: leave now", [sheet(triggers={"flood": 3},
                                                       destinations=to("busy"))],
     4, "flood", None,
     render.Plan("home", "", 3, render.Destination("shelter", "open", "南公民館", "high"))),
    ("trigger 4 at a level 3 order: prepare", [sheet(triggers={"flood": 4},
                                                     destinations=to("mine"))],
     3, "flood", None,
     render.Plan("home", "", 4, render.Destination("shelter", "not_open", "第一小学校"),
                 render.Nearest("中央体育館", pytest.approx(710, abs=30)))),
    ("a member needing support brings a trigger of 4 forward to 3",
     [sheet(triggers={"flood": 4}, members=[{"age": "75+", "needs_support": True}],
            destinations=to("open"))],
     3, "flood", None,
     render.Plan("home", "", 3, render.Destination("shelter", "open", "中央体育館", "low"))),
    ("full shelter: the nearest open one", [sheet(destinations=to("full"))], 4, "flood", None,
     render.Plan("home", "", None, render.Destination("shelter", "full", "市民会館", "full"),
                 render.Nearest("中央体育館", pytest.approx(710, abs=30)))),
    ("no open shelter at all", [sheet(destinations=to("mine"))], 4, "flood",
     [shelter("mine", "第一小学校", status="not_open")],
     render.Plan("home", "", None, render.Destination("shelter", "not_open", "第一小学校"))),
    ("the only open shelter is 40 km away: none is named", [sheet(destinations=to("mine"))],
     4, "flood", [shelter("mine", "第一小学校", status="not_open"), SHELTERS[-1]],
     render.Plan("home", "", None, render.Destination("shelter", "not_open", "第一小学校"))),
    ("a shelter missing from the list: the nearest open one",
     [sheet(destinations=to("gone"))], 4, "flood", None,
     render.Plan("home", "", None, None, render.Nearest("中央体育館", pytest.approx(710, abs=30)))),
    ("a relative's home inside the area is warned against",
     [sheet(destinations=[{"kind": "relative", "lat": 37.71, "lon": 140.50, "label": "実家"}])],
     4, "flood", None,
     render.Plan("home", "", None, render.Destination("relative", "not_safe", "実家"),
                 render.Nearest("中央体育館", pytest.approx(710, abs=30)))),
    ("a relative's home outside the area is honoured",
     [sheet(destinations=[{"kind": "relative", **OUTSIDE}])], 4, "flood", None,
     render.Plan("home", "", None, render.Destination("relative", "safe"))),
    ("work in the area, home not: work named, staying in not offered",
     [sheet(OUTSIDE, places=[WORK], hazards={}, destinations=[{"kind": "stay"}])],
     4, "flood", None,
     render.Plan("work", "県庁", None, None,
                 render.Nearest("南公民館", pytest.approx(1890, abs=30)))),
    ("two sheets: the one whose home is in the area wins over another's work place",
     [sheet(OUTSIDE, places=[WORK], destinations=to("mine")),
      sheet(triggers={"flood": 3}, destinations=to("open"))],
     4, "flood", None,
     render.Plan("home", "", 3, render.Destination("shelter", "open", "中央体育館", "low"))),
    ("no place in the area (matched by the phone's location): the trigger alone",
     [sheet(OUTSIDE, triggers={"flood": 4}, destinations=to("open"))], 4, "flood", None,
     render.Plan(trigger=4)),
]


@pytest.mark.parametrize(("what", "sheets", "level", "hazard", "shelters", "want"), CASES,
                         ids=[c[0] for c in CASES])
def test_plan_decisions(what: str, sheets: list[Any], level: int, hazard: str,
                        shelters: list[StoredShelter] | None, want: render.Plan) -> None:
    """Each household gets the plan the case names."""
    assert plan_of(sheets, level, hazard, shelters) == want


def test_no_sheets_no_plan() -> None:
    """A device without live sheets has no plan (its language's text stands)."""
    assert plan_of([]) is None


def test_many_households_match_one_by_one() -> None:
    """Planning many households in one call gives each the plan it gets alone."""
    households = {i: sheets for i, (_, sheets, _, _, _, _) in enumerate(CASES)
                  if len(sheets) > 0} | {99: []}
    alert = plans.Alert(AREA, 4, "flood")
    many = plans.households(households, alert, book())
    assert 99 not in many
    assert many == {i: plans.household(s, alert, book()) for i, s in households.items() if s}


def test_the_text_names_the_home_the_shelter_and_its_state() -> None:
    """The Japanese order text says the home is in the area, to leave now, the shelter's
    state and the nearest open one."""
    plan = plan_of([sheet(triggers={"flood": 3}, destinations=to("mine"))])
    text = render.order_text("order", "ja", 4, "flood", {}, {}, plan)
    assert "自宅が避難指示の対象区域です。" in text.body
    assert "今すぐ避難してください" in text.body
    assert "あなたの避難先「第一小学校」はまだ開設されていません。" in text.body
    assert "「中央体育館」（710m）" in text.body


# The longest a sheet makes it: 100-character labels and shelter names of awkward characters.
LONG = ("𠮷\"避👨\u200d👩\u200d👧e\u0302\u0301क्ष " * 10)[:100]


@pytest.mark.parametrize("lang", render.LANGUAGES)
def test_longest_plans_fit_every_push_in_every_language(lang: str) -> None:
    """With the longest labels and names a sheet and the shelter list allow, every order,
    update and warning in this language fits APNs and FCM, and the plan survives whole in
    the body (only the staff's long instruction is cut)."""
    far = [shelter("mine", LONG, status="full", crowding="full"),
           shelter("alt", LONG[::-1], lat=37.76, lon=140.48)]
    long_sheet = sheet(OUTSIDE, places=[{**WORK, "label": LONG}], triggers={"flood": 3},
                       destinations=to("mine"))
    now = datetime(2026, 7, 1, tzinfo=UTC)
    for level in orders.LEVELS:
        plan = plan_of([long_sheet], level, "flood", far)
        assert plan is not None and plan.nearest is not None
        ordered = render.plan_text(lang, plan, level, "flood")
        texts = [(ordered, render.order_text(k, lang, level, "flood", {lang: LONG * 2},
                                             {lang: LONG * 20}, plan))
                 for k in ("order", "order_update")]
        # A warning's plan names the warning (JMA's name) where an order names its level.
        texts.append((render.plan_text(lang, plan, level, "flood", LONG),
                      render.warning_text(lang, level, "flood", LONG, LONG, plan)))
        for said, text in texts:
            assert said in text.body
            msg = push.PushMessage(
                delivery_id=1, apns_id="6f1c2a9e-0d4b-4c1e-9a57-3b2d8e4f7a10", platform="ios",
                token="a" * 64, kind="order", alert_id="x" * 36, level=level, title=text.title,
                body=text.body, collapse_id="x" * 36, thread_id="order-" + "x" * 36,
                expires_at=now + timedelta(hours=6))
            ios = push.apns_payload(msg)
            assert len(push.encode_apns(ios)) <= push.APNS_MAX_PAYLOAD_BYTES
            assert said in ios["aps"]["alert"]["body"]
            fcm = push.fcm_message(msg, now)["message"]
            counted = {"notification": fcm["notification"], "data": fcm["data"]}
            assert len(json.dumps(counted, ensure_ascii=False).encode()) <= 4096
            assert said in fcm["notification"]["body"]
