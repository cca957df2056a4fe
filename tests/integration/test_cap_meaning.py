"""CAP intake on a real PostgreSQL: jurisdiction, all-clears, senders and levels."""

from __future__ import annotations

import dataclasses

import pytest

from alertd.context import Context
from alertd.ingest import cap_intake
from tests import capgen
from tests.integration.test_cap_intake import _device, _level, _pushes

ALIAS = "urn:oid:2.49.0.1.392.0.7"
TOKYO = "35.60,139.69 35.60,139.80 35.70,139.80 35.70,139.69 35.60,139.69"
# Across the border with 宮城県: part 伊達市, part 丸森町.
ACROSS = "37.90,140.55 37.90,140.75 38.10,140.75 38.10,140.55 37.90,140.55"


async def _quarantined(c: Context) -> list[str]:
    return [r["reason"] for r in await c.pool.fetch("SELECT reason FROM quarantine ORDER BY id")]


async def _orders(c: Context) -> int:
    count: int = await c.pool.fetchval("SELECT count(*) FROM orders")
    return count


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [({"polygon": TOKYO}, "area: the area lies wholly outside the prefecture served"),
     ({"polygon": None, "circle": "35.65,139.75 10"},
      "area: the area lies wholly outside the prefecture served"),
     ({"polygon": None, "geocodes": (("LGCode", "041009"), ("JMA", "0420200"))},
      "area '福島市中心部': its geocodes name no area of the prefecture served (LGCode=041009, "
      "JMA=0420200)")],
)
async def test_area_outside_the_prefecture_is_quarantined_never_matched(
        context: Context, kwargs: dict[str, object], reason: str) -> None:
    """An evacuation whose polygon, circle or geocodes (仙台市, a neighbour's) touch none of
    the prefecture is quarantined with the reason, and no order or push is made; a device
    located inside that area is not told."""
    await _device(context, "there", 35.65, 139.75)
    await _device(context, "sendai", 38.2682, 140.8694)
    with pytest.raises(cap_intake.Rejected) as caught:
        await cap_intake.ingest(context, capgen.message("far", **kwargs),  # type: ignore[arg-type]
                                "feed")
    assert caught.value.reason.startswith(reason)
    assert [r[:len(reason)] for r in await _quarantined(context)] == [reason]
    assert await _orders(context) == 0
    assert await context.pool.fetchval("SELECT count(*) FROM deliveries") == 0


async def test_area_partly_in_the_prefecture_is_kept_and_matched_exactly(
        context: Context) -> None:
    """A circle across the border with 宮城県 is an order for the devices inside it on both
    sides, and for no one else in the prefecture."""
    await _device(context, "date", 37.9043, 140.6092)  # 伊達市, inside
    await _device(context, "marumori", 38.05, 140.70)  # 宮城県, inside
    await _device(context, "fukushima-city", 37.7608, 140.4747)  # in the prefecture, outside
    result = await cap_intake.ingest(context, capgen.message(
        "circle", polygon=None, circle="37.98,140.65 12"), "feed")
    assert result.outcome == "order"
    assert sorted(p[0] for p in await _pushes(context.pool, result.order_id)) == [
        "date", "marumori"]


async def test_neighbours_geocodes_beside_ours_are_left_out(context: Context) -> None:
    """A message naming 仙台市 and 福島市 by code is an order for 福島市 alone."""
    await _device(context, "city", 37.7608, 140.4747)
    await _device(context, "date", 37.9043, 140.6092)
    result = await cap_intake.ingest(context, capgen.message(
        "pair", polygon=None, geocodes=(("LGCode", "041009"), ("LGCode", "072010"))), "feed")
    assert result.outcome == "order"
    assert [p[0] for p in await _pushes(context.pool, result.order_id)] == ["city"]


async def test_alert_all_clear_naming_an_order_lifts_it(context: Context) -> None:
    """An Alert with responseType AllClear whose references name an active order lifts it:
    the devices told get the lifting; one naming no order issues nothing."""
    await _device(context, "d", 37.75, 140.45)
    first = await cap_intake.ingest(context, capgen.message("o1", level="警戒レベル４"), "feed")
    assert first.outcome == "order" and await _level(context, first.order_id) == 4
    await context.pool.execute("UPDATE deliveries SET state = 'sent'")
    clear = await cap_intake.ingest(context, capgen.message(
        "o2", references=("o1",), response="AllClear", level=None), "feed")
    assert (clear.outcome, clear.order_id) == ("lifted", first.order_id)
    assert await _pushes(context.pool, first.order_id) == [
        ("d", "order", 4), ("d", "order_lifted", 4)]
    alone = await cap_intake.ingest(context, capgen.message(
        "o3", response="AllClear", level="警戒レベル4"), "feed")
    assert (alone.outcome, alone.detail) == (
        "ignored", "an all-clear that names no order: nothing to lift")
    assert await _orders(context) == 1


async def test_update_all_clear_waits_for_its_alert(context: Context) -> None:
    """An AllClear Update arriving before the Alert it names lifts the order once it comes."""
    await _device(context, "d", 37.75, 140.45)
    early = await cap_intake.ingest(context, capgen.message(
        "w2", msg_type="Update", references=("w1",), response="AllClear", level=None), "feed")
    assert early.outcome == "waiting"
    alert = await cap_intake.ingest(context, capgen.message("w1"), "feed")
    assert await context.pool.fetchval(
        "SELECT state FROM orders WHERE id = $1", alert.order_id) == "lifted"


async def test_update_naming_another_sender_is_quarantined_not_a_second_order(
        context: Context) -> None:
    """An Update whose references name only another sender's message is quarantined with the
    reason: the order stays as it was and no second order is made."""
    await _device(context, "d", 37.75, 140.45)
    first = await cap_intake.ingest(context, capgen.message("n1", sender=ALIAS), "feed")
    update = capgen.message("n2", msg_type="Update", references=("n1",), level=5,
                            ref_sender=ALIAS)
    with pytest.raises(cap_intake.Rejected) as caught:
        await cap_intake.ingest(context, update, "feed")
    assert caught.value.reason == (
        f"Update from {capgen.SENDER} refers only to messages of other senders ({ALIAS}), "
        "which cap.sender_aliases does not let it speak for: not applied, and not taken for "
        "a new alert")
    assert await _quarantined(context) == [caught.value.reason]
    assert await _orders(context) == 1 and await _level(context, first.order_id) == 4


async def test_declared_aliases_update_and_cancel_across_senders(context: Context) -> None:
    """With cap.sender_aliases naming both URIs of one authority, the Alert re-delivered under
    the new URI is a duplicate, and an Update and a Cancel sent under it apply to the order
    issued under the old one."""
    c = dataclasses.replace(context, cfg=dataclasses.replace(context.cfg, cap=dataclasses.replace(
        context.cfg.cap, sender_aliases=((ALIAS, capgen.SENDER),))))
    await _device(c, "d", 37.75, 140.45)
    first = await cap_intake.ingest(c, capgen.message("x1", sender=ALIAS, level=3), "feed")
    again = await cap_intake.ingest(c, capgen.message("x1", level=3), "feed")
    assert (again.outcome, again.order_id) == ("duplicate", first.order_id)
    await c.pool.execute("UPDATE deliveries SET state = 'sent'")
    raised = await cap_intake.ingest(c, capgen.message(
        "x2", msg_type="Update", references=("x1",), level=4, ref_sender=ALIAS), "feed")
    assert (raised.outcome, raised.order_id) == ("updated", first.order_id)
    await c.pool.execute("UPDATE deliveries SET state = 'sent'")
    cancel = await cap_intake.ingest(c, capgen.message(
        "x3", msg_type="Cancel", references=("x1",), ref_sender=ALIAS), "feed")
    assert (cancel.outcome, cancel.order_id) == ("lifted", first.order_id)
    assert [p[1] for p in await _pushes(c.pool, first.order_id)] == [
        "order", "order_update", "order_lifted"]
    assert await _orders(c) == 1


@pytest.mark.parametrize("value", ["0.5", "警戒レベル4相当", "Level 4 or 5"])
async def test_evacuation_with_an_unreadable_level_is_quarantined(
        context: Context, value: str) -> None:
    """An Evacuate message whose level cannot be read is quarantined, never issued at a
    guessed level."""
    await _device(context, "d", 37.75, 140.45)
    with pytest.raises(cap_intake.Rejected, match="cannot be read"):
        await cap_intake.ingest(context, capgen.message("lv", level=value), "feed")
    assert len(await _quarantined(context)) == 1 and await _orders(context) == 0


async def test_dated_level_two_is_never_read_as_four(context: Context) -> None:
    """警戒レベル2（2024年6月発表） on an Evacuate message is quarantined as level 2, and an
    Update carrying it leaves a level-3 order at 3."""
    await _device(context, "d", 37.75, 140.45)
    with pytest.raises(cap_intake.Rejected, match="level 2 with responseType Evacuate"):
        await cap_intake.ingest(context, capgen.message(
            "l2", level="警戒レベル2（2024年6月発表）"), "feed")
    first = await cap_intake.ingest(context, capgen.message("l3", level=3), "feed")
    update = await cap_intake.ingest(context, capgen.message(
        "l4", msg_type="Update", references=("l3",), level="Level 1 of 5",
        response="Monitor"), "feed")
    assert update.outcome == "ignored"
    assert await _level(context, first.order_id) == 3


async def test_event_code_names_the_level(context: Context) -> None:
    """An eventCode 避難指示 (cap.level_codes) with no level parameter gives level 4."""
    await _device(context, "d", 37.75, 140.45)
    result = await cap_intake.ingest(context, capgen.message(
        "ec", level=None, event_code=("発令区分", "緊急安全確保")), "feed")
    assert await _level(context, result.order_id) == 5


async def test_polygon_with_stray_characters_is_quarantined(context: Context) -> None:
    """A polygon holding stray characters is quarantined with the reason naming them."""
    bad = "37.70,140.40 37.70,140.55 37.80;140.55 37.80,140.40 37.70,140.40"
    with pytest.raises(cap_intake.Rejected) as caught:
        await cap_intake.ingest(context, capgen.message("sc", polygon=bad), "feed")
    assert caught.value.reason == (
        "info 1 area 1 polygon 1: '37.80;140.55' is not a lat,lon pair; a polygon with stray "
        "characters is refused rather than read as part of the area")
    assert await _quarantined(context) == [caught.value.reason]
