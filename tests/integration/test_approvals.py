"""Four-eyes on a real PostgreSQL, in-process: orders at a held level, raises to it and orders
over the device threshold wait for a second operator; nothing is queued until approved."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import devices, points, staff
from alertd.api import routes
from alertd.context import Context
from tests import capgen, described

HOME = (37.7608, 140.4747)  # (lat, lon) in 福島市 (072010)
ORDER = {"level": 5, "hazard": "flood", "area": {"area_codes": ["072010"]},
         "headline": {"ja": "緊急安全確保", "en": "Emergency: secure your safety"}}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _locate(c: Context, n: int, where: tuple[float, float] = HOME) -> None:
    """Register n devices located at `where`."""
    for i in range(n):
        device_id, _ = await devices.register(c.pool, "ios", f"tok-{where}-{i}", "ja")
        dev = await devices.get(c.pool, device_id)
        assert dev is not None
        await devices.set_location(c.pool, dev, *where, None)
    await points.catch_up(c.points)


async def _call(api: TestClient, method: str, path: str, token: str,
                body: Any = None, **headers: str) -> tuple[int, Any]:
    r = await api.request(method, path, json=body, headers={**_auth(token), **headers})
    return r.status, await r.json()


async def _queued(c: Context) -> int:
    count: int = await c.pool.fetchval("SELECT count(*) FROM deliveries")
    return count


@pytest.fixture
async def tokens(context: Context) -> dict[str, str]:
    """Two operators, a viewer and an admin."""
    return {"op1": await staff.create(context.pool, "operator", "当番A"),
            "op2": await staff.create(context.pool, "operator", "当番B"),
            "viewer": await staff.create(context.pool, "viewer"),
            "admin": await staff.create(context.pool, "admin")}


async def test_level_5_waits_for_another_operator(api: TestClient, context: Context,
                                                 tokens: dict[str, str]) -> None:
    """A level-5 order answers 202 pending with its preview numbers and queues nothing; the
    same operator and a viewer cannot approve it (403); another operator's approval issues it
    under the id of the 202 and answers as the issue would have; approving again is a 409."""
    await _locate(context, 12)
    status, held = await _call(api, "POST", "/v1/staff/orders", tokens["op1"], ORDER)
    assert status == 202, held
    order_id = held["id"]
    assert held["state"] == "pending_approval"
    assert (held["devices"], held["by_area"]) == (12, {"072010": 12})
    assert held["reasons"] == ["level 5 needs a second operator's approval "
                               "(orders.approval_levels)"]
    assert await _queued(context) == 0
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0

    status, seen = await _call(api, "GET", f"/v1/staff/orders/{order_id}", tokens["viewer"])
    assert (status, seen["state"], seen["requested_label"]) == (200, "pending_approval", "当番A")
    status, listed = await _call(api, "GET", "/v1/staff/orders?state=pending_approval",
                                 tokens["viewer"])
    assert [(o["id"], o["level"], o["devices"], o["headline"]["ja"]) for o in
            listed["orders"]] == [(order_id, 5, 12, "緊急安全確保")]

    status, refused = await _call(api, "POST", f"/v1/staff/orders/{order_id}/approve",
                                  tokens["op1"])
    assert status == 403 and "another operator" in refused["error"]
    status, _ = await _call(api, "POST", f"/v1/staff/orders/{order_id}/approve",
                            tokens["viewer"])
    assert status == 403
    assert await _queued(context) == 0

    status, issued = await _call(api, "POST", f"/v1/staff/orders/{order_id}/approve",
                                 tokens["op2"])
    assert (status, issued) == (200, {"id": order_id, "version": 1, "devices": 12})
    assert await _queued(context) == 12
    status, again = await _call(api, "POST", f"/v1/staff/orders/{order_id}/approve",
                                tokens["op2"])
    assert status == 409 and "approved already" in again["error"]
    status, seen = await _call(api, "GET", f"/v1/staff/orders/{order_id}", tokens["viewer"])
    assert (seen["state"], seen["level"], seen["matched"]) == ("active", 5, 12)
    status, listed = await _call(api, "GET", "/v1/staff/orders?state=pending_approval",
                                 tokens["viewer"])
    assert listed == {"orders": []}


async def test_every_step_is_on_the_audit_trail(api: TestClient, context: Context,
                                               tokens: dict[str, str]) -> None:
    """The held issue (202), the refused self-approval (403) and the approval (200, with the
    pending state before and the issued order after) are each one entry."""
    _, held = await _call(api, "POST", "/v1/staff/orders", tokens["op1"], ORDER)
    await _call(api, "POST", f"/v1/staff/orders/{held['id']}/approve", tokens["op1"])
    await _call(api, "POST", f"/v1/staff/orders/{held['id']}/approve", tokens["op2"])
    r = await api.get("/v1/staff/audit", params={"target": held["id"]},
                      headers=_auth(tokens["admin"]))
    await described.answer_conforms(r, "/v1/staff/audit")
    approve, refused, issue = (await r.json())["entries"]
    assert (issue["action"], issue["status"], issue["staff_label"]) == (
        "order.issue", 202, "当番A")
    assert issue["after"]["state"] == "pending_approval" and issue["after"]["level"] == 5
    assert (refused["action"], refused["status"], refused["staff_label"]) == (
        "order.approve", 403, "当番A")
    assert (approve["action"], approve["status"], approve["staff_label"]) == (
        "order.approve", 200, "当番B")
    assert approve["before"]["state"] == "pending_approval"
    assert approve["after"]["state"] == "active" and approve["after"]["version"] == 1


async def test_rejected_order_is_never_sent(api: TestClient, context: Context,
                                           tokens: dict[str, str]) -> None:
    """A rejected request answers {id, state: rejected}, queues nothing, cannot be approved
    afterwards (409), and reads as rejected; its requester may withdraw their own."""
    await _locate(context, 2)
    _, held = await _call(api, "POST", "/v1/staff/orders", tokens["op1"], ORDER)
    status, body = await _call(api, "POST", f"/v1/staff/orders/{held['id']}/reject",
                               tokens["op2"], {"reason": "wrong municipality"})
    assert (status, body) == (200, {"id": held["id"], "state": "rejected"})
    status, _ = await _call(api, "POST", f"/v1/staff/orders/{held['id']}/approve",
                            tokens["op2"])
    assert status == 409
    _, seen = await _call(api, "GET", f"/v1/staff/orders/{held['id']}", tokens["viewer"])
    assert (seen["state"], seen["decision_reason"]) == ("rejected", "wrong municipality")
    _, mine = await _call(api, "POST", "/v1/staff/orders", tokens["op1"], ORDER)
    r = await api.post(f"/v1/staff/orders/{mine['id']}/reject", headers=_auth(tokens["op1"]))
    assert r.status == 200
    assert await _queued(context) == 0
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_raising_to_5_is_held_lower_changes_are_not(api: TestClient, context: Context,
                                                         tokens: dict[str, str]) -> None:
    """PATCH 3 → 4 applies at once; 4 → 5 answers 202 and the order stays at 4 (a typo fix
    still applies meanwhile); a second held change is a 409; the approval applies the raise
    on the current version and answers as the PATCH would have."""
    await _locate(context, 3)
    _, first = await _call(api, "POST", "/v1/staff/orders", tokens["op1"],
                           {**ORDER, "level": 3})
    order_id = first["id"]
    status, v2 = await _call(api, "PATCH", f"/v1/staff/orders/{order_id}", tokens["op1"],
                             {"level": 4})
    assert (status, v2["version"]) == (200, 2)
    status, held = await _call(api, "PATCH", f"/v1/staff/orders/{order_id}", tokens["op1"],
                               {"level": 5})
    assert (status, held["id"], held["state"], held["version"], held["devices"]) == (
        202, order_id, "pending_approval", 2, "fewer than 10")  # as coarse as a preview
    status, other = await _call(api, "PATCH", f"/v1/staff/orders/{order_id}", tokens["op2"],
                                {"level": 5, "hazard": "landslide"})
    assert status == 409 and "already waits for approval" in other["error"]
    status, fixed = await _call(api, "PATCH", f"/v1/staff/orders/{order_id}", tokens["op1"],
                                {"headline": {"ja": "避難指示（訂正）"}})
    assert (status, fixed["version"]) == (200, 3)
    _, seen = await _call(api, "GET", f"/v1/staff/orders/{order_id}", tokens["viewer"])
    assert (seen["level"], seen["pending_change"]["level"]) == (4, 5)
    # The phones got the order (no dispatcher runs here): a raise reaches them as an update.
    await context.pool.execute("UPDATE deliveries SET state = 'sent'")
    before = await _queued(context)
    status, raised = await _call(api, "POST", f"/v1/staff/orders/{order_id}/approve",
                                 tokens["op2"])
    assert status == 200, raised
    assert (raised["id"], raised["version"], raised["devices"]) == (order_id, 4, 3)
    assert raised["notified"]["order_update"] == 3
    _, seen = await _call(api, "GET", f"/v1/staff/orders/{order_id}", tokens["viewer"])
    assert (seen["level"], seen["headline"]["ja"]) == (5, "避難指示（訂正）")
    assert "pending_change" not in seen
    assert await _queued(context) > before


async def test_approval_validates_again(api: TestClient, context: Context,
                                       tokens: dict[str, str]) -> None:
    """A held order whose expiry has passed by the time of approval is refused (422, the
    reason), nothing is queued and it still waits (to be rejected)."""
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, held = await _call(api, "POST", "/v1/staff/orders", tokens["op1"],
                          {**ORDER, "expires_at": soon})
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    # The hour went by while it waited.
    await context.pool.execute(
        "UPDATE order_approvals SET body = jsonb_set(body, '{expires_at}', to_jsonb($1::text))",
        past)
    status, refused = await _call(api, "POST", f"/v1/staff/orders/{held['id']}/approve",
                                  tokens["op2"])
    assert (status, refused["error"]) == (422, "expires_at must be in the future")
    assert await _queued(context) == 0
    _, seen = await _call(api, "GET", f"/v1/staff/orders/{held['id']}", tokens["viewer"])
    assert seen["state"] == "pending_approval"


async def test_idempotency_key_replays_the_202(api: TestClient, context: Context,
                                              tokens: dict[str, str]) -> None:
    """A held order retried with its Idempotency-Key gets the same 202 and holds nothing
    more."""
    first = await _call(api, "POST", "/v1/staff/orders", tokens["op1"], ORDER,
                        **{"Idempotency-Key": "k-5"})
    again = await _call(api, "POST", "/v1/staff/orders", tokens["op1"], ORDER,
                        **{"Idempotency-Key": "k-5"})
    assert first == again and first[0] == 202
    assert await context.pool.fetchval("SELECT count(*) FROM order_approvals") == 1


@pytest.fixture
async def over_two(context: Context) -> AsyncIterator[TestClient]:
    """The app with orders.approval_over_devices = 2, no held level, exact preview counts."""
    cfg = context.cfg
    held = dataclasses.replace(cfg, orders=dataclasses.replace(
        cfg.orders, approval_levels=(), approval_over_devices=2, preview_min_count=1))
    client = TestClient(TestServer(routes.build_app(dataclasses.replace(context, cfg=held))))
    await client.start_server()
    yield client
    await client.close()


async def test_orders_over_the_device_threshold_are_held(
        over_two: TestClient, context: Context, tokens: dict[str, str]) -> None:
    """With approval_over_devices = 2 (and no held level) an order reaching 2 devices is
    issued, one reaching 3 is held naming the number; widening the first to 3 devices is held
    too, while a change that reaches no more than it did goes at once."""
    await _locate(context, 2)
    await _locate(context, 1, (HOME[0] + 0.01, HOME[1]))  # about 1.1 km north

    def circle(radius_m: float) -> dict[str, Any]:
        return {**ORDER, "area": {"circle": {"lat": HOME[0], "lon": HOME[1],
                                             "radius_m": radius_m}}}
    status, issued = await _call(over_two, "POST", "/v1/staff/orders", tokens["op1"],
                                 circle(100))
    assert (status, issued["devices"]) == (201, 2)
    status, held = await _call(over_two, "POST", "/v1/staff/orders", tokens["op1"],
                               circle(3000))
    assert (status, held["devices"], held["reasons"]) == (
        202, 3, ["it reaches 3 devices, more than 2 (orders.approval_over_devices)"])
    status, widened = await _call(over_two, "PATCH", f"/v1/staff/orders/{issued['id']}",
                                  tokens["op1"], {"area": circle(3000)["area"]})
    assert (status, widened["devices"]) == (202, 3)
    status, _ = await _call(over_two, "PATCH", f"/v1/staff/orders/{held['id']}",
                            tokens["op1"], {"headline": {"ja": "訂正"}})
    assert status == 404  # a held issue is not an order yet: nothing to change


async def test_cap_level_5_is_never_held(api: TestClient, context: Context,
                                        tokens: dict[str, str]) -> None:
    """A posted level-5 CAP message makes its order at once: an authority issued it."""
    headers = {**_auth(tokens["op1"]), "Content-Type": "application/cap+xml"}
    r = await api.post("/v1/staff/cap", data=capgen.message("cap-5", level=5), headers=headers)
    assert r.status == 202
    body = await r.json()
    assert body["outcome"] == "order"
    assert await context.pool.fetchval(
        "SELECT v.level FROM orders o JOIN order_versions v ON v.order_id = o.id") == 5
    assert await context.pool.fetchval("SELECT count(*) FROM order_approvals") == 0


async def test_lifting_rejects_the_change_waiting(api: TestClient, context: Context,
                                                 tokens: dict[str, str]) -> None:
    """Lifting an order whose raise waits for approval rejects the raise ("the order was
    lifted"): it leaves the waiting list and cannot be approved (409)."""
    _, first = await _call(api, "POST", "/v1/staff/orders", tokens["op1"],
                           {**ORDER, "level": 4})
    status, _ = await _call(api, "PATCH", f"/v1/staff/orders/{first['id']}", tokens["op1"],
                            {"level": 5})
    assert status == 202
    status, _ = await _call(api, "POST", f"/v1/staff/orders/{first['id']}/lift", tokens["op2"])
    assert status == 200
    _, listed = await _call(api, "GET", "/v1/staff/orders?state=pending_approval",
                            tokens["viewer"])
    assert listed == {"orders": []}
    status, refused = await _call(api, "POST", f"/v1/staff/orders/{first['id']}/approve",
                                  tokens["op2"])
    assert status == 409 and "rejected already" in refused["error"]
    assert await context.pool.fetchval("SELECT reason FROM order_approvals") == (
        "the order was lifted")
