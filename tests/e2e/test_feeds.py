"""CAP end to end: posted messages reach phones through the daemon and the sandbox."""

from __future__ import annotations

import aiohttp
import pytest

from tests import capgen
from tests.e2e.conftest import Client, Daemon, Sandbox, post_cap, received, staff_token

pytestmark = pytest.mark.e2e

INSIDE = [(37.75, 140.45), (37.72, 140.50)]
OUTSIDE = [(37.40, 140.38)]


async def test_cap_alert_update_cancel_reach_phones(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A posted CAP Alert notifies the phones in its polygon, the Update raises the level, the
    Cancel lifts it for exactly those phones."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    for i, (lat, lon) in enumerate(INSIDE):
        await api.device("ios" if i else "android", f"cap-in-{i}", lat, lon)
    await api.device("ios", "cap-out", *OUTSIDE[0])
    status, body = await post_cap(http, daemon, op, capgen.message("e2e-1", level=3))
    assert status == 202 and body["outcome"] == "order", body
    assert body["id"] == body["order_id"]
    first = await received(sandbox, http, 2)
    assert sorted(first) == [("cap-in-0", "order"), ("cap-in-1", "order")]

    status, body = await post_cap(http, daemon, op, capgen.message(
        "e2e-2", msg_type="Update", references=("e2e-1",), level=4))
    assert status == 202 and body["outcome"] == "updated", body
    got = await received(sandbox, http, 4)
    assert sorted(got[2:]) == [("cap-in-0", "order_update"), ("cap-in-1", "order_update")]

    status, body = await post_cap(http, daemon, op, capgen.message(
        "e2e-3", msg_type="Cancel", references=("e2e-2", "e2e-1")))
    assert status == 202 and body["outcome"] == "lifted", body
    got = await received(sandbox, http, 6)
    assert sorted(got[4:]) == [("cap-in-0", "order_lifted"), ("cap-in-1", "order_lifted")]
    assert "cap-out" not in {t for t, _ in got}

    status, body = await post_cap(http, daemon, op, capgen.message("e2e-1", level=3))
    assert status == 202 and body["outcome"] == "duplicate"


async def test_cap_exercise_reaches_only_drill_devices(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A CAP Exercise is pushed only to devices enrolled in drills."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    await api.device("ios", "public", *INSIDE[0])
    _, drill_secret = await api.device("android", "drill", *INSIDE[1])
    status, _ = await api.call("PATCH", "/v1/me", drill_secret, {"drill": True})
    assert status == 200
    status, body = await post_cap(http, daemon, op, capgen.message("ex-1", status="Exercise"))
    assert status == 202 and body["outcome"] == "order"
    assert await received(sandbox, http, 1) == [("drill", "order")]
    _, order = await api.call("GET", f"/v1/staff/orders/{body['order_id']}", op)
    assert order["exercise"] is True and order["deliveries"]["matched"] == 1


async def test_bad_cap_is_400_and_quarantined(
        daemon: Daemon, http: aiohttp.ClientSession, db_url: str) -> None:
    """A malformed CAP post gets 400 with the reason, and staff find it in the quarantine."""
    op = staff_token(db_url, "operator")
    status, body = await post_cap(http, daemon, op, b"<alert>not cap")
    assert (status, body) == (400, {
        "error": "not well-formed XML: no element found: line 1, column 14", "quarantine_id": 1})
    api = Client(http, daemon.url)
    status, listing = await api.call("GET", "/v1/staff/quarantine", staff_token(db_url, "viewer"))
    assert status == 200
    assert [i["id"] for i in listing["items"]] == [body["quarantine_id"]]
    assert listing["items"][0]["source"] == "staff-api"
    async with http.post(f"{daemon.url}/v1/staff/cap", data=b"{}", headers={
            "Authorization": f"Bearer {op}", "Content-Type": "application/json"}) as r:
        assert (r.status, (await r.json())["error"]) == (
            400, "Content-Type must be one of application/cap+xml, application/xml, text/xml")
