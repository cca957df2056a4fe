"""Households' plans on a real PostgreSQL: orders and shelter openings speak to the sheet."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from alertd import (
    devices,
    households,
    openings,
    orders,
    pipeline,
    plans,
    points,
    render,
    settings,
    shelters,
)
from alertd.delivery import push
from alertd.orders import OrderSpec
from feeds.shelters import ShelterRow
from sheets import store, validate

CFG = settings.load(environ={})
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
NORTH = {"type": "Polygon", "coordinates": [[
    [140.40, 37.85], [140.55, 37.85], [140.55, 37.95], [140.40, 37.95], [140.40, 37.85]]]}
HOME = {"kind": "home", "lat": 37.75, "lon": 140.47, "label": "自宅"}
FAR = (37.90, 140.47)  # inside NORTH, outside SQUARE


def spec(live: points.Points, area: Any = SQUARE, level: int = 4,
         instruction: str | None = None) -> OrderSpec:
    """An order spec for the area."""
    body: dict[str, Any] = {"level": level, "hazard": "flood", "area": area,
                            "headline": {"ja": "避難"}}
    if instruction is not None:
        body["instruction"] = {"ja": instruction}
    return orders.parse_spec(body, live.table, CFG.orders, datetime.now(UTC))


async def shelter_list(pool: asyncpg.Pool) -> None:
    """Three flood shelters near the home: one not open yet, one open, one far and open."""
    def row(sid: str, name: str, lat: float, lon: float) -> ShelterRow:
        return ShelterRow(sid, name, "", lat, lon, frozenset({"flood"}), 100, "072010",
                          "evacuation_site", "test")
    await shelters.upsert(pool, [row("S-MINE", "第一小学校", 37.752, 140.472),
                                 row("S-OPEN", "中央体育館", 37.755, 140.475),
                                 row("S-NORTH", "北公民館", 37.91, 140.47)])
    async with pool.acquire() as conn:
        await shelters.set_status(conn, "S-OPEN", "open", "low", None, "staff:test", None)


async def device(pool: asyncpg.Pool, live: points.Points, token: str,
                 at: tuple[float, float] | None, locale: str = "ja") -> uuid.UUID:
    """A registered device, located where given (and visible to the index)."""
    device_id, _ = await devices.register(pool, "ios", token, locale)
    if at is not None:
        dev = await devices.get(pool, device_id)
        assert dev is not None
        await devices.set_location(pool, dev, at[0], at[1], None)
        await points.catch_up(live)
    return device_id


async def put_sheet(pool: asyncpg.Pool, device_id: uuid.UUID, **fields: Any) -> None:
    """Save a sheet with the home in SQUARE, naming S-MINE first."""
    doc = {"name": "わが家", "places": [HOME],
           "destinations": [{"kind": "shelter", "shelter_id": "S-MINE"}], **fields}
    async with pool.acquire() as conn:
        await store.put(conn, device_id, uuid.uuid4(), validate.parse(doc), None)


async def bodies(pool: asyncpg.Pool, kind: str) -> dict[str, str]:
    """Push token -> body of the deliveries of this kind that were not cancelled."""
    rows = await pool.fetch(
        "SELECT v.push_token, d.body FROM deliveries d JOIN devices v ON v.id = d.device_id"
        " WHERE d.kind = $1 AND d.state <> 'cancelled'", kind)
    return {r[0]: r[1] for r in rows}


async def test_an_order_over_the_home_speaks_to_the_plan(pool: asyncpg.Pool,
                                                         live: points.Points) -> None:
    """An order over a sheet's home tells its device that the home is in the area, to leave
    now, that its shelter is not open yet and which open one is nearest; a device without a
    sheet gets its language's text."""
    await shelter_list(pool)
    planned = await device(pool, live, "planned", (37.751, 140.471))
    await put_sheet(pool, planned, triggers={"flood": 4})
    await device(pool, live, "plain", (37.751, 140.471))
    async with pool.acquire() as conn:
        await pipeline.accept(conn, live, spec(live))
    got = await bodies(pool, "order")
    assert "自宅が避難指示の対象区域です。" in got["planned"]
    assert "今すぐ避難してください" in got["planned"]
    assert "あなたの避難先「第一小学校」はまだ開設されていません。" in got["planned"]
    assert "「中央体育館」（" in got["planned"]
    assert got["plain"] == render.order_text("order", "ja", 4, "flood", {"ja": "避難"}, {}).body


async def test_a_raised_order_updates_prepare_to_leave(pool: asyncpg.Pool,
                                                       live: points.Points) -> None:
    """At level 3 a household planning to leave at 4 is told to prepare; the raise to 4
    tells it to leave now, with the shelter's state as it is then."""
    await shelter_list(pool)
    planned = await device(pool, live, "planned", (37.751, 140.471))
    await put_sheet(pool, planned, triggers={"flood": 4})
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec(live, level=3))
        await conn.execute("UPDATE deliveries SET state = 'sent'")
        await shelters.set_status(conn, "S-MINE", "open", "medium", None, "staff:test", None)
        order = await pipeline.load(conn, accepted.order_id, live.table, CFG.orders)
        await pipeline.amend(conn, live, order, spec(live, level=4))
    first = (await bodies(pool, "order"))["planned"]
    assert "今のうちに避難の準備をしてください" in first
    update = (await bodies(pool, "order_update"))["planned"]
    assert "今すぐ避難してください" in update
    assert "あなたの避難先「第一小学校」は開設済みです（混雑：やや混雑）。" in update
    assert "中央体育館" not in update


async def test_the_inbox_keeps_the_whole_text_the_push_fits(pool: asyncpg.Pool,
                                                            live: points.Points) -> None:
    """With the longest instruction staff may write, the delivery row keeps the whole text
    (the plan included) and the push built from it still fits 4 KB."""
    await shelter_list(pool)
    planned = await device(pool, live, "planned", (37.751, 140.471))
    await put_sheet(pool, planned, triggers={"flood": 3},
                    members=[{"age": "75+", "needs_support": True}])
    long = ("𠮷\"避👨\u200d👩\u200d👧" * 400)[:orders.MAX_INSTRUCTION]
    async with pool.acquire() as conn:
        await pipeline.accept(conn, live, spec(live, instruction=long))
    row = await pool.fetchrow("SELECT * FROM deliveries")
    assert row["body"].endswith(long) and "第一小学校" in row["body"]
    msg = push.PushMessage(
        delivery_id=row["id"], apns_id=str(row["apns_id"]), platform="ios", token="t" * 64,
        kind=row["kind"], alert_id=str(row["order_id"]), level=row["level"],
        title=row["title"], body=row["body"], collapse_id=str(row["order_id"]),
        thread_id=push.thread_id_for(str(row["order_id"])), expires_at=row["expires_at"])
    payload = push.apns_payload(msg)
    assert len(push.encode_apns(payload)) <= push.APNS_MAX_PAYLOAD_BYTES
    assert "第一小学校" in payload["aps"]["alert"]["body"]


async def test_the_one_call_for_warnings(pool: asyncpg.Pool, live: points.Points) -> None:
    """households.plans_for gives a warned municipality's households their plans (by device,
    those without sheets left out), as the JMA heads-up uses it."""
    await shelter_list(pool)
    planned = await device(pool, live, "planned", None)
    await put_sheet(pool, planned, triggers={"flood": 3})
    plain = await device(pool, live, "plain", None)
    city = live.table.get("072010")
    async with pool.acquire() as conn:
        found = await households.plans_for(conn, [planned, plain],
                                           plans.Alert(city, 3, "flood"))
    assert found == {planned: render.Plan(
        "home", "自宅", 3, render.Destination("shelter", "not_open", "第一小学校"),
        found[planned].nearest)}
    assert found[planned].nearest is not None
    assert found[planned].nearest.name == "中央体育館"


async def _open(pool: asyncpg.Pool, live: points.Points, shelter_id: str) -> None:
    async with pool.acquire() as conn:
        await openings.apply_status(conn, live, CFG, shelter_id, "open", "low", None,
                                    "staff:test")


async def test_an_opening_reaches_covered_sheet_holders_anywhere(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """Opening a shelter tells, once per opening, the household whose sheet names it and
    whose home an order covers, though its phone is far away; a holder no order covers is
    not told."""
    await shelter_list(pool)
    covered = await device(pool, live, "covered", (37.40, 140.38))  # the phone is elsewhere
    await put_sheet(pool, covered, triggers={"flood": 4})
    uncovered = await device(pool, live, "uncovered", (37.40, 140.38))
    await put_sheet(pool, uncovered, places=[{**HOME, "lat": 37.60, "lon": 140.30}])
    async with pool.acquire() as conn:
        await pipeline.accept(conn, live, spec(live))
    await _open(pool, live, "S-MINE")
    got = await bodies(pool, "shelter_opened")
    assert list(got) == ["covered"]
    assert got["covered"].startswith("第一小学校が開設されました。")
    assert "自宅が避難指示の対象区域です。" in got["covered"]
    assert "今すぐ避難してください" in got["covered"]
    assert "あなたの避難先" not in got["covered"]  # the push itself says it opened
    await _open(pool, live, "S-MINE")  # open again, without closing: not a new opening
    assert len(await bodies(pool, "shelter_opened")) == 1


async def test_an_opening_reaches_a_holder_whose_phone_an_order_covers(
        pool: asyncpg.Pool, live: points.Points) -> None:
    """A holder whose home no order covers but whose phone is in an order's area, far from
    the shelter, is told; without any order nobody is."""
    await shelter_list(pool)
    holder = await device(pool, live, "holder", FAR)
    await put_sheet(pool, holder, places=[{**HOME, "lat": 37.60, "lon": 140.30}])
    await _open(pool, live, "S-MINE")
    assert await bodies(pool, "shelter_opened") == {}
    async with pool.acquire() as conn:
        await shelters.set_status(conn, "S-MINE", "closed", None, None, "staff:test", None)
        await pipeline.accept(conn, live, spec(live, area=NORTH))
    await _open(pool, live, "S-MINE")
    assert list(await bodies(pool, "shelter_opened")) == ["holder"]
