"""The inbox and shelters in sync, end to end: orders issued and lifted by staff reach a
phone's sync once each through small pages, read state comes back as a change, and a shelter
opened by staff comes once with its new state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertd.sandbox.handle import clean_env
from tests.e2e.conftest import Client, Daemon, issued, staff_token, wait_for

pytestmark = pytest.mark.e2e

SHELTERS = Path(__file__).resolve().parents[1] / "fixtures" / "shelters" / (
    "standard_evacuation_sites.csv")
HOME = (37.7600, 140.4740)  # about 100 m from 福島第一小学校 (072010-0001)
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}


class Phone:
    """A phone's view of sync: everything it received, page by page, and its cursor."""

    def __init__(self, api: Client, secret: str) -> None:
        self.api, self.secret = api, secret
        self.cursor: str | None = None
        self.alerts: list[dict[str, Any]] = []
        self.shelters: list[dict[str, Any]] = []

    async def sync(self, limit: int) -> None:
        """Sync pages of `limit` until the server says there is no more."""
        for _ in range(200):
            query = f"?limit={limit}" + (f"&cursor={self.cursor}" if self.cursor else "")
            status, page = await self.api.call("GET", "/v1/me/sync" + query, self.secret)
            assert status == 200, page
            assert len(page["alerts"]) <= limit and len(page["shelters"]) <= limit
            self.alerts += page["alerts"]
            self.shelters += page["shelters"]
            self.cursor = page["cursor"]
            if not page["more"]:
                return
        raise AssertionError("sync never said more: false")

    async def until(self, limit: int, done: Any, what: str) -> None:
        """Sync again (with the cursor) until `done()` holds."""
        async def check() -> bool:
            await self.sync(limit)
            return bool(done())
        await wait_for(check, what)


async def test_orders_reads_and_shelters_reach_sync_once(
        daemon: Daemon, http: aiohttp.ClientSession, db_url: str) -> None:
    """Three orders and a lift over the phone's location arrive through one-entry pages once
    each, in the order they were written; marking one read brings exactly that one again,
    read; the nearby shelters come on the first sync, and the one staff opens comes once
    more, open."""
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "alertd.cli", "shelters", "import", str(SHELTERS)],
        env=clean_env(ALERTD_DATABASE_URL=db_url), check=True, capture_output=True)
    api = Client(http, daemon.url)
    _, secret = await api.device("ios", "sync-phone", *HOME)
    phone = Phone(api, secret)
    await phone.until(1, lambda: len(phone.shelters) >= 2, "the nearby shelters")
    assert {s["id"] for s in phone.shelters} == {"072010-0001", "072010-0002"}
    first_shelters = len(phone.shelters)

    op, second = staff_token(db_url, "operator"), staff_token(db_url, "operator")
    ids = []
    for level in (3, 4, 5):
        created = await issued(api, op, {"level": level, "hazard": "flood", "area": SQUARE,
                                          "headline": {"ja": f"レベル{level}"}}, second)
        ids.append(created["id"])
    async def sent() -> bool:
        _, body = await api.call("GET", f"/v1/staff/orders/{ids[0]}", op)
        return bool(body["deliveries"]["sent"] == 1)
    await wait_for(sent, "the first order sent")  # a lift goes to phones that received it
    status, _ = await api.call("POST", f"/v1/staff/orders/{ids[0]}/lift", op)
    assert status == 200
    await phone.until(1, lambda: len(phone.alerts) >= 4, "four inbox entries in sync")
    assert Counter(a["id"] for a in phone.alerts).most_common(1)[0][1] == 1
    assert [(a["alert_id"], a["kind"]) for a in phone.alerts] == [
        (ids[0], "order"), (ids[1], "order"), (ids[2], "order"), (ids[0], "order_lifted")]
    status, inbox = await api.call("GET", "/v1/me/alerts", secret)
    assert status == 200 and {a["id"] for a in inbox["alerts"]} == {
        a["id"] for a in phone.alerts}

    read = phone.alerts[1]["id"]
    assert (await api.call("PUT", f"/v1/me/alerts/{read}/read", secret))[0] == 204
    await phone.until(1, lambda: len(phone.alerts) >= 5, "the read entry in sync")
    assert (phone.alerts[4]["id"], phone.alerts[4]["read"]) == (read, True)

    status, body = await api.call("PUT", "/v1/staff/shelters/072010-0001/status", op,
                                  {"status": "open", "crowding": "low"})
    assert status == 200, body
    await phone.until(1, lambda: len(phone.shelters) > first_shelters, "the opened shelter")
    assert [(s["id"], s["status"], s["crowding"]) for s in phone.shelters[first_shelters:]] == [
        ("072010-0001", "open", "low")]
    await phone.sync(1)
    assert len(phone.alerts) == 5 or all(a["kind"] == "shelter_opened"
                                         for a in phone.alerts[5:])
