"""CAP meaning end to end: jurisdiction and all-clears through the daemon and the sandbox."""

from __future__ import annotations

import aiohttp
import pytest

from tests import capgen
from tests.e2e.conftest import Client, Daemon, Sandbox, post_cap, received, staff_token

pytestmark = pytest.mark.e2e

# Around central 仙台市 (宮城県), a neighbouring prefecture's city: not ours to order.
SENDAI = "38.22,140.82 38.22,140.92 38.30,140.92 38.30,140.82 38.22,140.82"


async def test_out_of_prefecture_refused_and_all_clear_lifts(
        daemon: Daemon, sandbox: Sandbox, http: aiohttp.ClientSession, db_url: str) -> None:
    """A posted evacuation for 仙台市 answers 400 with the reason, is in the quarantine and
    reaches no phone, not even one located there; an Alert with AllClear naming a Fukushima
    order lifts it, and the lifting push reaches the phone the order reached."""
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    await api.device("android", "in-sendai", 38.26, 140.87)
    await api.device("ios", "in-fukushima", 37.75, 140.45)

    status, body = await post_cap(http, daemon, op, capgen.message("far-1", polygon=SENDAI))
    reason = ("area: the area lies wholly outside the prefecture served (it touches none of its "
              "municipalities); check the coordinates: GeoJSON positions are [lon, lat], CAP "
              "polygons lat,lon")
    assert (status, body["error"]) == (400, reason), body
    status, listing = await api.call("GET", "/v1/staff/quarantine", staff_token(db_url, "viewer"))
    assert status == 200
    assert [(i["id"], i["reason"]) for i in listing["items"]] == [(body["quarantine_id"], reason)]

    status, body = await post_cap(http, daemon, op, capgen.message("fk-1", level=4))
    assert status == 202 and body["outcome"] == "order", body
    order_id = body["order_id"]
    assert await received(sandbox, http, 1) == [("in-fukushima", "order")]

    status, body = await post_cap(http, daemon, op, capgen.message(
        "fk-2", references=("fk-1",), response="AllClear", level=None))
    assert status == 202 and (body["outcome"], body["order_id"]) == ("lifted", order_id), body
    got = await received(sandbox, http, 2)
    assert got == [("in-fukushima", "order"), ("in-fukushima", "order_lifted")]
    assert "in-sendai" not in {d["token"] for d in await sandbox.deliveries(http)}
    _, order = await api.call("GET", f"/v1/staff/orders/{order_id}", op)
    assert order["state"] == "lifted"
