"""Weekly tips on a real PostgreSQL: who gets which tip when, once a week, and the claim order."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from alertd import devices, inbox, orders, pipeline, points, settings, tips
from alertd import tip_catalogue as tc
from alertd.delivery import outbox
from sheets import store as sheet_store
from sheets import validate as sheet_validate

CFG = settings.load(environ={})
TOKYO = ZoneInfo("Asia/Tokyo")
# Monday 2 November 2026, 10:00 in Tokyo: typhoon season, no snow.
MONDAY = datetime(2026, 11, 2, 10, 0, tzinfo=TOKYO)
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
TITLES = "[title]\n" + "\n".join(f'{lang} = "T {lang}"' for lang in tc.LANGUAGES) + "\n"


def small_catalogue(tmp_path: Path, *tips_toml: str) -> settings.Settings:
    """Settings whose catalogue is the given tips (each a [[tip]] TOML text)."""
    (tmp_path / "titles.toml").write_text(TITLES)
    (tmp_path / "a.toml").write_text("\n".join(tips_toml))
    return dataclasses.replace(CFG, tips=dataclasses.replace(
        CFG.tips, catalogue_dir=str(tmp_path)))


def tip(tip_id: str, extra: str = "") -> str:
    return (f'[[tip]]\nid = "{tip_id}"\n{extra}[tip.texts]\nja = "{tip_id} ja"\n'
            f'ja-easy = "{tip_id} easy"\nen = "{tip_id} en"\n')


async def register(pool: asyncpg.Pool, token: str, locale: str = "ja",
                   platform: str = "ios", **settings_: object) -> uuid.UUID:
    device_id, _ = await devices.register(pool, platform, token, locale)
    if settings_:
        await devices.update(pool, device_id, dict(settings_))
    return device_id


async def tip_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT v.push_token, d.* FROM deliveries d JOIN devices v ON v.id = d.device_id"
        " WHERE d.kind = 'tip' ORDER BY v.push_token, d.id")


async def _order_over(pool: asyncpg.Pool, live: points.Points,
                      device_id: uuid.UUID) -> pipeline.Accepted:
    """Share a location in SQUARE for the device, then issue a level-4 flood order over it."""
    dev = await devices.get(pool, device_id)
    assert dev is not None
    await devices.set_location(pool, dev, 37.75, 140.45, None)
    await points.catch_up(live)
    spec = orders.parse_spec({"level": 4, "hazard": "flood", "area": SQUARE,
                              "headline": {"ja": "避難"}}, live.table, CFG.orders,
                             datetime.now(UTC))
    async with pool.acquire() as conn:
        return await pipeline.accept(conn, live, spec)


async def test_each_eligible_device_gets_one_tip_a_week_once(pool: asyncpg.Pool) -> None:
    """A weekly send queues one passive tip (priority 5, a day to live) per device with tips
    on and a working token; running it again, or on two nodes at once, queues nothing more."""
    for name in ("a", "b", "c"):
        await register(pool, name)
    await register(pool, "off", tips=False)
    gone = await register(pool, "gone")
    await pool.execute("UPDATE devices SET token_state = 'invalid' WHERE id = $1", gone)
    assert await tips.send_weekly(pool, CFG, MONDAY) == 3
    again = await asyncio.gather(tips.send_weekly(pool, CFG, MONDAY + timedelta(hours=1)),
                                 tips.send_weekly(pool, CFG, MONDAY + timedelta(days=2)))
    assert again == [0, 0]
    rows = await tip_rows(pool)
    assert [r["push_token"] for r in rows] == ["a", "b", "c"]
    for r in rows:
        assert (r["priority"], r["level"], r["service"], r["state"]) == (5, None, "apns",
                                                                         "pending")
        assert r["expires_at"] - r["due_at"] == timedelta(days=1)
        assert r["alert_id"].startswith("tip-") and r["ref"] == "tip:2026-11-02"
        assert r["title"] == "防災ひとくちメモ"


async def test_two_nodes_sending_at_once_queue_each_device_once(pool: asyncpg.Pool) -> None:
    """Two weekly sends racing over 50 devices queue exactly one tip for each."""
    for i in range(50):
        await register(pool, f"d{i:02}")
    cfg = dataclasses.replace(CFG, tips=dataclasses.replace(CFG.tips, batch_size=7))
    counts = await asyncio.gather(tips.send_weekly(pool, cfg, MONDAY),
                                  tips.send_weekly(pool, cfg, MONDAY))
    assert sum(counts) == 50
    assert await pool.fetchval("SELECT count(DISTINCT device_id) FROM deliveries") == 50
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 50


async def test_rotation_never_repeats_until_exhausted(pool: asyncpg.Pool,
                                                      tmp_path: Path) -> None:
    """Week after week a device gets each of the three fitting tips once, then the rotation
    restarts; a tip for another season is never sent."""
    cfg = small_catalogue(tmp_path, tip("one"), tip("two"), tip("three"),
                          tip("snow", 'months = [1, 2]\n'))
    await register(pool, "a")
    for week in range(5):
        assert await tips.send_weekly(pool, cfg, MONDAY + timedelta(weeks=week)) == 1
    sent = [r["alert_id"] for r in await tip_rows(pool)]
    assert sent == ["tip-one", "tip-two", "tip-three", "tip-one", "tip-two"]
    row = await pool.fetchrow("SELECT round, seen FROM tip_rotation")
    assert (row["round"], sorted(row["seen"])) == (2, ["one", "two"])


async def test_the_household_decides_which_tip_comes_first(pool: asyncpg.Pool,
                                                           tmp_path: Path) -> None:
    """A device whose sheet lists a dog gets the pets tip, one without a sheet the
    'make your sheet' tip, and neither gets the other's."""
    cfg = small_catalogue(tmp_path, tip("general"), tip("pets", 'audience = ["pets"]\n'),
                          tip("sheet", 'audience = ["no_sheet"]\n'))
    with_dog = await register(pool, "dog")
    await register(pool, "nosheet")
    sheet = sheet_validate.parse({"name": "家", "places": [
        {"kind": "home", "lat": 37.75, "lon": 140.47}], "pets": [{"kind": "dog"}]})
    async with pool.acquire() as conn:
        await sheet_store.put(conn, with_dog, uuid.uuid4(), sheet, None)
    for week in range(3):
        await tips.send_weekly(pool, cfg, MONDAY + timedelta(weeks=week))
    got = {}
    for r in await tip_rows(pool):
        got.setdefault(r["push_token"], []).append(r["alert_id"])
    assert got == {"dog": ["tip-pets", "tip-general", "tip-pets"],
                   "nosheet": ["tip-sheet", "tip-general", "tip-sheet"]}


async def test_quiet_hours_delay_the_tip_to_their_end_in_the_devices_time_zone(
        pool: asyncpg.Pool) -> None:
    """At 23:30 in Tokyo a device quiet 22:00-07:00 gets its tip at 07:00 the next day, one
    in Berlin (where it is 15:30) at once, and one quiet 22:00-07:00 Berlin time at 07:00
    Berlin time; each lives a day from then."""
    late = datetime(2026, 11, 2, 23, 30, tzinfo=TOKYO)
    await register(pool, "tokyo", quiet_start=time(22), quiet_end=time(7))
    await register(pool, "berlin-day", quiet_start=time(22), quiet_end=time(7),
                   time_zone="Europe/Berlin")
    await register(pool, "berlin-night", quiet_start=time(14), quiet_end=time(7),
                   time_zone="Europe/Berlin")
    await register(pool, "none")
    cfg = dataclasses.replace(CFG, tips=dataclasses.replace(CFG.tips, rate_per_s=1e9))
    assert await tips.send_weekly(pool, cfg, late) == 4
    due = {r["push_token"]: r["due_at"] for r in await tip_rows(pool)}
    berlin = ZoneInfo("Europe/Berlin")
    assert due["tokyo"] == datetime(2026, 11, 3, 7, 0, tzinfo=TOKYO)
    assert due["berlin-day"] - late < timedelta(seconds=1)
    assert due["berlin-night"] == datetime(2026, 11, 3, 7, 0, tzinfo=berlin)
    assert due["none"] - late < timedelta(seconds=1)


async def test_a_large_send_is_paced(pool: asyncpg.Pool) -> None:
    """At 4 tips a second, ten devices' tips fall due over 2.25 seconds, in order."""
    for i in range(10):
        await register(pool, f"d{i}")
    cfg = dataclasses.replace(CFG, tips=dataclasses.replace(CFG.tips, rate_per_s=4.0,
                                                            batch_size=3))
    await tips.send_weekly(pool, cfg, MONDAY)
    offsets = [(r["due_at"] - MONDAY).total_seconds() for r in await tip_rows(pool)]
    assert offsets == [i / 4 for i in range(10)]


async def test_tips_held_by_quiet_hours_are_paced_after_them(pool: asyncpg.Pool) -> None:
    """At 2 tips a second, three devices quiet until 07:00 get theirs at 07:00, 07:00:00.5
    and 07:00:01, not all at once."""
    late = datetime(2026, 11, 2, 23, 30, tzinfo=TOKYO)
    for i in range(3):
        await register(pool, f"d{i}", quiet_start=time(22), quiet_end=time(7))
    cfg = dataclasses.replace(CFG, tips=dataclasses.replace(CFG.tips, rate_per_s=2.0))
    await tips.send_weekly(pool, cfg, late)
    seven = datetime(2026, 11, 3, 7, 0, tzinfo=TOKYO)
    assert [(r["due_at"] - seven).total_seconds() for r in await tip_rows(pool)] == [
        0.0, 0.5, 1.0]


async def test_an_active_order_suppresses_tips_that_week(pool: asyncpg.Pool,
                                                         live: points.Points) -> None:
    """A device holding an active order gets no tip that week, even after the order is
    lifted; the next week it gets one again. Others get theirs."""
    inside = await register(pool, "inside")
    await register(pool, "outside")
    accepted = await _order_over(pool, live, inside)
    now = datetime.now(UTC)
    assert await tips.send_weekly(pool, CFG, now) == 1
    preview = await tips.preview(pool, CFG, inside, now)
    assert preview.choice is None and preview.reason == "an active order covers one of its places"
    async with pool.acquire() as conn:
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.lift(conn, order)
    assert await tips.send_weekly(pool, CFG, now + timedelta(hours=1)) == 0
    assert await tips.send_weekly(pool, CFG, now + timedelta(weeks=1)) == 2
    assert [r["push_token"] for r in await tip_rows(pool)] == ["inside", "outside", "outside"]


async def test_a_queued_tip_is_withheld_once_an_order_covers_the_device(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A tip queued before an order reached its device (held by quiet hours) is cancelled
    when it falls due, with the reason; another device's tip is claimed."""
    inside = await register(pool, "inside")
    await register(pool, "outside")
    await tips.send_weekly(pool, CFG, datetime.now(UTC) + timedelta(hours=1))
    await _order_over(pool, live, inside)
    await pool.execute("UPDATE deliveries SET state = 'sent' WHERE kind = 'order'")
    await pool.execute("UPDATE deliveries SET due_at = now() - interval '1 second'"
                       " WHERE kind = 'tip'")
    claimed = await outbox.claim(pool, "apns", 10, 30.0, "w")
    assert [c.push_token for c in claimed] == ["outside"]
    withheld = await pool.fetchrow("SELECT state, reason FROM deliveries WHERE kind = 'tip'"
                                   " AND device_id = $1", inside)
    assert (withheld["state"], withheld["reason"]) == (
        "cancelled", "withheld: an active order covers the device")
    assert [e.kind for e in await inbox.entries(pool, inside)] == ["order"]


async def test_a_tip_is_in_the_inbox(pool: asyncpg.Pool) -> None:
    """The tip a device was sent is an inbox entry of kind tip with its whole text."""
    device_id = await register(pool, "a", locale="en-GB")
    await tips.send_weekly(pool, CFG, MONDAY)
    (entry,) = await inbox.entries(pool, device_id)
    cat = tips.catalogue(CFG)
    shown = cat.get(entry.alert_id.removeprefix("tip-"))
    assert shown is not None
    assert (entry.kind, entry.level, entry.title) == ("tip", None, cat.title("en"))
    assert entry.body == shown.body("en")


async def test_orders_are_claimed_before_due_tips(pool: asyncpg.Pool) -> None:
    """With 30 tips overdue, a claim of 5 takes the order queued after them, and the four
    tips due first."""
    for i in range(3):
        await register(pool, f"d{i}")
    cfg = dataclasses.replace(CFG, tips=dataclasses.replace(CFG.tips, rate_per_s=1e9))
    past = datetime.now(UTC) - timedelta(minutes=5)
    for week in range(10):
        await tips.send_weekly(pool, cfg, past - timedelta(weeks=10 - week))
    await pool.execute("UPDATE deliveries SET expires_at = now() + interval '1 day'")
    order_id = uuid.uuid4()
    await pool.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
    device_id = await pool.fetchval("SELECT id FROM devices LIMIT 1")
    async with pool.acquire() as conn:
        await outbox.enqueue(conn, [outbox.NewDelivery(
            device_id=device_id, service="apns", kind="order", title="t", body="b",
            expires_at=datetime.now(UTC) + timedelta(hours=1), level=4, order_id=order_id,
            version=1)])
    oldest = [r["id"] for r in await pool.fetch(
        "SELECT id FROM deliveries WHERE kind = 'tip' ORDER BY due_at, id LIMIT 4")]
    claimed = await outbox.claim(pool, "apns", 5, 30.0, "w")
    assert sorted(c.kind for c in claimed) == ["order", "tip", "tip", "tip", "tip"]
    assert sorted(c.id for c in claimed if c.kind == "tip") == sorted(oldest)


async def test_staff_send_counts_in_the_rotation_but_not_as_the_week(pool: asyncpg.Pool,
                                                                      tmp_path: Path) -> None:
    """A staff send of the next tip queues it now (quiet hours apply) and marks it seen; the
    weekly send that week still comes, with the following tip."""
    cfg = small_catalogue(tmp_path, tip("one"), tip("two"))
    device_id = await register(pool, "a")
    sent = await tips.send_one(pool, cfg, device_id, None, MONDAY)
    assert (sent.tip_id, sent.language, sent.due_at) == ("one", "ja", MONDAY)
    assert await tips.send_weekly(pool, cfg, MONDAY) == 1
    assert [r["alert_id"] for r in await tip_rows(pool)] == ["tip-one", "tip-two"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"tips": False}, "the device turned tips off"),
])
async def test_staff_send_refuses_devices_that_turned_tips_off(
        pool: asyncpg.Pool, change: dict[str, object], reason: str) -> None:
    """A device with tips off gets no staff tip either (409 reason)."""
    from alertd import errors

    device_id = await register(pool, "a", **change)
    with pytest.raises(errors.Conflict, match=reason):
        await tips.send_one(pool, CFG, device_id, "level-4", MONDAY)
    assert await tip_rows(pool) == []
