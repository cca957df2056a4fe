"""What a CAP message means for orders: its level read exactly, its references, its area."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertd import errors
from alertd import settings as alertd_settings
from alertd.ingest import cap_levels, cap_mapping
from feeds import cap
from geo.municipalities import Table
from tests import capgen

CFG = alertd_settings.load(environ={})

TOKYO = "35.60,139.69 35.60,139.80 35.70,139.80 35.70,139.69 35.60,139.69"
# Across the border with 宮城県: half in 伊達市, half in 丸森町 (Miyagi).
ACROSS = "37.90,140.55 37.90,140.75 38.10,140.75 38.10,140.55 37.90,140.55"


def _info(*values: str, response: str = "Evacuate", name: str = "警戒レベル") -> cap.CapInfo:
    return cap.CapInfo(response_types=(response,),
                       parameters=tuple((name, v) for v in values))


@pytest.mark.parametrize(
    ("value", "level"),
    [("4", 4), ("４", 4), ("警戒レベル4", 4), ("警戒レベル４", 4), ("レベル５", 5),
     ("Level 4", 4), ("level 3", 3), ("LEVEL５", 5), (" 警戒レベル 4 ", 4),
     ("警戒レベル2（2024年6月発表）", 2), ("Level 1 of 5", 1), ("ﾚﾍﾞﾙ4", 4)],
)
def test_level_values_read_exactly(value: str, level: int) -> None:
    """Digits, full-width digits, 警戒レベルN and Level N read as their level, and a trailing
    remark in brackets or "of 5" does not lend its digits."""
    assert cap_levels.read_value(value) == level


@pytest.mark.parametrize(
    "value",
    ["0.5", "4.0", "45", "警戒レベル4相当", "レベル4以上", "2024年6月", "level 4 or 5",
     "警戒4", "避難指示(警戒レベル4)", "Ⅳ", "", "6", "Level 4 of 4"],
)
def test_other_values_are_unreadable(value: str) -> None:
    """A value that says anything but a level is not read, whatever digits it holds."""
    assert cap_levels.read_value(value) is None


def test_configured_event_codes_name_a_level() -> None:
    """An eventCode whose value is in cap.level_codes names its level, under any valueName."""
    info = cap.CapInfo(event_codes=(("発令区分", "避難指示"),))
    assert cap_levels.read(info, CFG.cap) == cap_levels.Reading(levels=(4,))
    assert cap_levels.order_level(_info("緊急安全確保"), CFG.cap) == 5
    assert cap_levels.read(cap.CapInfo(event_codes=(("発令区分", "避難指示の解除"),)),
                           CFG.cap) == cap_levels.Reading()


def test_level_codes_come_from_configuration() -> None:
    """Codes named in configuration are read; the defaults are gone once replaced."""
    cfg = dataclasses.replace(CFG.cap, level_codes=(("EVAC-HIGH", 5),))
    assert cap_levels.order_level(cap.CapInfo(event_codes=(("x", "evac-high"),)), cfg) == 5
    assert cap_levels.order_level(_info("避難指示"), cfg) is None


def _spec(table: Table, message: bytes) -> int:
    spec = cap_mapping.to_spec(cap.parse(message), table, CFG, datetime.now(UTC))
    assert spec is not None
    return spec.level


def test_evacuate_with_an_unreadable_level_is_refused(table: Table) -> None:
    """An Evacuate message whose level cannot be read is refused with the value, not
    given the default level."""
    with pytest.raises(errors.InvalidInput) as caught:
        _spec(table, capgen.message("u", level="0.5"))
    assert caught.value.reason == (
        "the level '0.5' cannot be read: give 3, 4 or 5, 警戒レベル4 or Level 4 (or a value of "
        "cap.level_codes); the level of an evacuation is never guessed")


def test_evacuate_at_level_two_is_refused(table: Table) -> None:
    """警戒レベル2 (with a dated remark) on an Evacuate message is refused, never read as 4."""
    with pytest.raises(errors.InvalidInput, match="level 2 with responseType Evacuate"):
        _spec(table, capgen.message("u", level="警戒レベル2（2024年6月発表）"))


def test_readable_levels_and_the_default(table: Table) -> None:
    """Full-width and word forms give their level; no level at all gives cap.default_level."""
    assert _spec(table, capgen.message("a", level="警戒レベル５")) == 5
    assert _spec(table, capgen.message("b", level="Level 3")) == 3
    assert _spec(table, capgen.message("c", level=None)) == CFG.cap.default_level


def test_unreadable_level_without_evacuate_is_no_order(table: Table) -> None:
    """A message naming no Evacuate and only an unreadable level is not an evacuation."""
    alert = cap.parse(capgen.message("n", level="Level 1 of 5", response="Monitor"))
    assert cap_mapping.to_spec(alert, table, CFG, datetime.now(UTC)) is None


_LEVEL_WORDS = st.sampled_from(["", "警戒レベル", "レベル", "Level ", "level", "警戒レベル "])
_DIGITS = st.sampled_from(["1", "2", "3", "１", "２", "３"])


@given(word=_LEVEL_WORDS, digit=_DIGITS, year=st.integers(1900, 2099),
       month=st.integers(1, 12), wide=st.booleans())
@settings(max_examples=300, deadline=None)
def test_dated_low_levels_never_read_as_four_or_five(
        word: str, digit: str, year: int, month: int, wide: bool) -> None:
    """A level 1-3 value with a dated remark in brackets reads as that level, whatever
    digits the remark holds."""
    remark = f"（{year}年{month}月発表）" if wide else f" ({year}-{month:02d})"
    got = cap_levels.read_value(f"{word}{digit}{remark}")
    assert got == int(unicodedata.normalize("NFKC", digit))


@given(st.text(max_size=20))
@settings(max_examples=500, deadline=None)
def test_any_text_reading_four_or_five_says_only_that(value: str) -> None:
    """Whatever the text, it reads as 4 or 5 only when, once normalised and stripped of
    spaces, a bracketed remark and "of 5", it is N, レベルN, 警戒レベルN or levelN."""
    got = cap_levels.read_value(value)
    if got not in (4, 5):
        return
    folded = re.sub(r"\([^()]*\)$", "", unicodedata.normalize("NFKC", value).casefold())
    bare = re.sub(r"of5$", "", re.sub(r"\s", "", folded))
    assert bare in {f"{w}{got}" for w in ("", "レベル", "警戒レベル", "level")}


@given(st.from_regex(r"[0-9]{1,3}\.[0-9]{1,4}", fullmatch=True))
def test_decimals_are_never_levels(value: str) -> None:
    """A decimal number (0.5, 4.0, 5.25) is never read as a level."""
    assert cap_levels.read_value(value) is None


def test_references_across_declared_aliases_count() -> None:
    """A reference to a message of the sender or of a declared alias counts, newest first;
    a self-reference names nothing."""
    cfg = dataclasses.replace(CFG.cap, sender_aliases=((capgen.SENDER, "urn:oid:2.49.0.1.392"),))
    alert = cap.parse(capgen.message("c2", msg_type="Cancel", references=("c1",),
                                     ref_sender="urn:oid:2.49.0.1.392"))
    assert [r.key for r in cap_mapping.references(alert, cfg)] == [
        ("urn:oid:2.49.0.1.392", "c1")]
    own = cap.parse(capgen.message("c3", msg_type="Cancel", references=("c3", "c1", "c2")))
    assert [r.identifier for r in cap_mapping.references(own, CFG.cap)] == ["c2", "c1"]


def test_references_only_to_other_senders_are_refused() -> None:
    """An Update naming only another sender's messages is refused with the reason, unless
    cap.sender_aliases lets it speak for them."""
    alert = cap.parse(capgen.message("u2", msg_type="Update", references=("u1",),
                                     ref_sender="other@example.org"))
    with pytest.raises(errors.InvalidInput) as caught:
        cap_mapping.references(alert, CFG.cap)
    assert caught.value.reason == (
        f"Update from {capgen.SENDER} refers only to messages of other senders "
        "(other@example.org), which cap.sender_aliases does not let it speak for: not "
        "applied, and not taken for a new alert")
    cfg = dataclasses.replace(CFG.cap, sender_aliases=(("other@example.org", capgen.SENDER),))
    assert len(cap_mapping.references(alert, cfg)) == 1


def test_all_clear_is_read_from_any_info_block() -> None:
    """responseType AllClear in a block makes the message an all-clear."""
    alert = cap.parse(capgen.message("x", response="AllClear", level=None))
    assert cap_mapping.is_all_clear(alert)
    assert not cap_mapping.is_all_clear(cap.parse(capgen.message("y")))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [({"polygon": TOKYO}, "wholly outside the prefecture served"),
     ({"polygon": None, "circle": "35.65,139.75 10"}, "wholly outside the prefecture served"),
     ({"polygon": None, "geocodes": (("LGCode", "041009"), ("JMA", "0420200"))},
      "its geocodes name no area of the prefecture served (LGCode=041009, JMA=0420200)"),
     ({"polygon": None, "geocodes": (("FIPS6", "072010"),)},
      "no geocode of the systems read (cap.geocode_systems): FIPS6=072010")],
)
def test_area_outside_the_prefecture_is_refused(
        table: Table, kwargs: dict[str, object], reason: str) -> None:
    """A polygon, circle or geocodes touching none of the prefecture is refused with the
    reason, as staff areas are."""
    raw = capgen.message("far", **kwargs)  # type: ignore[arg-type]
    prepared = cap_mapping.prepare(table, (raw, CFG, datetime.now(UTC)))
    alert = cap.parse(raw)
    assert prepared.area is None and reason in prepared.area_error
    with pytest.raises(errors.InvalidInput, match=re.escape(reason)):
        cap_mapping.to_spec(alert, table, CFG, datetime.now(UTC))


def test_area_partly_in_the_prefecture_is_kept_as_it_is(table: Table) -> None:
    """A polygon across the border is kept whole (not cut at the border); geocodes of a
    neighbour beside ours leave only ours."""
    alert = cap.parse(capgen.message("p", polygon=ACROSS))
    spec = cap_mapping.to_spec(alert, table, CFG, datetime.now(UTC))
    assert spec is not None
    assert spec.area.geometry.bounds == pytest.approx((140.55, 37.90, 140.75, 38.10))
    mixed = capgen.message("g", polygon=None,
                           geocodes=(("LGCode", "041009"), ("LGCode", "072010")))
    spec = cap_mapping.to_spec(cap.parse(mixed), table, CFG, datetime.now(UTC))
    assert spec is not None and spec.area.geometry.equals(table.get("072010"))


@given(lat=st.floats(-80, 80), lon=st.floats(-181.0, 180.98), width=st.floats(0.01, 0.9),
       height=st.floats(0.01, 0.9))
@settings(max_examples=300, deadline=None)
def test_rings_straying_past_180_keep_their_area(
        lat: float, lon: float, width: float, height: float) -> None:
    """A box whose longitudes stray up to 1° past ±180 is kept, lies within ±180 and covers
    the same area in degrees as drawn (the overhang moved to the other side, not dropped)."""
    lat, lon = round(lat, 4), round(lon, 4)
    east, top = round(min(lon + width, 181.0), 4), round(lat + height, 4)
    ring = [(lat, lon), (lat, east), (top, east), (top, lon), (lat, lon)]
    text = " ".join(f"{a:.4f},{b:.4f}" for a, b in ring)
    alert = cap.parse(capgen.message("box", polygon=text))
    geometry = cap.area_geometry(alert.infos[0].areas[0])
    assert geometry is not None
    minx, _, maxx, _ = geometry.bounds
    assert -180.0 <= minx and maxx <= 180.0
    assert abs(geometry.area - (east - lon) * (top - lat)) < 1e-9
