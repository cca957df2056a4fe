"""Four-eyes end to end: the daemon (shipped defaults: level 5 held) and the sandbox as
processes. Nothing of a held order reaches a phone before another operator approves it, and
nothing of a rejected one ever does; every step is on the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import (
    Client,
    Daemon,
    Sandbox,
    daemon_env,
    free_port_base,
    received,
    staff_token,
)

pytestmark = pytest.mark.e2e

INSIDE = [(37.75, 140.45), (37.71, 140.54)]  # in 福島市, inside the square below
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}


def order(level: int, headline: str = "緊急安全確保") -> dict[str, Any]:
    """A staff order body over the square."""
    return {"level": level, "hazard": "flood", "area": SQUARE, "headline": {"ja": headline}}


async def _devices(api: Client, prefix: str) -> set[str]:
    tokens = set()
    for i, (lat, lon) in enumerate(INSIDE):
        token = f"{prefix}-{i}"
        await api.device("ios" if i % 2 else "android", token, lat, lon)
        tokens.add(token)
    return tokens


async def _trail(api: Client, admin: str, target: str) -> list[tuple[str, int, str]]:
    status, body = await api.call("GET", f"/v1/staff/audit?target={target}", admin)
    assert status == 200, body
    return [(e["action"], e["status"], e["staff_label"] or e["staff_role"])
            for e in reversed(body["entries"])]


async def test_level_5_goes_out_only_after_another_operator_approves(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A level-5 order answers 202 and queues nothing; the same operator's approval and a
    viewer's are refused (403); another operator's approval sends it to every phone inside;
    the audit trail holds each step, readable by an admin only."""
    api = Client(http, daemon.url)
    op1, op2 = staff_token(db_url, "operator"), staff_token(db_url, "operator")
    viewer, admin = staff_token(db_url, "viewer"), staff_token(db_url, "admin")
    phones = await _devices(api, "five")
    status, held = await api.call("POST", "/v1/staff/orders", op1, order(5))
    assert (status, held["state"], held["devices"]) == (202, "pending_approval", 2), held
    status, seen = await api.call("GET", f"/v1/staff/orders/{held['id']}", viewer)
    assert (status, seen["state"]) == (200, "pending_approval")
    assert (await api.call("POST", f"/v1/staff/orders/{held['id']}/approve", op1))[0] == 403
    assert (await api.call("POST", f"/v1/staff/orders/{held['id']}/approve", viewer))[0] == 403
    assert await sandbox.deliveries(http) == []
    status, issued = await api.call("POST", f"/v1/staff/orders/{held['id']}/approve", op2)
    assert (status, issued) == (200, {"id": held["id"], "version": 1, "devices": 2})
    got = await received(sandbox, http, 2)
    assert sorted(got) == sorted((t, "order") for t in phones)
    assert len(await sandbox.deliveries(http)) == 2  # one each, nothing before
    assert await _trail(api, admin, held["id"]) == [
        ("order.issue", 202, "operator"), ("order.approve", 403, "operator"),
        ("order.approve", 403, "viewer"), ("order.approve", 200, "operator")]
    for token in (viewer, op1):
        assert (await api.call("GET", "/v1/staff/audit", token))[0] == 403


async def test_rejected_order_is_never_sent(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A rejected level-5 order never reaches a phone: a level-4 order issued after it
    arrives alone; approving the rejected one afterwards is a 409."""
    api = Client(http, daemon.url)
    op1, op2 = staff_token(db_url, "operator"), staff_token(db_url, "operator")
    admin = staff_token(db_url, "admin")
    phones = await _devices(api, "rej")
    _, held = await api.call("POST", "/v1/staff/orders", op1, order(5))
    status, body = await api.call("POST", f"/v1/staff/orders/{held['id']}/reject", op2,
                                  {"reason": "drill mix-up"})
    assert (status, body) == (200, {"id": held["id"], "state": "rejected"})
    assert (await api.call("POST", f"/v1/staff/orders/{held['id']}/approve", op2))[0] == 409
    status, later = await api.call("POST", "/v1/staff/orders", op1, order(4, "避難指示"))
    assert status == 201
    got = await received(sandbox, http, 2)
    alerts = {d["payload"].get("alert_id") or d["payload"]["message"]["data"]["alert_id"]
              for d in await sandbox.deliveries(http)}
    assert alerts == {later["id"]} and {t for t, _ in got} == phones
    assert await _trail(api, admin, held["id"]) == [
        ("order.issue", 202, "operator"), ("order.reject", 200, "operator"),
        ("order.approve", 409, "operator")]


async def test_raise_to_5_waits_lower_raises_do_not(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """Raising 3 → 4 updates the phones at once; 4 → 5 answers 202 and the phones hear
    nothing more until another operator approves, then one update each."""
    api = Client(http, daemon.url)
    op1, op2 = staff_token(db_url, "operator"), staff_token(db_url, "operator")
    phones = await _devices(api, "raise")
    _, first = await api.call("POST", "/v1/staff/orders", op1, order(3, "高齢者等避難"))
    await received(sandbox, http, 2)
    status, _ = await api.call("PATCH", f"/v1/staff/orders/{first['id']}", op1, {"level": 4})
    assert status == 200
    await received(sandbox, http, 4)
    status, held = await api.call("PATCH", f"/v1/staff/orders/{first['id']}", op1,
                                  {"level": 5})
    assert (status, held["state"]) == (202, "pending_approval")
    status, seen = await api.call("GET", f"/v1/staff/orders/{first['id']}", op1)
    assert (seen["level"], seen["version"], seen["pending_change"]["level"]) == (4, 2, 5)
    assert len(await sandbox.deliveries(http)) == 4
    status, raised = await api.call("POST", f"/v1/staff/orders/{first['id']}/approve", op2)
    assert (status, raised["version"], raised["notified"]["order_update"]) == (200, 3, 2)
    got = await received(sandbox, http, 6)
    assert sorted(got[4:]) == sorted((t, "order_update") for t in phones)


async def test_orders_over_the_device_threshold_wait(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """With orders.approval_over_devices = 1 a level-3 order reaching 2 phones waits for
    approval (202, its reason), and goes out once another operator approves it."""
    port = free_port_base(1)
    d = Daemon(port=port, env=daemon_env(db_url, port, ALERTD_ORDERS_APPROVAL_OVER_DEVICES="1"),
               config=sandbox.config, log=tmp_path / "daemon.log", extra=["--migrate"])
    d.start()
    await d.ready(http, 60)
    api = Client(http, d.url)
    op1, op2 = staff_token(db_url, "operator"), staff_token(db_url, "operator")
    phones = await _devices(api, "many")
    status, held = await api.call("POST", "/v1/staff/orders", op1, order(3, "高齢者等避難"))
    assert (status, held["reasons"]) == (
        202, ["it reaches 2 devices, more than 1 (orders.approval_over_devices)"])
    status, listed = await api.call("GET", "/v1/staff/orders?state=pending_approval", op2)
    assert [(o["id"], o["devices"]) for o in listed["orders"]] == [(held["id"], 2)]
    assert await sandbox.deliveries(http) == []
    assert (await api.call("POST", f"/v1/staff/orders/{held['id']}/approve", op2))[0] == 200
    got = await received(sandbox, http, 2)
    assert {t for t, _ in got} == phones
