"""Pushes that speak to the household's plan, end to end: an order over a sheet's home (not
the phone's location) reaches its phone once with the plan's text, and opening the shelter the
sheet names reaches that phone wherever the shelter is, while an order covers the household."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertd.sandbox.handle import clean_env
from tests.e2e.conftest import Client, Daemon, Sandbox, staff_token, wait_for

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shelters"
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
HOME = {"kind": "home", "lat": 37.7600, "lon": 140.4740, "floors": 2, "floor": 2}
AWAY = (37.40, 140.38)  # the phone itself, in 郡山, far outside the order
FAR_SHELTER = "072036-0101"  # 郡山市立芳山小学校, some 40 km from the home


def household() -> dict[str, Any]:
    """A household in 福島市 that leaves at level 3 for floods, to a shelter in 郡山."""
    return {"name": "わが家", "places": [HOME], "triggers": {"flood": 3},
            "destinations": [{"kind": "shelter", "shelter_id": FAR_SHELTER}]}


async def _import(db_url: str, name: str) -> None:
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "alertd.cli", "shelters", "import",
                         str(FIXTURES / name)],
        env=clean_env(ALERTD_DATABASE_URL=db_url), check=True, capture_output=True)


async def _pushes(sandbox: Sandbox, http: aiohttp.ClientSession, token: str,
                  n: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        mine = [d for d in await sandbox.deliveries(http) if d["token"] == token]
        return mine if len(mine) >= n else None
    found: list[dict[str, Any]] = await wait_for(check, f"{n} pushes to {token}")
    return found


async def test_an_order_over_the_sheet_home_and_the_named_shelter_opening(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """The phone away from home gets the order once, saying its home is in the area, that its
    plan says leave now, and naming its shelter; opening that far shelter then tells it, and
    not a phone inside the order that did not name it."""
    await _import(db_url, "standard_evacuation_sites.csv")
    await _import(db_url, "standard_shelters.csv")
    api = Client(http, daemon.url)
    _, secret = await api.device("ios", "plan-phone", *AWAY)
    await api.device("ios", "plain-phone", 37.75, 140.45)
    status, body = await api.call("PUT", f"/v1/me/sheets/{uuid.uuid4()}", secret, household())
    assert status == 201, body
    op = staff_token(db_url, "operator")
    status, created = await api.call("POST", "/v1/staff/orders", op, {
        "level": 4, "hazard": "flood", "area": SQUARE,
        "headline": {"ja": "阿武隈川が氾濫のおそれ"}})
    assert status == 201 and created["devices"] == 2, created
    [push] = await _pushes(sandbox, http, "plan-phone", 1)
    body_text = push["payload"]["aps"]["alert"]["body"]
    assert "自宅" in body_text and "郡山市立芳山小学校" in body_text, body_text
    assert "警戒レベル3" in body_text, body_text  # the plan's trigger, reached: leave now
    await _pushes(sandbox, http, "plain-phone", 1)

    status, body = await api.call("PUT", f"/v1/staff/shelters/{FAR_SHELTER}/status", op,
                                  {"status": "open", "crowding": "low"})
    assert status == 200, body
    pushes = await _pushes(sandbox, http, "plan-phone", 2)
    assert pushes[1]["payload"]["kind"] == "shelter_opened"
    assert "郡山市立芳山小学校" in pushes[1]["payload"]["aps"]["alert"]["title"] + \
        pushes[1]["payload"]["aps"]["alert"]["body"]
    # The plain phone is inside the order but 40 km from that shelter and did not name it.
    status, inbox = await api.call("GET", "/v1/me/alerts", secret)
    assert status == 200 and [a["kind"] for a in inbox["alerts"]] == ["shelter_opened", "order"]
    plain = [d for d in await sandbox.deliveries(http) if d["token"] == "plain-phone"]
    assert [d["payload"]["kind"] for d in plain] == ["order"]
