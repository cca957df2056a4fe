"""JMA heads-ups on a real PostgreSQL: one `warning` push per episode and device, from the real
sample reports moved to Fukushima (prefecture 07)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from alertd import devices, orders, pipeline, points
from alertd.context import Context
from alertd.ingest import headsup
from feeds import jma
from sheets import store, validate

JMA = Path(__file__).resolve().parent.parent / "fixtures" / "jma"
HEAVY_RAIN = (JMA / "10_jmaxml_VPWW55_R06_heavyrain_level_warning.xml").read_bytes()
FUKUSHIMA_CITY = (37.75, 140.45)  # 福島市 (0720100): sample 10 moved to 07 warns it at level 3
AIZU = (37.49, 139.93)  # 会津若松市 (0720200): warned too
NOT_WARNED = (37.40, 140.38)  # 072036: no warning of sample 10 lands there
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}


def report(when: str = "2026-06-01T11:00:00+09:00", *, lift_all: bool = False,
           status: str = "通常", info_type: str = "発表", level: int = 3) -> jma.JmaReport:
    """Sample 10 (レベル３大雨警報, 大雨浸水 警戒レベル３相当) moved to prefecture 07, re-timed,
    optionally all lifted, a drill or a retraction."""
    text = HEAVY_RAIN.replace(b"<Code>32", b"<Code>07").decode()
    text = re.sub(r"<ReportDateTime>[^<]+</ReportDateTime>",
                  f"<ReportDateTime>{when}</ReportDateTime>", text)
    text = text.replace("<Status>通常</Status>", f"<Status>{status}</Status>")
    text = text.replace("<InfoType>発表</InfoType>", f"<InfoType>{info_type}</InfoType>")
    text = text.replace("警戒レベル３相当", f"警戒レベル{level}相当")
    if lift_all:
        for kind_status in ("継続", "発表"):
            text = text.replace(f"<Status>{kind_status}</Status>", "<Status>解除</Status>")
    return jma.parse(text.encode())


def landslide_alert(when: str = "2026-06-01T11:30:00+09:00") -> jma.JmaReport:
    """A 土砂災害警戒情報 (警戒レベル４相当 by JMA's definition, not written) for 福島市."""
    return jma.parse(f"""<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control><Title>土砂災害警戒情報</Title>
<DateTime>2026-06-01T02:30:00Z</DateTime><Status>通常</Status>
<EditorialOffice>福島地方気象台</EditorialOffice><PublishingOffice>福島県 福島地方気象台
</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">
<Title>福島県土砂災害警戒情報</Title><ReportDateTime>{when}</ReportDateTime>
<TargetDateTime>{when}</TargetDateTime><EventID>福島県土砂災害警戒情報</EventID>
<InfoType>発表</InfoType><Serial>1</Serial><InfoKind>土砂災害警戒情報</InfoKind>
<Headline><Text>土砂災害の危険度が高まっています。</Text></Headline></Head>
<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/meteorology1/">
<Warning type="土砂災害警戒情報"><Item><Kind><Name>土砂災害警戒情報</Name><Code>3</Code>
<Status>発表</Status></Kind><Area><Name>福島市</Name><Code>0720100</Code></Area></Item>
</Warning></Body></Report>""".encode())


async def household(context: Context, token: str, *places: tuple[str, tuple[float, float]],
                    triggers: dict[str, int], drill: bool = False,
                    members: list[dict[str, Any]] | None = None) -> uuid.UUID:
    """A device with one sheet: these places, these triggers, the shelter S1 first."""
    device_id, _ = await devices.register(context.pool, "ios", token, "ja")
    if drill:
        await context.pool.execute("UPDATE devices SET drill = true WHERE id = $1", device_id)
    sheet = validate.parse({
        "name": "家", "triggers": triggers,
        "places": [{"kind": kind, "lat": at[0], "lon": at[1]} for kind, at in places],
        "destinations": [{"kind": "shelter", "shelter_id": "S1"}],
        **({"members": members} if members else {})})
    async with context.pool.acquire() as conn:
        await store.put(conn, device_id, uuid.uuid4(), sheet, None)
    return device_id


async def apply(context: Context, r: jma.JmaReport) -> int:
    """Apply a report as the JMA poller does."""
    async with context.pool.acquire() as conn:
        return await headsup.apply(conn, r, context.table, context.cfg)


async def warnings(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """The heads-up pushes queued, oldest first, with their device's token."""
    return list(await pool.fetch(
        "SELECT v.push_token, d.* FROM deliveries d JOIN devices v ON v.id = d.device_id"
        " WHERE d.kind = 'warning' ORDER BY d.id"))


async def shelter(pool: asyncpg.Pool, status: str = "open") -> None:
    """Shelter S1 in 福島市, designated for floods and inland flooding."""
    await pool.execute(
        "INSERT INTO shelters (id, name, lat, lon, hazards, kind, source_format, status,"
        " crowding) VALUES ('S1', '福島第一小学校', 37.76, 140.46, '{flood,inland_flood}',"
        " 'designated', 'test', $1, 'low')", status)


async def test_one_push_per_episode_across_reports(context: Context) -> None:
    """The first report warning the household's municipality queues one heads-up; the same
    report again (a retry) and a later one continuing the warning queue nothing more."""
    await shelter(context.pool)
    await household(context, "home-fukushima", ("home", FUKUSHIMA_CITY),
                    triggers={"inland_flood": 3})
    assert await apply(context, report()) == 1
    assert await apply(context, report()) == 0
    assert await apply(context, report("2026-06-01T12:00:00+09:00")) == 0
    (push,) = await warnings(context.pool)
    assert (push["push_token"], push["level"], push["state"]) == ("home-fukushima", 3, "pending")
    assert push["ref"].startswith("jma:") and push["alert_id"].startswith("jma-")
    assert push["title"] == "【気象警報・警戒レベル3相当】内水氾濫"
    assert "福島市にレベル３大雨警報を発表しました" in push["body"]
    assert "警戒レベル3で避難します" in push["body"]
    assert "福島第一小学校" in push["body"]


async def test_lifting_ends_the_episode_and_a_reissue_is_new(context: Context) -> None:
    """A report lifting the warning ends the episode silently; issued again later, it is a
    new episode and the household gets a second heads-up."""
    await household(context, "t", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 3})
    assert await apply(context, report("2026-06-01T11:00:00+09:00")) == 1
    assert await apply(context, report("2026-06-01T12:00:00+09:00", lift_all=True)) == 0
    assert await context.pool.fetchval(
        "SELECT count(*) FROM warning_episodes WHERE ended_at IS NULL") == 0
    assert await apply(context, report("2026-06-01T13:00:00+09:00")) == 1
    first, second = await warnings(context.pool)
    assert first["ref"] != second["ref"]


async def test_a_level_rise_tells_those_whose_trigger_it_reaches(context: Context) -> None:
    """The same warning rising from 3相当 to 4相当 is the same episode: the household told at
    3 is not told again, the one leaving at 4 is told now."""
    await household(context, "at-3", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 3})
    await household(context, "at-4", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 4})
    assert await apply(context, report()) == 1
    assert await apply(context, report("2026-06-01T12:00:00+09:00", level=4)) == 1
    assert [(p["push_token"], p["level"]) for p in await warnings(context.pool)] == [
        ("at-3", 3), ("at-4", 4)]
    assert await apply(context, report("2026-06-01T13:00:00+09:00", level=4)) == 0


async def test_retraction_ends_the_episode(context: Context) -> None:
    """A 取消 of the report in force ends its episodes; the same warning issued again after
    that is a new episode."""
    await household(context, "t", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 3})
    assert await apply(context, report()) == 1
    assert await apply(context, report(info_type="取消")) == 0
    assert await context.pool.fetchval(
        "SELECT count(*) FROM warning_episodes WHERE ended_at IS NULL") == 0
    assert await apply(context, report("2026-06-01T11:10:00+09:00")) == 1


async def test_only_households_whose_plan_fits(context: Context) -> None:
    """Trigger 4 with a 3相当 warning, a trigger for another hazard, or no place in a warned
    municipality: no heads-up; a trigger at or below the level: one."""
    await household(context, "trigger-4", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 4})
    await household(context, "landslide-3", ("home", FUKUSHIMA_CITY), triggers={"landslide": 3})
    await household(context, "elsewhere", ("home", NOT_WARNED), triggers={"inland_flood": 3})
    await household(context, "work-in-aizu", ("home", NOT_WARNED), ("work", AIZU),
                    triggers={"inland_flood": 3})
    assert await apply(context, report()) == 1
    assert [p["push_token"] for p in await warnings(context.pool)] == ["work-in-aizu"]
    (push,) = await warnings(context.pool)
    assert "会津若松市" in push["body"] and "勤務先" in push["body"]


async def test_a_member_who_needs_time_brings_the_trigger_to_3(context: Context) -> None:
    """A household planning to leave at 4 with a member who needs support is told at 3相当
    (高齢者等避難 applies to it), and its push says its plan is to leave at 3."""
    await household(context, "needs-time", ("home", FUKUSHIMA_CITY),
                    triggers={"inland_flood": 4}, members=[{"needs_support": True}])
    await household(context, "no-one-slow", ("home", FUKUSHIMA_CITY),
                    triggers={"inland_flood": 4}, members=[{"label": "父"}])
    assert await apply(context, report()) == 1
    (push,) = await warnings(context.pool)
    assert push["push_token"] == "needs-time" and "警戒レベル3で避難します" in push["body"]


async def test_one_push_for_several_warned_places(context: Context) -> None:
    """A household with places in two warned municipalities gets one push that speaks of its
    home, and is told of both episodes (no second push at the next report)."""
    device = await household(context, "two-places", ("home", FUKUSHIMA_CITY), ("work", AIZU),
                             triggers={"inland_flood": 3})
    assert await apply(context, report()) == 1
    assert await context.pool.fetchval(
        "SELECT count(*) FROM warning_notices WHERE device_id = $1", device) == 2
    (push,) = await warnings(context.pool)
    assert "福島市" in push["body"] and "自宅" in push["body"]
    assert await apply(context, report("2026-06-01T12:00:00+09:00")) == 0


async def test_nothing_while_an_order_covers_the_household(context: Context) -> None:
    """An active order over a sheet place, or one that reached the device by its location,
    means no heads-up; once it is lifted, the next report tells the household."""
    await household(context, "sheet-covered", ("home", FUKUSHIMA_CITY),
                    triggers={"inland_flood": 3})
    located = await household(context, "phone-covered", ("home", AIZU),
                              triggers={"inland_flood": 3})
    dev = await devices.get(context.pool, located)
    assert dev is not None
    await devices.set_location(context.pool, dev, 37.72, 140.50, None)
    await points.catch_up(context.points)
    spec = orders.parse_spec({"level": 3, "hazard": "flood", "area": SQUARE,
                              "headline": {"ja": "避難"}}, context.table, context.cfg.orders,
                             datetime.now(UTC))
    async with context.pool.acquire() as conn:
        accepted = await pipeline.accept(conn, context.points, spec)
    assert accepted.devices == 2  # the located phone, and the sheet's home in the square
    assert await apply(context, report()) == 0
    assert await warnings(context.pool) == []
    async with context.pool.acquire() as conn:
        order = await pipeline.load(conn, accepted.order_id, context.table, context.cfg.orders)
        await pipeline.lift(conn, order)
    assert await apply(context, report("2026-06-01T12:00:00+09:00")) == 2
    assert sorted(p["push_token"] for p in await warnings(context.pool)) == [
        "phone-covered", "sheet-covered"]


async def test_level_4_landslide_alert(context: Context) -> None:
    """A 土砂災害警戒情報 (4相当 by definition) tells a household leaving at 4 for landslides,
    while the same household is not told of the 3相当 浸水 warning."""
    await household(context, "slope", ("home", FUKUSHIMA_CITY),
                    triggers={"landslide": 4, "inland_flood": 4})
    assert await apply(context, report()) == 0
    assert await apply(context, landslide_alert()) == 1
    (push,) = await warnings(context.pool)
    assert push["level"] == 4 and "土砂災害警戒情報" in push["body"]


async def test_drill_reaches_only_drill_devices_and_keeps_apart(context: Context) -> None:
    """A 訓練 report tells only devices enrolled in drills, sets no warning state, and its
    episodes do not stand for the real ones."""
    await household(context, "public", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 3})
    await household(context, "drill", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 3},
                    drill=True)
    assert await apply(context, report(status="訓練")) == 1
    assert [p["push_token"] for p in await warnings(context.pool)] == ["drill"]
    assert await context.pool.fetchval("SELECT count(*) FROM area_warnings") == 0
    assert await apply(context, report(status="訓練")) == 0
    assert await apply(context, report()) == 2
    assert sorted(p["push_token"] for p in await warnings(context.pool)) == [
        "drill", "drill", "public"]


async def test_test_messages_do_nothing(context: Context) -> None:
    """A 試験 report changes no state and tells no one."""
    await household(context, "t", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 3})
    assert await apply(context, report(status="試験")) == 0
    assert await context.pool.fetchval("SELECT count(*) FROM warning_episodes") == 0


async def test_state_and_pushes_commit_together(context: Context) -> None:
    """A failure while queueing the heads-ups leaves neither the state nor episodes behind,
    so the retried report tells the household once."""
    await household(context, "t", ("home", FUKUSHIMA_CITY), triggers={"inland_flood": 3})
    await context.pool.execute(
        "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'crash'; END$$;"
        " CREATE TRIGGER fail BEFORE INSERT ON warning_notices EXECUTE FUNCTION fail()")
    failed: Any = None
    try:
        await apply(context, report())
    except asyncpg.RaiseError as exc:
        failed = exc
    assert failed is not None
    assert await context.pool.fetchval("SELECT count(*) FROM area_warnings") == 0
    assert await context.pool.fetchval("SELECT count(*) FROM warning_episodes") == 0
    await context.pool.execute("DROP TRIGGER fail ON warning_notices")
    assert await apply(context, report()) == 1
    assert await apply(context, report()) == 0
