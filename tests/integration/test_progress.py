"""alertd.progress through the staff API: counts for the order as a whole and per version,
the list with its counts, and what a PATCH or a lift notified."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from alertd import staff

SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
TALLER = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.90], [140.40, 37.90], [140.40, 37.70]]]}
IN_SQUARE = (37.75, 140.45)
NORTH_OF_SQUARE = (37.85, 140.45)  # inside TALLER only
NOBODY = {"order": 0, "order_update": 0, "order_lifted": 0}


class Staff:
    """An operator calling the staff API."""

    def __init__(self, api: TestClient, token: str) -> None:  # type: ignore[type-arg]
        self.api = api
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None,
                   status: int = 200) -> Any:
        """One request; asserts its status and returns the JSON answer."""
        r = await self.api.request(method, path, json=body, headers=self.headers)
        answer = await r.json()
        assert r.status == status, answer
        return answer

    async def issue(self, area: Any, level: int = 4) -> str:
        """Issue an order; its id."""
        answer = await self.call("POST", "/v1/staff/orders", {
            "level": level, "hazard": "flood", "area": area, "headline": {"ja": "避難"}},
            status=201)
        return str(answer["id"])

    async def counts(self, order_id: str) -> dict[str, Any]:
        """The order's counts: as a whole, in `deliveries`, and per version (no timestamps)."""
        body = await self.call("GET", f"/v1/staff/orders/{order_id}")
        for v in body["versions"]:
            assert v.pop("created_at")
        return {"whole": {k: body[k] for k in ("matched", "sent", "pending", "failed",
                                               "invalid_token")},
                "deliveries": body["deliveries"], "versions": body["versions"]}


async def operator(api: TestClient, pool: asyncpg.Pool) -> Staff:  # type: ignore[type-arg]
    """An operator with a fresh token."""
    return Staff(api, await staff.create(pool, "operator"))


async def device_at(api: TestClient, where: tuple[float, float],  # type: ignore[type-arg]
                    token: str = "") -> None:
    """Register a phone (push token `token`, or one made from its place) sharing its location."""
    token = token or f"t-{where[0]}-{where[1]}"
    r = await api.post("/v1/devices", json={"platform": "ios", "push_token": token,
                                            "locale": "ja"})
    secret = (await r.json())["device_secret"]
    r = await api.put("/v1/me/location", json={"lat": where[0], "lon": where[1]},
                      headers={"Authorization": f"Bearer {secret}"})
    assert r.status == 204


async def deliver(pool: asyncpg.Pool, token: str | None = None) -> None:
    """Every push queued (for one token, or all) is sent, as the dispatcher would record it."""
    await pool.execute(
        "UPDATE deliveries d SET state = 'sent', done_at = now() FROM devices v"
        " WHERE v.id = d.device_id AND d.state = 'pending'"
        " AND ($1::text IS NULL OR v.push_token = $1)", token)


def whole(matched: int, sent: int = 0, pending: int = 0, failed: int = 0,
          invalid_token: int = 0) -> dict[str, int]:
    """The contract's counts for the order as a whole."""
    return {"matched": matched, "sent": sent, "pending": pending, "failed": failed,
            "invalid_token": invalid_token}


def version(n: int, level: int, matched: int, notified: dict[str, int], sent: int = 0,
            pending: int = 0, failed: int = 0, invalid_token: int = 0,
            cancelled: int = 0) -> dict[str, Any]:
    """One entry of `versions` (without its timestamp)."""
    return {"version": n, "level": level, "matched": matched, "notified": notified,
            "sent": sent, "pending": pending, "failed": failed, "invalid_token": invalid_token,
            "cancelled": cancelled}


async def test_two_devices_three_versions_count_two_sent(
        api: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """Growing the area, then raising the level: the order as a whole has 2 matched and, once
    delivered, 2 sent (not 4); each version counts its own pushes; each PATCH says whom it
    notified."""
    op = await operator(api, pool)
    await device_at(api, IN_SQUARE)
    await device_at(api, NORTH_OF_SQUARE)
    order_id = await op.issue(SQUARE, level=3)
    await deliver(pool)
    grown = await op.call("PATCH", f"/v1/staff/orders/{order_id}", {"area": TALLER})
    assert grown == {"id": order_id, "version": 2, "devices": 2,
                     "notified": {"order": 1, "order_update": 0, "order_lifted": 0}}
    await deliver(pool)
    raised = await op.call("PATCH", f"/v1/staff/orders/{order_id}", {"level": 4})
    assert raised == {"id": order_id, "version": 3, "devices": 2,
                      "notified": {"order": 0, "order_update": 2, "order_lifted": 0}}
    assert (await op.counts(order_id))["whole"] == whole(2, pending=2)
    await deliver(pool)
    assert await op.counts(order_id) == {
        "whole": whole(2, sent=2),
        "deliveries": {**whole(2, sent=2), "cancelled": 0, "lifted": 0},
        "versions": [
            version(1, 3, 1, {"order": 1, "order_update": 0, "order_lifted": 0}, sent=1),
            version(2, 3, 2, {"order": 1, "order_update": 0, "order_lifted": 0}, sent=1),
            version(3, 4, 2, {"order": 0, "order_update": 2, "order_lifted": 0}, sent=2),
        ]}
    listed = await op.call("GET", "/v1/staff/orders")
    assert [{k: o[k] for k in ("id", *whole(0))} for o in listed["orders"]] == [
        {"id": order_id, **whole(2, sent=2)}]


async def test_lowering_the_level_or_fixing_a_typo_notifies_no_one(
        api: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """A PATCH that lowers the level or changes only the text answers that it notified nobody."""
    op = await operator(api, pool)
    await device_at(api, IN_SQUARE)
    order_id = await op.issue(SQUARE, level=4)
    await deliver(pool)
    lowered = await op.call("PATCH", f"/v1/staff/orders/{order_id}", {"level": 3})
    assert (lowered["version"], lowered["devices"], lowered["notified"]) == (2, 1, NOBODY)
    fixed = await op.call("PATCH", f"/v1/staff/orders/{order_id}", {"headline": {"ja": "避難を"}})
    assert (fixed["version"], fixed["devices"], fixed["notified"]) == (3, 1, NOBODY)
    assert await op.counts(order_id) == {
        "whole": whole(1, sent=1),
        "deliveries": {**whole(1, sent=1), "cancelled": 0, "lifted": 0},
        "versions": [
            version(1, 4, 1, {"order": 1, "order_update": 0, "order_lifted": 0}, sent=1),
            version(2, 3, 1, NOBODY),
            version(3, 3, 1, NOBODY),
        ]}


async def test_shrinking_and_lifting_say_whom_they_told(
        api: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """Shrinking the area notifies the device left outside of the lifting; the lift tells the
    one still holding the order; the order as a whole still counts both as sent."""
    op = await operator(api, pool)
    await device_at(api, IN_SQUARE)
    await device_at(api, NORTH_OF_SQUARE)
    order_id = await op.issue(TALLER)
    await deliver(pool)
    shrunk = await op.call("PATCH", f"/v1/staff/orders/{order_id}", {"area": SQUARE})
    assert shrunk["notified"] == {"order": 0, "order_update": 0, "order_lifted": 1}
    await deliver(pool)
    lifted = await op.call("POST", f"/v1/staff/orders/{order_id}/lift")
    assert (lifted["devices"], lifted["notified"]) == (
        1, {"order": 0, "order_update": 0, "order_lifted": 1})
    assert await op.counts(order_id) == {
        "whole": whole(2, sent=2),
        "deliveries": {**whole(2, sent=2), "cancelled": 0, "lifted": 2},
        "versions": [
            version(1, 4, 2, {"order": 2, "order_update": 0, "order_lifted": 0}, sent=2),
            version(2, 4, 1, {"order": 0, "order_update": 0, "order_lifted": 2}, sent=1,
                    pending=1),
        ]}


async def test_devices_are_counted_by_their_latest_push(
        api: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """A device whose push failed, one with an invalid token, and one whose push was cancelled
    by the lift before it went out are each counted once under that outcome."""
    op = await operator(api, pool)
    for name, where in [("got-it", IN_SQUARE), ("failing", (37.74, 140.44)),
                        ("gone", (37.73, 140.43)), ("late", (37.72, 140.42))]:
        await device_at(api, where, name)
    order_id = await op.issue(SQUARE)
    await deliver(pool, "got-it")
    await pool.execute("UPDATE deliveries d SET state = 'failed' FROM devices v"
                       " WHERE v.id = d.device_id AND v.push_token = 'failing'")
    await pool.execute("UPDATE deliveries d SET state = 'invalid_token' FROM devices v"
                       " WHERE v.id = d.device_id AND v.push_token = 'gone'")
    await op.call("POST", f"/v1/staff/orders/{order_id}/lift")
    assert await op.counts(order_id) == {
        "whole": whole(4, sent=1, failed=1, invalid_token=1),
        "deliveries": {**whole(4, sent=1, failed=1, invalid_token=1), "cancelled": 1,
                       "lifted": 1},
        "versions": [
            version(1, 4, 4, {"order": 4, "order_update": 0, "order_lifted": 1}, sent=1,
                    pending=1, failed=1, invalid_token=1, cancelled=1),
        ]}


async def test_list_filters_by_state(api: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """?state=active (the default), lifted, expired or all choose the orders listed; others
    are 422."""
    op = await operator(api, pool)
    gone = await op.issue(SQUARE)
    await op.call("POST", f"/v1/staff/orders/{gone}/lift")
    live = await op.issue(SQUARE)

    async def ids(query: str) -> list[str]:
        return [o["id"] for o in (await op.call("GET", f"/v1/staff/orders{query}"))["orders"]]
    assert await ids("") == [live]
    assert await ids("?state=active") == [live]
    assert await ids("?state=lifted") == [gone]
    assert await ids("?state=all") == [live, gone]
    assert await ids("?state=expired") == []
    refused = await op.call("GET", "/v1/staff/orders?state=old", status=422)
    assert refused == {"error": "state must be one of active, lifted, expired, all, "
                                "pending_approval"}
