"""Sheet places end to end: an order over a sheet's home reaches its phone through the daemon
and the sandbox, once."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Client, Daemon, Sandbox, staff_token, wait_for

pytestmark = pytest.mark.e2e

SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
OUTSIDE = (37.10, 140.90)  # いわき市


def sheet(*at: tuple[float, float]) -> dict[str, Any]:
    """A sheet whose home is the first point and other places the rest."""
    kinds = ["home"] + ["work"] * (len(at) - 1)
    return {"name": "わが家", "places": [{"kind": k, "lat": lat, "lon": lon}
                                        for k, (lat, lon) in zip(kinds, at, strict=True)]}


def kind(delivery: dict[str, Any]) -> str:
    """The alert kind a sandbox delivery carries (APNs or FCM)."""
    payload = delivery["payload"]
    found: str = payload["kind"] if "kind" in payload else payload["message"]["data"]["kind"]
    return found


async def test_an_order_over_a_sheet_home_pushes_once_to_its_phone(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A phone located outside the area whose two sheets put its home and work inside gets
    exactly one push for the order and one for its lifting; phones whose sheets lie outside
    get nothing."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    _, secret = await api.device("ios", "household", *OUTSIDE)
    for places in ([(37.75, 140.45), (37.76, 140.50)], [(37.71, 140.54)]):
        status, body = await api.call("PUT", f"/v1/me/sheets/{uuid.uuid4()}", secret,
                                      sheet(*places))
        assert status == 201, body
    _, other = await api.device("android", "elsewhere", 37.75, 140.30)  # west of the square
    status, body = await api.call("PUT", f"/v1/me/sheets/{uuid.uuid4()}", other,
                                  sheet(OUTSIDE))
    assert status == 201, body

    status, created = await api.call("POST", "/v1/staff/orders", op, {
        "level": 4, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難してください"}})
    assert status == 201 and created["devices"] == 1, created

    async def settled() -> dict[str, Any] | None:
        s, b = await api.call("GET", f"/v1/staff/orders/{created['id']}", op)
        assert s == 200, b
        return b if b["deliveries"]["pending"] == 0 and b["deliveries"]["sent"] else None

    done = await wait_for(settled, "the order's pushes settled")
    assert done["deliveries"]["sent"] == 1
    got = await sandbox.deliveries(http)
    assert [(d["token"], kind(d)) for d in got] == [("household", "order")]

    status, _ = await api.call("POST", f"/v1/staff/orders/{created['id']}/lift", op)
    assert status == 200

    async def lifted() -> list[dict[str, Any]] | None:
        found = await sandbox.deliveries(http)
        return found if len(found) >= 2 else None

    got = await wait_for(lifted, "the lifting pushed")
    assert Counter((d["token"], kind(d)) for d in got) == Counter(
        {("household", "order"): 1, ("household", "order_lifted"): 1})
