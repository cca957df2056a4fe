"""The sheets API and sync in-process on a real PostgreSQL: versions, If-Match, tombstones,
paging, cursors, device isolation."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from alertd import shelters
from sheets import advice, schema, validate

HOME = {"kind": "home", "lat": 37.75, "lon": 140.47}


def doc(name: str = "家", **extra: Any) -> dict[str, Any]:
    return {"name": name, "places": [HOME], **extra}


async def register(api: TestClient, token: str) -> dict[str, str]:
    r = await api.post("/v1/devices", json={"platform": "ios", "push_token": token,
                                            "locale": "ja"})
    assert r.status == 201
    return {"Authorization": f"Bearer {(await r.json())['device_secret']}"}


def path(sid: uuid.UUID | str) -> str:
    return f"/v1/me/sheets/{sid}"


async def test_schema_is_served(api: TestClient) -> None:
    """GET /v1/schemas/sheet answers the sheet's JSON Schema."""
    r = await api.get("/v1/schemas/sheet")
    assert r.status == 200
    assert await r.json() == schema.sheet_schema()


async def test_create_read_replace_delete(api: TestClient, pool: asyncpg.Pool) -> None:
    """PUT creates (201, version 1, ETag "1", advice with the named shelter's facts), GET reads
    it, PUT with If-Match replaces (200, version 2), DELETE answers 204 and GET then 404."""
    await shelters.upsert(pool, [SimpleNamespace(
        id="S-1", name="中央小学校", address="福島市", lat=37.75, lon=140.45,
        hazards=["earthquake"], capacity=100, municipality_code="072010", kind="shelter",
        source_format="test")])  # type: ignore[list-item]
    me, sid = await register(api, "tok-a"), uuid.uuid4()
    sheet = doc(destinations=[{"kind": "shelter", "shelter_id": "S-1"}],
                hazards={"flood_depth": "0.5-3"}, triggers={"flood": 4})
    facts = {"S-1": advice.ShelterFacts("中央小学校", frozenset({"earthquake"}))}
    expected_advice = [a.as_json() for a in advice.advise(validate.parse(sheet), facts)]
    assert "shelter_not_designated" in [a["code"] for a in expected_advice]
    r = await api.put(path(sid), json=sheet, headers=me)
    assert r.status == 201 and r.headers["ETag"] == '"1"'
    parsed = validate.parse(sheet).as_json()
    assert await r.json() == {"id": str(sid), "version": 1, "sheet": parsed,
                              "advice": expected_advice}
    r = await api.get(path(sid), headers=me)
    assert r.status == 200 and r.headers["ETag"] == '"1"'
    assert (await r.json())["sheet"] == parsed
    r = await api.put(path(sid), json=doc("二"), headers={**me, "If-Match": '"1"'})
    assert r.status == 200 and r.headers["ETag"] == '"2"'
    assert (await r.json())["version"] == 2
    r = await api.delete(path(sid), headers=me)
    assert r.status == 204
    r = await api.get(path(sid), headers=me)
    assert r.status == 404


async def test_refusals(api: TestClient) -> None:
    """A non-UUID id is 404, an invalid sheet 422 with fields, a replace without If-Match 428,
    a malformed If-Match 400, a stale DELETE 412, an 11th sheet 409, a missing sheet 404."""
    me, sid = await register(api, "tok-a"), uuid.uuid4()
    r = await api.put(path("not-a-uuid"), json=doc(), headers=me)
    assert r.status == 404
    r = await api.put(path(sid), json={"name": "家"}, headers=me)
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "The sheet is invalid." and body["fields"]
    assert all(set(f) == {"path", "reason"} for f in body["fields"])
    assert (await api.put(path(sid), json=doc(), headers=me)).status == 201
    r = await api.put(path(sid), json=doc(), headers=me)
    assert r.status == 428
    r = await api.put(path(sid), json=doc(), headers={**me, "If-Match": "1"})
    assert r.status == 400
    r = await api.delete(path(sid), headers={**me, "If-Match": '"9"'})
    assert r.status == 412
    assert (await r.json())["current"]["version"] == 1
    for _ in range(9):
        assert (await api.put(path(uuid.uuid4()), json=doc(), headers=me)).status == 201
    r = await api.put(path(uuid.uuid4()), json=doc(), headers=me)
    assert r.status == 409
    assert (await api.get(path(uuid.uuid4()), headers=me)).status == 404
    assert (await api.delete(path(uuid.uuid4()), headers=me)).status == 404


async def test_a_stale_second_client_gets_412_with_the_server_copy(api: TestClient) -> None:
    """Two phones of one device read version 1; after one writes version 2, the other's write
    with If-Match "1" is 412 carrying version 2 and its sheet."""
    me, sid = await register(api, "tok-a"), uuid.uuid4()
    assert (await api.put(path(sid), json=doc("一"), headers=me)).status == 201
    assert (await api.put(path(sid), json=doc("二"),
                          headers={**me, "If-Match": '"1"'})).status == 200
    r = await api.put(path(sid), json=doc("三"), headers={**me, "If-Match": '"1"'})
    assert r.status == 412
    assert (await r.json())["current"] == {"id": str(sid), "version": 2, "deleted": False,
                                           "sheet": validate.parse(doc("二")).as_json()}


async def test_a_delete_reaches_another_client_as_a_tombstone(api: TestClient) -> None:
    """A client synced past a sheet sees its deletion as {"id","version","deleted":true} in its
    next sync, and nothing more after that."""
    me, sid = await register(api, "tok-a"), uuid.uuid4()
    await api.put(path(sid), json=doc(), headers=me)
    first = await (await api.get("/v1/me/sync", headers=me)).json()
    assert [s["id"] for s in first["sheets"]] == [str(sid)] and first["more"] is False
    assert (await api.delete(path(sid), headers={**me, "If-Match": '"1"'})).status == 204
    r = await api.get("/v1/me/sync", params={"cursor": first["cursor"]}, headers=me)
    assert r.status == 200
    second = await r.json()
    assert second["sheets"] == [{"id": str(sid), "version": 2, "deleted": True}]
    third = await (await api.get("/v1/me/sync", params={"cursor": second["cursor"]},
                                 headers=me)).json()
    assert third["sheets"] == [] and third["more"] is False


async def test_paging_with_a_small_limit_returns_each_change_once(api: TestClient) -> None:
    """Five changed sheets synced two at a time come in three pages, in write order, each once,
    the last page saying more: false."""
    me = await register(api, "tok-a")
    sids = [uuid.uuid4() for _ in range(5)]
    for sid in sids:
        await api.put(path(sid), json=doc(), headers=me)
    await api.put(path(sids[0]), json=doc("改"), headers={**me, "If-Match": '"1"'})
    seen: list[tuple[str, int]] = []
    mores: list[bool] = []
    params: dict[str, str] = {"limit": "2"}
    for _ in range(3):
        page = await (await api.get("/v1/me/sync", params=params, headers=me)).json()
        seen += [(s["id"], s["version"]) for s in page["sheets"]]
        mores.append(page["more"])
        params["cursor"] = page["cursor"]
    assert seen == [(str(s), 1) for s in sids[1:]] + [(str(sids[0]), 2)]
    assert mores == [True, True, False]


async def test_an_unreadable_cursor_is_410(api: TestClient) -> None:
    """A tampered cursor, garbage, or another device's cursor is 410; a bad limit is 422."""
    me, other = await register(api, "tok-a"), await register(api, "tok-b")
    good = (await (await api.get("/v1/me/sync", headers=me)).json())["cursor"]
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    for bad, who in ((tampered, me), ("garbage!", me), (good, other)):
        r = await api.get("/v1/me/sync", params={"cursor": bad}, headers=who)
        assert r.status == 410
        assert (await r.json())["error"] == (
            "The sync cursor cannot be read here; sync again without one.")
    assert (await api.get("/v1/me/sync", params={"limit": "501"}, headers=me)).status == 422


async def test_devices_are_isolated(api: TestClient) -> None:
    """Device B cannot read or delete A's sheet (404), and its sync does not list it."""
    a, b, sid = await register(api, "tok-a"), await register(api, "tok-b"), uuid.uuid4()
    await api.put(path(sid), json=doc(), headers=a)
    assert (await api.get(path(sid), headers=b)).status == 404
    assert (await api.delete(path(sid), headers=b)).status == 404
    assert (await (await api.get("/v1/me/sync", headers=b)).json())["sheets"] == []
    assert (await api.get(path(sid), headers=a)).status == 200


async def test_erasing_the_device_erases_its_sheets(api: TestClient, pool: asyncpg.Pool) -> None:
    """DELETE /v1/me leaves no sheet row of the device, tombstones included."""
    me = await register(api, "tok-a")
    live, gone = uuid.uuid4(), uuid.uuid4()
    await api.put(path(live), json=doc(), headers=me)
    await api.put(path(gone), json=doc(), headers=me)
    await api.delete(path(gone), headers=me)
    assert await pool.fetchval("SELECT count(*) FROM sheets") == 2
    assert (await api.delete("/v1/me", headers=me)).status == 204
    assert await pool.fetchval("SELECT count(*) FROM sheets") == 0


async def test_a_retried_idempotency_key_gets_the_first_answer(api: TestClient,
                                                               pool: asyncpg.Pool) -> None:
    """A PUT retried with its Idempotency-Key gets the first 201, body and ETag (no second
    version); the key with another body is 422; another device's same key is its own; a
    retried DELETE gets 204 again; erasing the device erases its keys."""
    me, other, sid = await register(api, "tok-a"), await register(api, "tok-b"), uuid.uuid4()
    first = await api.put(path(sid), json=doc(), headers={**me, "Idempotency-Key": "k1"})
    assert first.status == 201
    first_body = await first.json()
    again = await api.put(path(sid), json=doc(), headers={**me, "Idempotency-Key": "k1"})
    assert (again.status, again.headers["ETag"], await again.json()) == (
        201, '"1"', first_body)
    assert again.headers["Idempotent-Replayed"] == "true"
    r = await api.put(path(sid), json=doc("別"), headers={**me, "Idempotency-Key": "k1"})
    assert r.status == 422
    assert (await r.json())["error"] == "Idempotency-Key was used for a different request"
    r = await api.put(path(uuid.uuid4()), json=doc(), headers={**me, "Idempotency-Key": "k1"})
    assert r.status == 422
    r = await api.put(path(sid), json=doc(), headers={**other, "Idempotency-Key": "k1"})
    assert r.status == 201
    sync = await (await api.get("/v1/me/sync", headers=me)).json()
    assert [(s["id"], s["version"]) for s in sync["sheets"]] == [(str(sid), 1)]
    for _ in range(2):
        r = await api.delete(path(sid), headers={**me, "Idempotency-Key": "k2",
                                                 "If-Match": '"1"'})
        assert r.status == 204
    r = await api.put(path(sid), json=doc(), headers={**me, "Idempotency-Key": "k2"})
    assert r.status == 422
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 3
    assert (await api.delete("/v1/me", headers=me)).status == 204
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 1
