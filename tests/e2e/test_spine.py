"""The alert spine end to end: daemon and sandbox processes, real PostgreSQL, real protocols."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from datetime import datetime
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
    issued,
    staff_token,
    wait_for,
)

pytestmark = pytest.mark.e2e

SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
INSIDE = [(37.75, 140.45), (37.71, 140.54), (37.75, 140.40)]  # the last one on the west edge
OUTSIDE = [(37.40, 140.38), (37.81, 140.45), (37.75, 140.39999)]
HEADLINE = {"ja": "阿武隈川が氾濫のおそれ", "en": "The Abukuma River may flood"}
# The rendered level-4 flood order with HEADLINE, as a phone shows it.
# No instruction was written: the template's generic one stands in (render.order_text).
JAPANESE = {"title": "【警戒レベル4 避難指示】洪水",
            "body": "阿武隈川が氾濫のおそれ\n危険な場所から全員避難してください。\n"
                    "テレビ・ラジオや市町村からの最新の情報を確認してください。"}
ENGLISH = {"title": "Alert Level 4: Evacuation Instructions (flood)",
           "body": "The Abukuma River may flood\nEveryone in a dangerous place must evacuate now.\n"
                   "Check the latest information on TV, radio and from your municipality."}
MIGRATIONS = Path(__file__).resolve().parents[2] / "alertd" / "migrations"


def order(area: Any = SQUARE, level: int = 4, **extra: Any) -> dict[str, Any]:
    """A staff order body."""
    return {"level": level, "hazard": "flood", "area": area, "headline": HEADLINE, **extra}


async def _delivered(sandbox: Sandbox, http: aiohttp.ClientSession, n: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        got = await sandbox.deliveries(http)
        return got if len(got) >= n else None
    result: list[dict[str, Any]] = await wait_for(check, f"{n} sandbox deliveries")
    return result


async def _settled(api: Client, token: str, order_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status, body = await api.call("GET", f"/v1/staff/orders/{order_id}", token)
        assert status == 200, body
        return body if body["deliveries"]["pending"] == 0 else None
    result: dict[str, Any] = await wait_for(check, "all deliveries settled")
    return result


async def test_order_reaches_exactly_the_devices_inside(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """Exactly the phones inside the polygon get a push, with the contract's headers and payload."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    inside_tokens = set()
    for i, (lat, lon) in enumerate(INSIDE):
        platform = "ios" if i % 2 == 0 else "android"
        await api.device(platform, f"in-{i}", lat, lon, locale="ja" if i else "en")
        inside_tokens.add(f"in-{i}")
    for i, (lat, lon) in enumerate(OUTSIDE):
        await api.device("ios" if i % 2 else "android", f"out-{i}", lat, lon)
    status, preview = await api.call("POST", "/v1/staff/orders:preview", op, order())
    assert status == 200 and preview["devices"] == len(INSIDE), preview
    # every municipality the square touches, with its count: all three inside 福島市
    assert preview["by_area"] == {"072010": len(INSIDE), "072133": 0, "073083": 0}
    assert await sandbox.deliveries(http) == []  # preview sends nothing

    status, created = await api.call("POST", "/v1/staff/orders", op, order())
    assert status == 201, created
    assert created["devices"] == len(INSIDE) and created["version"] == 1
    got = await _delivered(sandbox, http, len(INSIDE))
    settled = await _settled(api, op, created["id"])
    assert {d["token"] for d in got} == inside_tokens
    assert len(await sandbox.deliveries(http)) == len(INSIDE)
    assert settled["deliveries"]["sent"] == len(INSIDE)
    assert settled["deliveries"]["matched"] == len(INSIDE)
    assert settled["sent"] == settled["deliveries"]["sent"]  # the contract's counts, top level

    expires = datetime.fromisoformat(settled["expires_at"]).timestamp()
    apns = [d for d in got if d["service"] == "apns"]
    fcm = [d for d in got if d["service"] == "fcm"]
    assert (len(apns), len(fcm)) == (2, 1)  # in-0 and in-2 are iPhones, in-1 an Android
    for d in apns:
        h = d["headers"]
        assert h["apns-push-type"] == "alert"
        assert h["apns-priority"] == "10"
        assert h["apns-collapse-id"] == created["id"]
        assert abs(int(h["apns-expiration"]) - expires) <= 2
        p = d["payload"]
        assert p["aps"]["interruption-level"] == "time-sensitive"
        assert p["aps"]["thread-id"] == f"order-{created['id']}"
        assert p["aps"]["sound"] == "default"
        assert p["alert_id"] == created["id"] and p["kind"] == "order" and p["level"] == 4
        assert p["aps"]["alert"] == (ENGLISH if d["token"] == "in-0" else JAPANESE)
    for d in fcm:
        m = d["payload"]["message"]
        assert m["token"] == d["token"]
        assert m["notification"] == JAPANESE
        assert m["data"] == {"alert_id": created["id"], "kind": "order", "level": "4"}
        assert m["android"]["priority"] == "HIGH"
        assert m["android"]["collapse_key"] == created["id"]
        assert m["android"]["ttl"].endswith("s")


async def test_lift_reaches_exactly_the_earlier_recipients(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """解除 goes to every device that received the order and to no one else."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    for i, (lat, lon) in enumerate(INSIDE):
        await api.device("ios", f"r-{i}", lat, lon)
    _, outsider = await api.device("android", "late", *OUTSIDE[0])
    status, created = await api.call("POST", "/v1/staff/orders", op, order())
    assert status == 201
    await _delivered(sandbox, http, len(INSIDE))
    await _settled(api, op, created["id"])
    # Moving into the area after the order does not make a device a recipient of the lift.
    moved = await api.call("PUT", "/v1/me/location", outsider, {"lat": 37.75, "lon": 140.45})
    assert moved[0] == 204
    await sandbox.clear(http)
    status, lifted = await api.call("POST", f"/v1/staff/orders/{created['id']}/lift", op)
    assert status == 200 and lifted["devices"] == len(INSIDE)
    got = await _delivered(sandbox, http, len(INSIDE))
    await _settled(api, op, created["id"])
    assert sorted(d["token"] for d in await sandbox.deliveries(http)) == sorted(
        f"r-{i}" for i in range(len(INSIDE)))
    assert {d["payload"]["kind"] for d in got} == {"order_lifted"}
    assert [d["payload"]["aps"]["alert"] for d in got] == [{
        "title": "【解除】警戒レベル4 避難指示（洪水）",
        "body": "警戒レベル4 避難指示（洪水）は解除されました。\n"
                "引き続き最新の情報に注意してください。",
    }] * len(INSIDE)
    status, again = await api.call("POST", f"/v1/staff/orders/{created['id']}/lift", op)
    assert (status, again["error"]) == (409, "the order has already been lifted")


async def test_invalid_tokens_are_disabled_and_never_retried(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """gone-/bad- tokens are disabled after one refusal and get nothing afterwards."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    await api.device("ios", "gone-1", *INSIDE[0])
    await api.device("android", "gone-2", *INSIDE[1])
    await api.device("ios", "bad-3", *INSIDE[0])
    await api.device("android", "ok-4", *INSIDE[1])
    _, first = await api.call("POST", "/v1/staff/orders", op, order())
    body = await _settled(api, op, first["id"])
    assert body["deliveries"]["invalid_token"] == 3
    assert body["deliveries"]["sent"] == 1
    second = await issued(api, op, order(level=5), staff_token(db_url, "operator"))
    assert second["devices"] == 1  # only the healthy device is still reachable
    await _settled(api, op, second["id"])
    counts = Counter(d["token"] for d in await sandbox.deliveries(http))
    assert counts == Counter({"gone-1": 1, "gone-2": 1, "bad-3": 1, "ok-4": 2})


async def test_busy_and_down_tokens_arrive_after_retries(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """429 and 503 answers are retried with backoff until the push is delivered."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    for i, platform in enumerate(("ios", "android")):
        await api.device(platform, f"busy-{i}", *INSIDE[0])
        await api.device(platform, f"down-{i}", *INSIDE[1])
    _, created = await api.call("POST", "/v1/staff/orders", op, order())
    body = await _settled(api, op, created["id"])
    assert body["deliveries"]["sent"] == 4
    got = await sandbox.deliveries(http)
    by_token: dict[str, list[int]] = {}
    for d in got:
        by_token.setdefault(d["token"], []).append(d["status"])
    assert by_token["busy-0"] == [429, 200] and by_token["busy-1"] == [429, 200]
    assert by_token["down-0"] == [503, 503, 200] and by_token["down-1"] == [503, 503, 200]


async def test_amend_notifies_new_devices_and_raises_level_once(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """Growing the area reaches new devices; raising the level updates earlier ones once."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    await api.device("ios", "first", *INSIDE[0])
    await api.device("android", "second", 37.85, 140.45)  # north of the square
    _, created = await api.call("POST", "/v1/staff/orders", op, order(level=3))
    await _settled(api, op, created["id"])
    bigger = {"type": "Polygon", "coordinates": [[
        [140.40, 37.70], [140.55, 37.70], [140.55, 37.90], [140.40, 37.90], [140.40, 37.70]]]}
    status, v2 = await api.call("PATCH", f"/v1/staff/orders/{created['id']}", op,
                                {"area": bigger})
    assert status == 200 and v2["version"] == 2
    await _settled(api, op, created["id"])
    status, v3 = await api.call("PATCH", f"/v1/staff/orders/{created['id']}", op, {"level": 4})
    assert status == 200 and v3["version"] == 3
    await _settled(api, op, created["id"])
    got = [(d["token"], d["payload"].get("kind") or d["payload"]["message"]["data"]["kind"])
           for d in await sandbox.deliveries(http)]
    assert sorted(got) == sorted([("first", "order"), ("second", "order"),
                                  ("first", "order_update"), ("second", "order_update")])


async def test_idempotency_key_returns_the_first_answer(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A retried POST with the same Idempotency-Key creates no second order."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    await api.device("ios", "once", *INSIDE[0])
    headers = {"Idempotency-Key": "crisis-room-42"}
    s1, a = await api.call("POST", "/v1/staff/orders", op, order(), headers)
    s2, b = await api.call("POST", "/v1/staff/orders", op, order(), headers)
    assert (s1, s2) == (201, 201) and a == b
    s3, c = await api.call("POST", "/v1/staff/orders", op, order(level=5), headers)
    assert (s3, c["error"]) == (422, "Idempotency-Key was used for a different request")
    await _settled(api, op, a["id"])
    assert len(await sandbox.deliveries(http)) == 1


async def test_location_update_is_matched_by_the_next_preview(
        daemon: Daemon, http: aiohttp.ClientSession, db_url: str) -> None:
    """A device that moves into the area is counted by the very next preview: a preview waits
    until the location follower has applied every change committed before it."""
    api = Client(http, daemon.url)
    viewer = staff_token(db_url, "viewer")
    _, secret = await api.device("ios", "mover", *OUTSIDE[0])
    assert (await api.call("POST", "/v1/staff/orders:preview", viewer, order()))[1][
        "devices"] == 0
    moved = await api.call("PUT", "/v1/me/location", secret, {"lat": 37.75, "lon": 140.45})
    assert moved[0] == 204
    status, body = await api.call("POST", "/v1/staff/orders:preview", viewer, order())
    assert (status, body["devices"]) == (200, 1)


async def test_readyz_reports_pending_migrations(
        empty_db_url: str, sandbox: Sandbox, tmp_path: Any, http: aiohttp.ClientSession) -> None:
    """On an unmigrated database the daemon runs but /readyz says 503 naming the migrations;
    after `alertd migrate` it becomes ready without a restart."""
    port = free_port_base(1)
    d = Daemon(port=port, env=daemon_env(empty_db_url, port), config=sandbox.config,
               log=tmp_path / "daemon.log")
    d.start()
    try:
        async def answered() -> tuple[int, Any] | None:
            try:
                async with http.get(f"{d.url}/readyz") as r:
                    return r.status, await r.json()
            except aiohttp.ClientError:
                return None
        status, body = await wait_for(answered, "the daemon to answer")
        every = sorted(p.stem for p in MIGRATIONS.glob("*.sql"))
        assert (status, body) == (503, {"error": "migrations not applied: " + ", ".join(every)})
        env = daemon_env(empty_db_url, port)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alertd.cli", "migrate", env=env,
            stdout=asyncio.subprocess.DEVNULL)
        assert await proc.wait() == 0
        await d.ready(http)
    finally:
        d.kill(signal.SIGTERM)
