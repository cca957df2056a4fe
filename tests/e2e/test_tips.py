"""A tip end to end: staff send, daemon, sandbox APNs and FCM, the phone's inbox."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Client, Daemon, Sandbox, staff_token, wait_for

pytestmark = pytest.mark.e2e


async def test_a_tip_goes_out_passive_with_priority_5_and_lands_in_the_inbox(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A tip an admin sends reaches an iPhone with apns-priority 5, interruption level
    passive and a day to live, and an Android phone with FCM priority NORMAL; both inboxes
    hold it."""
    api = Client(http, daemon.url)
    admin = staff_token(db_url, "admin")
    phones = {"tip-ios": await api.device("ios", "tip-ios", locale="en"),
              "tip-android": await api.device("android", "tip-android", locale="ja")}
    sent_at = time.time()
    for device_id, _ in phones.values():
        status, body = await api.call("POST", "/v1/staff/tips/send", admin,
                                      {"device_id": device_id, "tip_id": "quake-during"})
        assert status == 202, body
        assert body["tip_id"] == "quake-during"

    async def both() -> list[dict[str, Any]] | None:
        got = await sandbox.deliveries(http)
        return got if len(got) >= 2 else None

    got = {d["token"]: d for d in await wait_for(both, "two tip pushes")}
    assert set(got) == set(phones) and all(d["status"] == 200 for d in got.values())
    ios = got["tip-ios"]
    h, p = ios["headers"], ios["payload"]
    assert (h["apns-priority"], h["apns-push-type"], h["apns-collapse-id"]) == (
        "5", "alert", "tip-quake-during")
    assert abs(int(h["apns-expiration"]) - (sent_at + 86400)) <= 5
    assert p["aps"]["interruption-level"] == "passive"
    assert p["aps"]["alert"]["title"] == "Be ready: this week's tip"
    assert p["aps"]["alert"]["body"].startswith("When you feel shaking")
    assert (p["kind"], p["level"], p["alert_id"]) == ("tip", None, "tip-quake-during")
    m = got["tip-android"]["payload"]["message"]
    assert m["android"]["priority"] == "NORMAL"
    assert 86390 <= int(m["android"]["ttl"].removesuffix("s")) <= 86400
    assert m["data"] == {"alert_id": "tip-quake-during", "kind": "tip", "level": ""}
    assert m["notification"]["body"].startswith("揺れを感じたり")
    for token, (_, secret) in phones.items():
        status, inbox = await api.call("GET", "/v1/me/alerts", secret)
        assert status == 200
        (entry,) = inbox["alerts"]
        assert (entry["kind"], entry["alert_id"]) == ("tip", "tip-quake-during"), token
