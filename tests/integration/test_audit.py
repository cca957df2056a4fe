"""The audit trail on a real PostgreSQL: staff actions recorded with before/after, refusals
kept, append-only even for the table's owner, readable by admins only."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from alertd import audit, shelters, staff
from alertd.context import Context
from feeds.shelters import ShelterRow
from tests import capgen, described

SQUARE = {"type": "Polygon", "coordinates": [[[140.46, 37.75], [140.49, 37.75],
                                              [140.49, 37.77], [140.46, 37.77],
                                              [140.46, 37.75]]]}
ORDER = {"level": 3, "hazard": "flood", "area": {"area_codes": ["072010"]},
         "headline": {"ja": "高齢者等避難"}}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _trail(api: TestClient, admin: str, **query: str) -> list[dict[str, Any]]:
    r = await api.get("/v1/staff/audit", params=query, headers=_auth(admin))
    assert r.status == 200, await r.text()
    await described.answer_conforms(r, "/v1/staff/audit")
    entries: list[dict[str, Any]] = (await r.json())["entries"]
    return entries


async def test_order_issue_amend_lift_are_recorded_with_before_and_after(
        api: TestClient, context: Context) -> None:
    """Issuing, raising and lifting an order each leave one entry naming the operator, the
    order, the status answered and the order's level and area before and after."""
    op = await staff.create(context.pool, "operator", "当番A")
    admin = await staff.create(context.pool, "admin")
    r = await api.post("/v1/staff/orders", json=ORDER, headers=_auth(op))
    assert r.status == 201, await r.text()
    order_id = (await r.json())["id"]
    r = await api.patch(f"/v1/staff/orders/{order_id}", json={"level": 4, "area": SQUARE},
                        headers=_auth(op))
    assert r.status == 200, await r.text()
    r = await api.post(f"/v1/staff/orders/{order_id}/lift", headers=_auth(op))
    assert r.status == 200, await r.text()
    trail = await _trail(api, admin, target=order_id)
    assert [(e["action"], e["status"]) for e in trail] == [
        ("order.lift", 200), ("order.amend", 200), ("order.issue", 201)]
    lift, amend, issue = trail
    assert {e["staff_label"] for e in trail} == {"当番A"}
    assert {e["staff_role"] for e in trail} == {"operator"}
    assert {e["via"] for e in trail} == {"api"}
    assert all(e["remote"] == "127.0.0.1" for e in trail)
    assert issue["before"] is None
    assert issue["after"]["level"] == 3 and issue["after"]["area_codes"] == ["072010"]
    assert amend["before"]["level"] == 3 and amend["before"]["version"] == 1
    assert amend["after"]["level"] == 4 and amend["after"]["version"] == 2
    assert amend["after"]["area"]["kind"] == "polygon"
    assert amend["after"]["area"]["vertices"] == 5
    assert lift["before"]["state"] == "active" and lift["after"]["state"] == "lifted"


async def test_viewer_attempt_is_recorded_as_403(api: TestClient, context: Context) -> None:
    """A viewer trying to issue an order is refused (403) and the attempt is on the trail,
    naming the viewer; a 422 of an operator is kept too."""
    viewer = await staff.create(context.pool, "viewer", "見学")
    op = await staff.create(context.pool, "operator")
    admin = await staff.create(context.pool, "admin")
    r = await api.post("/v1/staff/orders", json=ORDER, headers=_auth(viewer))
    assert r.status == 403
    r = await api.post("/v1/staff/orders", json={**ORDER, "level": 7}, headers=_auth(op))
    assert r.status == 422
    bad, refused = await _trail(api, admin, action="order.issue")
    assert (refused["status"], refused["staff_label"], refused["staff_role"]) == (
        403, "見学", "viewer")
    assert "operator role" in refused["after"]["error"]
    assert (bad["status"], bad["staff_role"]) == (422, "operator")
    assert bad["after"] == {"error": "level must be 3, 4 or 5"}
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_shelter_status_keeps_before_and_after(api: TestClient, context: Context) -> None:
    """A shelter opened by staff leaves its status, crowding and evacuees before and after."""
    await shelters.upsert(context.pool, [ShelterRow(
        "S-1", "第一小学校", "", 37.752, 140.472, frozenset({"flood"}), 100, "072010",
        "evacuation_site", "test")])
    op = await staff.create(context.pool, "operator")
    admin = await staff.create(context.pool, "admin")
    r = await api.put("/v1/staff/shelters/S-1/status", headers=_auth(op),
                      json={"status": "open", "crowding": "low", "evacuees": 12})
    assert r.status == 200, await r.text()
    (entry,) = await _trail(api, admin, action="shelter.status")
    assert entry["target"] == "S-1"
    assert entry["before"] == {"status": "not_open", "crowding": None, "evacuees": None}
    assert entry["after"] == {"status": "open", "crowding": "low", "evacuees": 12,
                              "opened": True}


async def test_only_admins_read_the_trail(api: TestClient, context: Context) -> None:
    """GET /v1/staff/audit answers 403 to a viewer and to an operator, 401 without a token."""
    for role in ("viewer", "operator"):
        token = await staff.create(context.pool, role)
        r = await api.get("/v1/staff/audit", headers=_auth(token))
        assert r.status == 403, role
        await described.answer_conforms(r, "/v1/staff/audit")
    assert (await api.get("/v1/staff/audit")).status == 401


async def test_paging_and_filters(api: TestClient, context: Context) -> None:
    """Entries come newest first in pages of `limit`; `next` continues where the page ended
    and is null on the last; staff_id and since filter; a bad filter is a 422."""
    await staff.create(context.pool, "operator", "op")
    admin = await staff.create(context.pool, "admin")
    (who,) = [t for t in await staff.tokens(context.pool) if t.label == "op"]
    for i in range(5):
        await audit.record(context.pool, staff.Staff(who.id, who.role, who.label),
                           audit.Origin(), "test.step", target=str(i))
    r = await api.get("/v1/staff/audit", params={"limit": "2"}, headers=_auth(admin))
    page = await r.json()
    assert [e["target"] for e in page["entries"]] == ["4", "3"]
    r = await api.get("/v1/staff/audit", params={"limit": "2", "before": str(page["next"])},
                      headers=_auth(admin))
    page = await r.json()
    assert [e["target"] for e in page["entries"]] == ["2", "1"]
    r = await api.get("/v1/staff/audit", params={"limit": "2", "before": str(page["next"])},
                      headers=_auth(admin))
    last = await r.json()
    assert [e["target"] for e in last["entries"]] == ["0"] and last["next"] is None
    assert len(await _trail(api, admin, staff_id=str(who.id))) == 5
    assert await _trail(api, admin, staff_id=str(who.id), since="2999-01-01T00:00:00+09:00") == []
    for query in ({"staff_id": "nope"}, {"since": "yesterday"}, {"limit": "501"}):
        r = await api.get("/v1/staff/audit", params=query, headers=_auth(admin))
        assert r.status == 422, query


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET status = 200", "DELETE FROM audit_log", "TRUNCATE audit_log"])
async def test_the_trail_is_append_only(pool: asyncpg.Pool, statement: str) -> None:
    """UPDATE, DELETE and TRUNCATE of audit_log are refused even for the superuser owning the
    table (the tests' role), and the entry stays as written."""
    await audit.record(pool, None, audit.Origin("api", "192.0.2.1"), "session.sign_in",
                       status=401)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute(statement)
    row = await pool.fetchrow("SELECT action, status, remote FROM audit_log")
    assert tuple(row) == ("session.sign_in", 401, "192.0.2.1")


async def test_posted_cap_is_recorded_accepted_or_refused(api: TestClient,
                                                          context: Context) -> None:
    """A CAP message that made an order is on the trail with the order as target and 202; a
    refused one with 400 and its quarantine id."""
    op = await staff.create(context.pool, "operator")
    admin = await staff.create(context.pool, "admin")
    headers = {**_auth(op), "Content-Type": "application/cap+xml"}
    r = await api.post("/v1/staff/cap", data=capgen.message("a1"), headers=headers)
    assert r.status == 202, await r.text()
    order_id = (await r.json())["id"]
    r = await api.post("/v1/staff/cap", data=b"<alert>", headers=headers)
    assert r.status == 400
    refused, accepted = await _trail(api, admin, action="cap.post")
    assert (accepted["status"], accepted["target"]) == (202, order_id)
    assert accepted["after"]["outcome"] == "order"
    assert refused["status"] == 400 and refused["target"] is None
    assert refused["after"]["quarantine_id"] == (await r.json())["quarantine_id"]
