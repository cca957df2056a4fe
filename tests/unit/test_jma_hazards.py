"""Tests for alertd.ingest.jma_hazards: JMA kinds as hazards and levels, and episode rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.ingest import jma_hazards
from alertd.ingest.jma_hazards import InForce, OpenEpisode
from feeds import jma

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jma"
HEAVY_RAIN = FIXTURES / "10_jmaxml_VPWW55_R06_heavyrain_level_warning.xml"
MUNICIPAL = "気象警報・注意報（市町村等）"


def kind(name: str, *levels: tuple[str, int], status: str = "発表") -> jma.JmaKind:
    """A parsed kind with these stated levels."""
    return jma.JmaKind(name, "03", status, max((lv for _, lv in levels), default=None),
                       tuple(jma.JmaLevel(s, lv) for s, lv in levels))


@pytest.mark.parametrize(("k", "expected"), [
    (kind("レベル３大雨警報", ("大雨浸水危険度", 3), ("", 3)), {"inland_flood": 3}),
    (kind("大雨警報", ("土砂災害危険度", 3), ("大雨浸水危険度", 4)),
     {"landslide": 3, "inland_flood": 4}),
    (kind("大雨警報", ("", 3)), {"landslide": 3}),
    (kind("大雨警報"), {"landslide": 3}),
    (kind("洪水警報"), {"flood": 3}),
    (kind("土砂災害警戒情報"), {"landslide": 4}),
    (kind("高潮警報"), {"storm_surge": 4}),
    (kind("大雨特別警報"), {"landslide": 5}),
    (kind("レベル４土砂災害危険警報", ("", 4)), {"landslide": 4}),
    (kind("大雨注意報"), {}),
    (kind("波浪警報"), {}),
    (kind("レベル２大雨注意報", ("", 2)), {"landslide": 2}),
])
def test_hazard_levels(k: jma.JmaKind, expected: dict[str, int]) -> None:
    """A kind's hazards come from the types its levels are stated in, else from its name;
    its level from what it states, else from JMA's definition for the kind."""
    assert jma_hazards.hazard_levels(k) == expected


def test_in_force_from_the_sample_moved_to_fukushima() -> None:
    """Sample 10 moved to prefecture 07 has 10 areas in force at 大雨浸水 level 3 and 5 at
    level 2 (注意報 by name); lifted and empty kinds are not in force."""
    report = jma.parse(HEAVY_RAIN.read_bytes().replace(b"<Code>32", b"<Code>07"))
    found = jma_hazards.in_force(report, "07", [MUNICIPAL])
    assert sorted((w.area_code, w.hazard, w.level) for w in found if w.level == 3)[:2] == [
        ("0720100", "inland_flood", 3), ("0720200", "inland_flood", 3)]
    assert sum(w.level == 3 for w in found) == 10
    assert sum(w.level == 2 for w in found) == 5
    assert all(w.warning_type == MUNICIPAL and len(w.area_code) == 7 for w in found)
    assert jma_hazards.in_force(report, "07", ["気象警報・注意報（府県予報区等）"]) == []
    assert jma_hazards.in_force(report, "01", [MUNICIPAL]) == []


def _w(area: str, level: int, hazard: str = "landslide", code: str = "03") -> InForce:
    return InForce(area, "市", "T", code, "大雨警報", hazard, level)


def test_episode_starts_continues_and_ends() -> None:
    """A kind newly in force starts an episode; still in force it continues; gone, it ends."""
    first = jma_hazards.changes([], [_w("0720100", 3)])
    assert first.started == (_w("0720100", 3),) and not first.ended and not first.leveled
    opened = [OpenEpisode(1, _w("0720100", 3).key, 3)]
    again = jma_hazards.changes(opened, [_w("0720100", 3)])
    assert (again.started, again.leveled, again.ended) == ((), (), ())
    lifted = jma_hazards.changes(opened, [])
    assert lifted.ended == (1,) and lifted.started == ()


def test_episode_level_follows_the_report() -> None:
    """A level change of a kind in force changes the open episode's level, not its identity."""
    opened = [OpenEpisode(7, _w("0720100", 3).key, 3)]
    up = jma_hazards.changes(opened, [_w("0720100", 4)])
    assert (up.started, up.leveled, up.ended) == ((), ((7, 4),), ())


def test_other_kind_area_or_hazard_is_another_episode() -> None:
    """Another kind, area or hazard is its own episode; duplicates in a report start once at
    their highest level."""
    opened = [OpenEpisode(1, _w("0720100", 3).key, 3)]
    got = jma_hazards.changes(opened, [
        _w("0720100", 3), _w("0720200", 3), _w("0720100", 4, code="09"),
        _w("0720100", 3, hazard="inland_flood"), _w("0720200", 4)])
    assert sorted((w.area_code, w.kind_code, w.hazard, w.level) for w in got.started) == [
        ("0720100", "03", "inland_flood", 3), ("0720100", "09", "landslide", 4),
        ("0720200", "03", "landslide", 4)]
    assert got.ended == () and got.leveled == ()


def test_report_time_is_not_part_of_the_key() -> None:
    """Episodes are keyed by area, type, kind and hazard only (a later report continues one)."""
    assert _w("0720100", 3).key == ("0720100", "T", "03", "landslide")
