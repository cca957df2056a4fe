"""CAP intake on a real PostgreSQL: messages become orders, versions and liftings."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from alertd import app, devices, points
from alertd.compute import Compute
from alertd.context import Context
from alertd.ingest import cap_intake
from tests import capgen, shapes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cap"


async def _device(c: Context, token: str, lat: float, lon: float, drill: bool = False) -> None:
    device_id, _ = await devices.register(c.pool, "ios", token, "ja")
    if drill:
        await devices.update(c.pool, device_id, {"drill": True})
    dev = await devices.get(c.pool, device_id)
    assert dev is not None
    await devices.set_location(c.pool, dev, lat, lon, None)
    await points.catch_up(c.points)


async def _level(c: Context, order_id: uuid.UUID | None) -> int:
    """The current level of an order."""
    level: int = await c.pool.fetchval(
        "SELECT v.level FROM orders o JOIN order_versions v ON v.order_id = o.id"
        " AND v.version = o.version WHERE o.id = $1", order_id)
    return level


async def _pushes(pool: asyncpg.Pool, order_id: uuid.UUID | None) -> list[tuple[str, str, int]]:
    rows = await pool.fetch(
        "SELECT v.push_token, d.kind, d.level FROM deliveries d JOIN devices v"
        " ON v.id = d.device_id WHERE d.order_id = $1 ORDER BY d.id", order_id)
    return [(r[0], r[1], r[2]) for r in rows]


async def test_alert_update_cancel(context: Context) -> None:
    """An Alert orders the devices in its polygon, an Update raises it, a Cancel lifts it."""
    await _device(context, "inside", 37.75, 140.45)
    await _device(context, "outside", 37.40, 140.38)
    first = await cap_intake.ingest(context, capgen.message("m1", level=3), "test")
    assert first.outcome == "order" and first.order_id is not None
    assert await _pushes(context.pool, first.order_id) == [("inside", "order", 3)]
    await context.pool.execute("UPDATE deliveries SET state = 'sent'")
    raised = await cap_intake.ingest(
        context, capgen.message("m2", msg_type="Update", references=("m1",), level=4), "test")
    assert raised.outcome == "updated" and raised.order_id == first.order_id
    await context.pool.execute("UPDATE deliveries SET state = 'sent'")
    cancel = await cap_intake.ingest(
        context, capgen.message("m3", msg_type="Cancel", references=("m2", "m1")), "test")
    assert cancel.outcome == "lifted"
    assert await _pushes(context.pool, first.order_id) == [
        ("inside", "order", 3), ("inside", "order_update", 4), ("inside", "order_lifted", 4)]


async def test_redelivery_is_a_no_op(context: Context) -> None:
    """The same message twice gives one order and one push."""
    await _device(context, "once", 37.75, 140.45)
    a = await cap_intake.ingest(context, capgen.message("dup"), "test")
    b = await cap_intake.ingest(context, capgen.message("dup"), "test")
    assert b.outcome == "duplicate" and b.order_id == a.order_id
    assert len(await _pushes(context.pool, a.order_id)) == 1


async def test_update_all_clear_lifts(context: Context) -> None:
    """An Update with responseType AllClear lifts the referenced order."""
    await _device(context, "d", 37.75, 140.45)
    a = await cap_intake.ingest(context, capgen.message("a1"), "test")
    await context.pool.execute("UPDATE deliveries SET state = 'sent'")
    b = await cap_intake.ingest(context, capgen.message(
        "a2", msg_type="Update", references=("a1",), response="AllClear", level=None), "test")
    assert b.outcome == "lifted" and b.order_id == a.order_id


async def test_out_of_order_reference_is_applied_later(context: Context) -> None:
    """A Cancel arriving before its Alert is kept, then applied when the Alert arrives."""
    await _device(context, "d", 37.75, 140.45)
    # The Cancel is built first but sent later: stamped each with its own clock reading, a
    # second boundary between the two builds would make the Cancel the older one (ignored).
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    early = await cap_intake.ingest(context, capgen.message(
        "late-2", msg_type="Cancel", references=("late-1",), sent=t0 + timedelta(minutes=1)),
        "test")
    assert early.outcome == "waiting"
    alert = await cap_intake.ingest(context, capgen.message("late-1", sent=t0), "test")
    assert alert.outcome == "order"
    state = await context.pool.fetchval("SELECT state FROM orders WHERE id = $1", alert.order_id)
    assert state == "lifted"
    assert await context.pool.fetchval("SELECT count(*) FROM cap_waiting") == 0


async def test_exercise_reaches_only_drill_devices(context: Context) -> None:
    """status Exercise goes only to devices enrolled in drills."""
    await _device(context, "public", 37.75, 140.45)
    await _device(context, "drill", 37.76, 140.46, drill=True)
    result = await cap_intake.ingest(context, capgen.message("ex", status="Exercise"), "test")
    assert [p[0] for p in await _pushes(context.pool, result.order_id)] == ["drill"]


@pytest.mark.parametrize("status", ["Test", "System"])
async def test_test_and_system_are_recorded_only(context: Context, status: str) -> None:
    """status Test/System is acknowledged and recorded, never sent."""
    await _device(context, "d", 37.75, 140.45)
    result = await cap_intake.ingest(context, capgen.message("t", status=status), "test")
    assert result.outcome == "recorded" and result.order_id is None
    assert await context.pool.fetchval("SELECT count(*) FROM deliveries") == 0
    assert await context.pool.fetchval("SELECT outcome FROM cap_messages") == "recorded"


async def test_draft_is_refused_and_quarantined(context: Context) -> None:
    """status Draft is refused with a reason and kept in quarantine."""
    with pytest.raises(cap_intake.Rejected, match="Draft"):
        await cap_intake.ingest(context, capgen.message("dr", status="Draft"), "test")
    assert await context.pool.fetchval("SELECT count(*) FROM quarantine") == 1


async def test_geocode_only_area_resolves(context: Context) -> None:
    """An area given only by the 6-digit code of 福島市 reaches devices located in the city."""
    await _device(context, "city", 37.7608, 140.4747)
    result = await cap_intake.ingest(context, capgen.message(
        "g1", polygon=None, geocode=("LGCode", "072010")), "test")
    assert result.outcome == "order"
    assert [p[0] for p in await _pushes(context.pool, result.order_id)] == ["city"]


async def test_unknown_geocode_is_quarantined(context: Context) -> None:
    """An area with a geocode of another prefecture (千代田区) and no geometry is quarantined,
    not guessed."""
    with pytest.raises(cap_intake.Rejected, match="geocode"):
        await cap_intake.ingest(context, capgen.message(
            "g2", polygon=None, geocode=("LGCode", "131016")), "test")
    reason = await context.pool.fetchval("SELECT reason FROM quarantine")
    assert reason == ("area '福島市中心部': its geocodes name no area of the prefecture served"
                      " (LGCode=131016): another prefecture's or unknown codes")


async def test_xxe_sample_is_quarantined(context: Context) -> None:
    """The XXE/DTD attack sample is refused with a reason and quarantined with its bytes."""
    raw = (FIXTURES / "05_cap12_xxe_dtd_attack.xml").read_bytes()
    with pytest.raises(cap_intake.Rejected):
        await cap_intake.ingest(context, raw, "test")
    row = await context.pool.fetchrow("SELECT raw, raw_size, reason FROM quarantine")
    assert bytes(row["raw"]) == raw and row["raw_size"] == len(raw)
    assert row["reason"] == "DOCTYPE is not allowed (found <!DOCTYPE alert ...>)"


async def test_non_evacuation_alert_is_ignored(context: Context) -> None:
    """A CAP alert that asks nobody to evacuate (no Evacuate, no level) issues no order."""
    await _device(context, "d", 37.75, 140.45)
    result = await cap_intake.ingest(context, capgen.message(
        "m", response="Monitor", level=None), "test")
    assert result.outcome == "ignored"
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_absurdly_large_area_is_quarantined(context: Context) -> None:
    """A CAP area larger than orders.max_area_km2 (here: half of Japan) is refused."""
    huge = "30.0,130.0 30.0,142.0 42.0,142.0 42.0,130.0 30.0,130.0"
    with pytest.raises(cap_intake.Rejected, match="km²"):
        await cap_intake.ingest(context, capgen.message("big", polygon=huge), "test")


async def test_tangled_star_is_quarantined(context: Context) -> None:
    """A CAP polygon crossing itself 318,400 times (the 800-vertex star) is quarantined with
    the reason, not repaired for a minute."""
    with pytest.raises(cap_intake.Rejected) as caught:
        await cap_intake.ingest(context, capgen.message(
            "star", polygon=shapes.star_cap(800)), "test")
    reason = ("area '福島市中心部': the polygon intersects itself at more than 1000 points; "
              "repairing it would take too long: please redraw it without crossing edges")
    assert caught.value.reason == reason
    assert await context.pool.fetchval("SELECT reason FROM quarantine") == reason
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_far_future_sent_is_quarantined(context: Context) -> None:
    """An Alert sent in 9999 is refused (else no later Cancel could ever lift its order); one
    sent a minute ahead (a sender's clock skew) is accepted."""
    future = datetime(9999, 12, 31, 0, 0, tzinfo=UTC)
    with pytest.raises(cap_intake.Rejected) as caught:
        await cap_intake.ingest(context, capgen.message("late", sent=future), "test")
    assert caught.value.reason.startswith(
        "sent 9999-12-31T00:00:00+00:00 is more than 300 s in the future (now ")
    assert await context.pool.fetchval("SELECT count(*) FROM quarantine") == 1
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
    result = await cap_intake.ingest(context, capgen.message("ahead", sent=ahead), "test")
    assert result.outcome == "order"


async def test_large_messages_are_read_in_a_worker(context: Context) -> None:
    """A CAP message over compute.inline_max_bytes is read in a worker process: a valid one
    becomes an order, the tangled star is quarantined with the same reason."""
    jobs = Compute(dataclasses.replace(context.cfg.compute, workers=1),
                   app.areas_path(context.cfg))
    await jobs.start()
    try:
        c = dataclasses.replace(context, compute=jobs)
        ring = " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in shapes.circle_ring(400))
        raw = capgen.message("round", polygon=ring)
        assert len(raw) > context.cfg.compute.inline_max_bytes
        assert (await cap_intake.ingest(c, raw, "test")).outcome == "order"
        with pytest.raises(cap_intake.Rejected, match="more than 1000 points"):
            await cap_intake.ingest(c, capgen.message("star", polygon=shapes.star_cap(800)),
                                    "test")
        assert (jobs.finished, jobs.replaced) == (2, 0)
    finally:
        await jobs.close()


async def test_cancel_waiting_on_an_update_is_applied(context: Context) -> None:
    """Alert, then a Cancel naming only the not-yet-received Update, then that Update: the
    order ends lifted."""
    from datetime import UTC, datetime, timedelta

    await _device(context, "d", 37.75, 140.45)
    t0 = datetime.now(UTC).replace(microsecond=0)
    alert = await cap_intake.ingest(context, capgen.message("c1", sent=t0), "test")
    cancel = await cap_intake.ingest(context, capgen.message(
        "c3", msg_type="Cancel", references=("c2",), sent=t0 + timedelta(minutes=2)), "test")
    assert cancel.outcome == "waiting"
    update = await cap_intake.ingest(context, capgen.message(
        "c2", msg_type="Update", references=("c1",), level=5, sent=t0 + timedelta(minutes=1)),
        "test")
    assert update.outcome == "updated"
    state = await context.pool.fetchval("SELECT state FROM orders WHERE id = $1", alert.order_id)
    assert state == "lifted"
    assert await context.pool.fetchval("SELECT count(*) FROM cap_waiting") == 0


async def test_older_update_does_not_roll_back(context: Context) -> None:
    """An Update sent before the last one applied (feeds list newest first) is ignored."""
    from datetime import UTC, datetime, timedelta

    await _device(context, "d", 37.75, 140.45)
    t0 = datetime.now(UTC).replace(microsecond=0)
    a = await cap_intake.ingest(context, capgen.message("o1", level=3, sent=t0), "test")
    newer = await cap_intake.ingest(context, capgen.message(
        "o3", msg_type="Update", references=("o1",), level=5,
        sent=t0 + timedelta(minutes=2)), "test")
    older = await cap_intake.ingest(context, capgen.message(
        "o2", msg_type="Update", references=("o1",), level=4,
        sent=t0 + timedelta(minutes=1)), "test")
    assert newer.outcome == "updated" and older.outcome == "ignored"
    level = await _level(context, a.order_id)
    assert level == 5


async def test_exercise_cannot_touch_a_real_order(context: Context) -> None:
    """An Exercise Cancel referencing a real order leaves it active."""
    await _device(context, "d", 37.75, 140.45)
    real = await cap_intake.ingest(context, capgen.message("r1"), "test")
    drill = await cap_intake.ingest(context, capgen.message(
        "r2", msg_type="Cancel", references=("r1",), status="Exercise"), "test")
    assert drill.outcome == "ignored"
    assert await context.pool.fetchval(
        "SELECT state FROM orders WHERE id = $1", real.order_id) == "active"


async def test_other_senders_cannot_cancel(context: Context) -> None:
    """A Cancel from another sender does not lift this sender's order: it is quarantined."""
    await _device(context, "d", 37.75, 140.45)
    real = await cap_intake.ingest(context, capgen.message("s1"), "test")
    foreign = capgen.message("s2", msg_type="Cancel", references=("s1",),
                             sender="mallory@example.com", ref_sender=capgen.SENDER)
    with pytest.raises(cap_intake.Rejected, match="refers only to messages of other senders"):
        await cap_intake.ingest(context, foreign, "test")
    assert await context.pool.fetchval(
        "SELECT state FROM orders WHERE id = $1", real.order_id) == "active"


async def test_update_keeps_what_it_leaves_out(context: Context) -> None:
    """An Update without a level keeps the order's level (PATCH semantics), not the default."""
    await _device(context, "d", 37.75, 140.45)
    # One sent time for both: the expiry follows it, and a second's tick between the two
    # messages would make the Update change the expiry, an update rather than no change.
    sent = datetime.now(UTC).replace(microsecond=0)
    a = await cap_intake.ingest(context, capgen.message("k1", level=5, sent=sent), "test")
    b = await cap_intake.ingest(context, capgen.message(
        "k2", msg_type="Update", references=("k1",), level=None, event="洪水 続報", sent=sent),
        "test")
    assert b.outcome == "recorded"
    level = await _level(context, a.order_id)
    assert level == 5


async def test_area_outside_the_prefecture_is_quarantined(context: Context) -> None:
    """A CAP Alert whose polygon lies wholly outside the prefecture (Tokyo) is refused and
    quarantined with the reason, as a staff order would be; one across the border into
    伊達市 is an order for the devices it covers."""
    tokyo = "35.60,139.69 35.60,139.80 35.70,139.80 35.70,139.69 35.60,139.69"
    with pytest.raises(cap_intake.Rejected) as caught:
        await cap_intake.ingest(context, capgen.message("far", polygon=tokyo), "test")
    reason = ("area: the area lies wholly outside the prefecture served (it touches none of its "
              "municipalities); check the coordinates: GeoJSON positions are [lon, lat], CAP "
              "polygons lat,lon")
    assert caught.value.reason == reason
    assert await context.pool.fetchval("SELECT reason FROM quarantine") == reason
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0
    await _device(context, "date", 37.9043, 140.6092)  # in 伊達市, inside the area
    across = "37.90,140.55 37.90,140.75 38.10,140.75 38.10,140.55 37.90,140.55"
    result = await cap_intake.ingest(context, capgen.message("near", polygon=across), "test")
    assert result.outcome == "order"
    assert [p[0] for p in await _pushes(context.pool, result.order_id)] == ["date"]
