"""The tips catalogue: its check, the shipped tips within push limits, selection and timing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from alertd import errors
from alertd import tip_catalogue as tc
from alertd.delivery import push
from sheets import validate as sheet_validate

TOKYO = ZoneInfo("Asia/Tokyo")
TITLES = "[title]\n" + "\n".join(f'{lang} = "T {lang}"' for lang in tc.LANGUAGES) + "\n"


def tip_toml(tip_id: str, *, extra: str = "", texts: str | None = None) -> str:
    written = texts if texts is not None else (
        f'ja = "{tip_id} ja"\nja-easy = "{tip_id} easy"\nen = "{tip_id} en"\n')
    return f'[[tip]]\nid = "{tip_id}"\n{extra}[tip.texts]\n{written}'


def catalogue(*tips: str) -> tc.Catalogue:
    cat, problems = tc.check({"titles.toml": TITLES, "a.toml": "\n".join(tips)})
    assert problems == []
    return cat


def test_the_shipped_catalogue_is_valid_and_large_enough() -> None:
    """The shipped catalogue passes the check and holds at least 52 tips, each in ja,
    ja-easy and en, covering Fukushima's hazards and the sheet."""
    cat = tc.load()
    assert len(cat.tips) >= 52
    hazards = {h for t in cat.tips for h in t.hazards}
    assert {"flood", "landslide", "earthquake", "tsunami", "volcano", "heavy_snow",
            "avalanche"} <= hazards
    assert {a for t in cat.tips for a in t.audience} == set(tc.AUDIENCES)
    assert all({"ja", "ja-easy", "en"} <= set(t.texts) for t in cat.tips)


def test_every_shipped_tip_renders_in_every_language_within_payload_limits() -> None:
    """Every shipped tip, in every shipped language, makes an APNs and an FCM payload under
    4096 bytes with its whole text (nothing cut), a Japanese fallback where not written."""
    cat = tc.load()
    for tip in cat.tips:
        for lang in tc.LANGUAGES:
            msg = tc.message(cat, tip, lang, token="t" * 160)
            apns = push.apns_payload(msg)
            assert len(push.encode_apns(apns)) <= push.APNS_MAX_PAYLOAD_BYTES
            assert apns["aps"]["alert"]["body"] == tip.body(lang)
            assert apns["aps"]["interruption-level"] == "passive"
            fcm = push.fcm_message(msg)["message"]
            counted = {"notification": fcm["notification"], "data": fcm["data"]}
            assert len(json.dumps(counted, ensure_ascii=False).encode()) <= 4096
            assert fcm["notification"]["body"] == tip.body(lang)
            assert fcm["android"]["priority"] == "NORMAL"
            shown = lang if lang in tip.texts else "ja"
            assert tip.body(lang).startswith(tip.texts[shown])


@pytest.mark.parametrize(("files", "expected"), [
    ({"a.toml": tip_toml("x", extra='colour = "red"\n')}, "tips/a.toml: tip 'x': unknown field "
                                                          "'colour'"),
    ({"a.toml": tip_toml("x", texts='en = "e"\nja-easy = "k"\n')},
     "tips/a.toml: tip 'x': texts.ja is missing"),
    ({"a.toml": tip_toml("x"), "b.toml": tip_toml("x")},
     "tips/b.toml: tip 'x': duplicate id (also in tips/a.toml)"),
    ({"a.toml": tip_toml("x", texts=f'ja = "{"あ" * 401}"\nja-easy = "k"\nen = "e"\n')},
     "tips/a.toml: tip 'x': texts.ja is too long for a push (401 characters, at most 400)"),
    ({"a.toml": tip_toml("x", extra="months = [13]\n")},
     "tips/a.toml: tip 'x': months must be a list of month numbers 1-12"),
    ({"a.toml": tip_toml("x", extra='audience = ["cats"]\n')},
     "tips/a.toml: tip 'x': audience: unknown 'cats' (one of elderly, infants, pets, "
     "flood_zone, landslide_zone, tsunami_zone, no_sheet)"),
    ({"a.toml": tip_toml("x", extra='hazards = ["meteor"]\n')},
     "tips/a.toml: tip 'x': hazards: unknown 'meteor'"),
    ({"a.toml": tip_toml("X Y")},
     "tips/a.toml: tip 'X Y': id must be 1-40 characters of a-z, 0-9 and -"),
    ({"a.toml": tip_toml("x", extra='link = "http://x"\n')},
     "tips/a.toml: tip 'x': link must be an https:// URL"),
    ({"a.toml": tip_toml("x", texts='ja = "j"\nja-easy = "k"\nen = "e"\nxx = "?"\n')},
     "tips/a.toml: tip 'x': texts.xx: not a shipped language"),
    ({"a.toml": "[tip]\nid = 1\n"}, "tips/a.toml: only [[tip]] entries belong here"),
    ({"a.toml": "[[tip\n"}, "tips/a.toml: not valid TOML"),
])
def test_check_names_each_problem(files: dict[str, str], expected: str) -> None:
    """Unknown fields, a missing ja, duplicate ids, too-long texts and bad values are each
    named with their file and tip."""
    _, problems = tc.check({"titles.toml": TITLES, **files})
    assert any(p.startswith(expected) for p in problems), problems


def test_check_names_every_problem_not_just_the_first() -> None:
    """Two broken tips give two problems; a missing titles file is one more."""
    _, problems = tc.check({"a.toml": tip_toml("x", extra="nope = 1\n") + tip_toml(
        "y", texts='en = "e"\nja-easy = "k"\n')})
    assert problems == ["tips/titles.toml is missing", "tips/a.toml: tip 'x': unknown field "
                        "'nope'", "tips/a.toml: tip 'y': texts.ja is missing"]


def test_check_refuses_a_push_the_payload_limits_would_cut() -> None:
    """A text within 400 characters whose push still exceeds 4096 bytes (a long title) is
    refused, naming tip and language."""
    for length in (1350, 2000):  # the body would be cut; not even an empty body fits
        titles = TITLES.replace('ja = "T ja"', 'ja = "' + "題" * length + '"')
        _, problems = tc.check({"titles.toml": titles, "a.toml": tip_toml("x")})
        assert "tip 'x': its ja push does not fit the payload limits" in problems


def test_load_raises_with_every_problem(tmp_path: object) -> None:
    """A broken catalogue directory stops the start with a ConfigError naming the problem."""
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "titles.toml").write_text(TITLES)
    (root / "a.toml").write_text(tip_toml("x", extra="nope = 1\n"))
    with pytest.raises(errors.ConfigError, match="unknown field 'nope'"):
        tc.load(root)


# -- selection ----------------------------------------------------------------------------

def test_rotation_sends_every_fitting_tip_once_before_restarting() -> None:
    """Successive choices go through every fitting tip without a repeat, then the rotation
    restarts from the first."""
    cat = catalogue(*(tip_toml(f"t{i}") for i in range(5)))
    seen: frozenset[str] = frozenset()
    picked = []
    for _ in range(5):
        choice = tc.choose(cat, 6, frozenset(), "ja", seen)
        assert choice is not None and not choice.restarted
        picked.append(choice.tip.id)
        seen = choice.seen
    assert sorted(picked) == [f"t{i}" for i in range(5)]
    again = tc.choose(cat, 6, frozenset(), "ja", seen)
    assert again is not None and again.restarted and again.seen == {again.tip.id}
    assert again.tip.id == "t0" != picked[-1]


def test_season_decides_which_tips_fit() -> None:
    """A flood tip for June-October is chosen in July and never in January; an all-year tip
    fits in any month."""
    cat = catalogue(tip_toml("rain", extra="months = [6, 7, 8, 9, 10]\n"),
                    tip_toml("snow", extra="months = [12, 1, 2]\n"), tip_toml("bag"))
    july = tc.choose(cat, 7, frozenset(), "ja", frozenset())
    january = tc.choose(cat, 1, frozenset(), "ja", frozenset())
    assert july is not None and july.tip.id == "rain"
    assert january is not None and january.tip.id == "snow"
    after = tc.choose(cat, 1, frozenset(), "ja", frozenset({"snow"}))
    assert after is not None and after.tip.id == "bag"
    assert tc.choose(cat, 1, frozenset(), "ja", frozenset({"snow", "bag"})) is not None
    for month in range(1, 13):
        ids = {t.id for t in cat.tips if t.fits(month, frozenset())}
        assert ("rain" in ids) == (6 <= month <= 10)


def test_audience_tips_go_to_their_households_first_and_to_nobody_else() -> None:
    """A pets tip goes first to a household with pets and never to one without; a
    'make your sheet' tip only to devices without a sheet."""
    cat = catalogue(tip_toml("general"), tip_toml("pets", extra='audience = ["pets"]\n'),
                    tip_toml("sheet", extra='audience = ["no_sheet"]\n'))
    with_pets = tc.choose(cat, 3, frozenset({"pets"}), "ja", frozenset())
    assert with_pets is not None and with_pets.tip.id == "pets"
    no_sheet = tc.choose(cat, 3, frozenset({"no_sheet"}), "ja", frozenset())
    assert no_sheet is not None and no_sheet.tip.id == "sheet"
    plain = frozenset({"elderly"})
    seen: frozenset[str] = frozenset()
    for _ in range(3):
        c = tc.choose(cat, 3, plain, "ja", seen)
        assert c is not None and c.tip.id == "general"
        seen = c.seen


def test_tips_in_the_devices_language_come_first_and_others_fall_back_to_japanese() -> None:
    """A Korean device gets the tip written in Korean first, then the others in Japanese."""
    cat = catalogue(tip_toml("plain"), tip_toml("korean", texts=(
        'ja = "j"\nja-easy = "k"\nen = "e"\nko = "한국어"\n')))
    first = tc.choose(cat, 3, frozenset(), "ko", frozenset())
    assert first is not None and (first.tip.id, first.language) == ("korean", "ko")
    second = tc.choose(cat, 3, frozenset(), "ko", first.seen)
    assert second is not None and (second.tip.id, second.language) == ("plain", "ja")
    assert second.tip.body("ko") == "plain ja"


def test_nothing_fits_gives_none() -> None:
    """No tip for the month or the household: no choice."""
    cat = catalogue(tip_toml("snow", extra="months = [1]\n"))
    assert tc.choose(cat, 7, frozenset(), "ja", frozenset()) is None


def _sheet(doc: dict[str, object]) -> object:
    return sheet_validate.parse({"name": "home", "places": [
        {"kind": "home", "lat": 37.75, "lon": 140.47}], **doc})


def test_audiences_come_from_the_sheets() -> None:
    """Members 65+, children 0-5, pets and the map's flood/landslide/tsunami zones make the
    audiences; no sheet at all is `no_sheet`."""
    sheet = _sheet({"members": [{"age": "75+"}, {"age": "0-5"}], "pets": [{"kind": "dog"}],
                    "hazards": {"flood_depth": "0.5-3", "landslide": "warning",
                                "tsunami": True}})
    assert tc.audiences([sheet]) == {"elderly", "infants", "pets", "flood_zone",  # type: ignore[list-item]
                                     "landslide_zone", "tsunami_zone"}
    assert tc.audiences([_sheet({"members": [{"age": "18-64"}]})]) == frozenset()  # type: ignore[list-item]
    assert tc.audiences([]) == {"no_sheet"}


# -- timing -------------------------------------------------------------------------------

def jst(hour: int, minute: int = 0, day: int = 7) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=TOKYO)


@pytest.mark.parametrize(("at", "expected"), [
    (jst(23, 30), jst(7, 0, day=8)),  # after the start, before midnight: next morning
    (jst(2, 15), jst(7, 0)),  # after midnight: the same morning
    (jst(7, 0), jst(7, 0)),  # the end itself is outside
    (jst(21, 59), jst(21, 59)),  # before the start
    (jst(12, 0), jst(12, 0)),
])
def test_quiet_hours_across_midnight_delay_to_their_end(at: datetime,
                                                         expected: datetime) -> None:
    """Quiet hours 22:00-07:00 move a send at 23:30 or 02:15 to 07:00 and leave 21:59 alone."""
    got = tc.after_quiet(at.astimezone(UTC), time(22), time(7), TOKYO)
    assert got == expected.astimezone(UTC) and got.tzinfo is not None


def test_quiet_hours_within_a_day_and_none() -> None:
    """Quiet hours 13:00-15:00 move 14:00 to 15:00; no quiet hours move nothing."""
    assert tc.after_quiet(jst(14), time(13), time(15), TOKYO) == jst(15)
    assert tc.after_quiet(jst(14), None, None, TOKYO) == jst(14)


def test_quiet_hours_are_read_in_the_devices_time_zone() -> None:
    """10:00 in Tokyo is 02:00 in Berlin (winter): a Berlin device with 22:00-07:00 gets it at
    07:00 Berlin time, a Tokyo device at once."""
    at = jst(10)
    berlin = ZoneInfo("Europe/Berlin")
    got = tc.after_quiet(at, time(22), time(7), berlin)
    assert got == datetime(2026, 12, 7, 7, 0, tzinfo=berlin)
    assert tc.after_quiet(at, time(22), time(7), TOKYO) == at


def test_the_week_starts_on_monday_in_the_schedules_time_zone() -> None:
    """Sunday 23:30 UTC is already Monday in Tokyo: a new week."""
    sunday_late = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    assert tc.week_of(sunday_late, TOKYO).isoformat() == "2026-12-07"
    assert tc.week_of(sunday_late, ZoneInfo("UTC")).isoformat() == "2026-11-30"


def test_cli_check_exits_0_for_the_shipped_catalogue_and_1_naming_problems(
        tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    """`alertd tips check` exits 0 on the shipped catalogue and 1 with one line per problem
    on a broken one."""
    from pathlib import Path

    from alertd import cli

    assert cli.main(["tips", "check"]) == 0
    assert "tips catalogue ok" in capsys.readouterr().out
    root = Path(str(tmp_path))
    (root / "titles.toml").write_text(TITLES)
    (root / "a.toml").write_text(tip_toml("x", extra="nope = 1\n") + tip_toml("x"))
    assert cli.main(["tips", "check", "--dir", str(root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["tips/a.toml: tip 'x': unknown field 'nope'",
                   "alertd: the tips catalogue has 1 problem(s)"]
    assert cli.main(["tips", "check", "--dir", str(root / "missing")]) == 1
