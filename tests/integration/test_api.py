"""The HTTP API in-process on a real PostgreSQL: validation, credentials, roles, isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import credentials, points, settings, staff
from alertd.api import routes
from alertd.context import Context

SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}


@pytest.fixture
async def client(pool: asyncpg.Pool, db_url: str, live: points.Points,
                 ) -> AsyncIterator[TestClient]:
    """A test client on the real app (bodies up to 20,000 bytes), following point changes from
    the database."""
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": db_url,
                                 "ALERTD_HTTP_MAX_BODY_BYTES": "20000"})
    ctx = Context(cfg=cfg, pool=pool, points=live, table=live.table)
    c = TestClient(TestServer(routes.build_app(ctx)))
    await c.start_server()
    yield c
    await c.close()


async def _json(resp: Any) -> Any:
    return await resp.json()


async def _register(client: TestClient, token: str = "tok-1") -> tuple[str, str]:
    r = await client.post("/v1/devices", json={"platform": "ios", "push_token": token,
                                               "locale": "ja"})
    assert r.status == 201
    body = await r.json()
    return body["device_id"], body["device_secret"]


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_device_secret_is_stored_hashed(client: TestClient, pool: asyncpg.Pool) -> None:
    """The database holds only the digest of a device secret, never the secret."""
    device_id, secret = await _register(client)
    row = await pool.fetchrow("SELECT secret_hash FROM devices")
    assert bytes(row["secret_hash"]) == credentials.digest(secret)
    assert secret.encode() not in bytes(row["secret_hash"])
    r = await client.get("/v1/me", headers=_auth(secret))
    assert r.status == 200 and (await r.json())["device_id"] == device_id


TOKEN_LENGTH = "push_token must be a string of 1 to 4096 characters"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"platform": "windows", "push_token": "x"}, 422, "platform must be ios or android"),
        ({"platform": "ios", "push_token": ""}, 422, TOKEN_LENGTH),
        ({"platform": "ios", "push_token": "a b"}, 422,
         "push_token must be printable ASCII without spaces"),
        ({"platform": "ios", "push_token": "x" * 5000}, 422, TOKEN_LENGTH),
        ({"platform": "ios", "push_token": "x", "locale": "日本"}, 422,
         "locale must be a language tag such as ja or en"),
        ({"platform": "ios", "push_token": "x", "extra": 1}, 422,
         "body has unknown field(s): extra"),
        ([1, 2], 422, "body must be a JSON object"),
    ],
)
async def test_registration_validates(client: TestClient, body: Any, status: int,
                                      reason: str) -> None:
    """Bad registrations get a 4xx with a JSON reason naming the problem."""
    r = await client.post("/v1/devices", json=body)
    assert (r.status, (await r.json())["error"]) == (status, reason)


async def test_malformed_json_and_huge_bodies(client: TestClient) -> None:
    """Invalid JSON is a 400 and a body over the limit a 413, both with reasons."""
    r = await client.post("/v1/devices", data=b"{not json", headers={"Content-Type":
                                                                       "application/json"})
    assert (r.status, (await r.json())["error"]) == (400, (
        "body is not valid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)"))
    r = await client.post("/v1/devices", data=b"x" * 30000)
    assert (r.status, (await r.json())["error"]) == (413, "body too large: at most 20000 bytes")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"lat": 91, "lon": 140}, "lat must be between -90 and 90"),
        ({"lat": 37, "lon": -181}, "lon must be between -180 and 180"),
        ({"lat": "37", "lon": 140}, "lat must be a number"),
        ({"lat": 37}, "lon must be a number"),
    ],
)
async def test_location_is_range_checked(client: TestClient, body: Any, reason: str) -> None:
    """Out-of-range or missing coordinates are refused with 422."""
    _, secret = await _register(client)
    r = await client.put("/v1/me/location", json=body, headers=_auth(secret))
    assert (r.status, (await r.json())["error"]) == (422, reason)


async def test_fourth_place_conflicts(client: TestClient) -> None:
    """Three places may be watched; a fourth is refused with 409, replacing one is fine."""
    _, secret = await _register(client)
    for i, spec in enumerate([{"lat": 37.7, "lon": 140.4}, {"area_code": "072010"},
                              {"area_code": "0720301"}]):
        r = await client.put(f"/v1/me/places/p{i}", json={"label": f"p{i}", **spec},
                             headers=_auth(secret))
        assert r.status == 200
    r = await client.put("/v1/me/places/p3", json={"label": "x", "lat": 37.0, "lon": 140.0},
                         headers=_auth(secret))
    assert r.status == 409
    r = await client.put("/v1/me/places/p0", json={"label": "home", "lat": 37.0, "lon": 140.0},
                         headers=_auth(secret))
    assert r.status == 200
    me = await (await client.get("/v1/me", headers=_auth(secret))).json()
    assert [p["place_id"] for p in me["places"]] == ["p0", "p1", "p2"]
    assert me["places"][0]["label"] == "home"


async def test_unknown_area_code_is_refused(client: TestClient) -> None:
    """A watched municipality must be a known code."""
    _, secret = await _register(client)
    r = await client.put("/v1/me/places/a", json={"label": "x", "area_code": "131016"},
                         headers=_auth(secret))
    assert (r.status, (await r.json())["error"]) == (
        422, "area_code '131016' is not a known municipality code")


async def test_device_cannot_touch_another_devices_data(client: TestClient) -> None:
    """A device's secret reaches only its own places; others' stay untouched."""
    _, a = await _register(client, "tok-a")
    _, b = await _register(client, "tok-b")
    r = await client.put("/v1/me/places/home", json={"label": "B home", "lat": 37.7,
                                                     "lon": 140.4}, headers=_auth(b))
    assert r.status == 200
    assert (await client.delete("/v1/me/places/home", headers=_auth(a))).status == 404
    me_b = await (await client.get("/v1/me", headers=_auth(b))).json()
    assert [p["place_id"] for p in me_b["places"]] == ["home"]
    me_a = await (await client.get("/v1/me", headers=_auth(a))).json()
    assert me_a["places"] == []
    assert (await client.get("/v1/me", headers=_auth("ds_forged"))).status == 401
    assert (await client.get("/v1/me")).status == 401


async def test_delete_erases_everything(client: TestClient, pool: asyncpg.Pool) -> None:
    """DELETE /v1/me removes the device, its location and its places."""
    _, secret = await _register(client)
    await client.put("/v1/me/location", json={"lat": 37.7, "lon": 140.4}, headers=_auth(secret))
    await client.put("/v1/me/places/x", json={"label": "x", "lat": 37.7, "lon": 140.4},
                     headers=_auth(secret))
    assert (await client.delete("/v1/me", headers=_auth(secret))).status == 204
    assert await pool.fetchval("SELECT count(*) FROM devices") == 0
    assert await pool.fetchval("SELECT count(*) FROM device_points") == 0
    assert (await client.get("/v1/me", headers=_auth(secret))).status == 401


async def test_staff_roles_are_enforced(client: TestClient, pool: asyncpg.Pool) -> None:
    """No token is 401, a viewer cannot issue (403) but can preview, an operator can issue."""
    viewer = await staff.create(pool, "viewer")
    operator = await staff.create(pool, "operator")
    body = {"level": 4, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難"}}
    assert (await client.post("/v1/staff/orders", json=body)).status == 401
    r = await client.post("/v1/staff/orders", json=body, headers=_auth("st_nope"))
    assert r.status == 401
    r = await client.post("/v1/staff/orders", json=body, headers=_auth(viewer))
    assert (r.status, (await r.json())["error"]) == (
        403, "this action needs the operator role; the token is viewer")
    r = await client.post("/v1/staff/orders:preview", json=body, headers=_auth(viewer))
    assert r.status == 200
    r = await client.post("/v1/staff/orders", json=body, headers=_auth(operator))
    assert r.status == 201
    order_id = (await r.json())["id"]
    r = await client.post(f"/v1/staff/orders/{order_id}/lift", headers=_auth(viewer))
    assert r.status == 403
    r = await client.patch(f"/v1/staff/orders/{order_id}", json={"level": 5},
                           headers=_auth(viewer))
    assert r.status == 403
    assert (await client.get(f"/v1/staff/orders/{order_id}", headers=_auth(viewer))).status == 200
    assert (await client.get(f"/v1/staff/orders/{order_id}")).status == 401


async def test_staff_tokens_are_stored_hashed(pool: asyncpg.Pool) -> None:
    """Only the digest of a staff token is stored."""
    token = await staff.create(pool, "admin")
    stored = await pool.fetchval("SELECT token_hash FROM staff_tokens")
    assert bytes(stored) == credentials.digest(token)


@pytest.mark.parametrize(
    ("area", "reason"),
    [
        ({"type": "Polygon", "coordinates": [[[140.4, 37.7], [140.5, 37.7], [140.5, 37.8],
                                              [140.4, 37.8]]]},
         "area: ring 0 of polygon 0 is not closed: first and last positions differ"),
        ({"type": "Polygon", "coordinates": [[[140.4, 37.7], [140.5, 97.7], [140.5, 37.8],
                                              [140.4, 37.7]]]},
         "area: position 1 of ring 0 of polygon 0: latitude 97.7 is outside -90..90"),
        ({"circle": {"lat": 37.7, "lon": 140.4, "radius_m": -5}},
         "area: circle radius_m must be greater than 0 and at most 200000 (got -5)"),
        ({"area_codes": ["999999"]}, "area: unknown area code '999999'"),
        ({"area_codes": []}, "area: area_codes must be a non-empty list of area codes"),
        ({"type": "Point", "coordinates": [140.4, 37.7]},
         "area: unsupported GeoJSON type 'Point': expected Polygon or MultiPolygon"),
    ],
)
async def test_invalid_areas_are_422(client: TestClient, pool: asyncpg.Pool, area: Any,
                                     reason: str) -> None:
    """Invalid order areas are refused with 422 and a reason."""
    operator = await staff.create(pool, "operator")
    body = {"level": 4, "hazard": "flood", "area": area, "headline": {"ja": "避難"}}
    r = await client.post("/v1/staff/orders", json=body, headers=_auth(operator))
    assert (r.status, (await r.json())["error"]) == (422, reason)
    assert await pool.fetchval("SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"level": 2}, "level must be 3, 4 or 5"),
        ({"hazard": "zombies"}, "hazard must be one of flood, landslide, storm_surge,"
                                " earthquake, tsunami, fire, inland_flood, volcano"),
        ({"headline": {}}, 'headline must be an object of language -> text, e.g. {"ja": …}'),
        ({"expires_at": "2001-01-01T00:00:00+09:00"}, "expires_at must be in the future"),
        ({}, "nothing to change: give level, hazard, area, headline, instruction or expires_at"),
    ],
)
async def test_order_fields_are_validated(client: TestClient, pool: asyncpg.Pool,
                                          patch: dict[str, Any], reason: str) -> None:
    """Bad levels, hazards, texts and expiries are refused with 422."""
    operator = await staff.create(pool, "operator")
    base = {"level": 4, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難"}}
    r = await client.post("/v1/staff/orders", json={**base, **patch}, headers=_auth(operator))
    if patch:
        assert (r.status, (await r.json())["error"]) == (422, reason)
        r = await client.post("/v1/staff/orders", json=base, headers=_auth(operator))
    assert r.status == 201
    order_id = (await r.json())["id"]
    r = await client.patch(f"/v1/staff/orders/{order_id}", json=patch, headers=_auth(operator))
    assert (r.status, (await r.json())["error"]) == (422, reason)


async def test_health_endpoints(client: TestClient) -> None:
    """/healthz and /readyz answer 200 and /metrics exposes the alertd counters."""
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    assert "alertd_outbox_depth" in text and "alertd_deliveries_total" in text


async def test_unknown_order_is_404(client: TestClient, pool: asyncpg.Pool) -> None:
    """An unknown or malformed order id is a 404 with a reason."""
    viewer = await staff.create(pool, "viewer")
    no_order = "00000000-0000-0000-0000-000000000000"
    for oid, reason in (("nope", "no such order"), (no_order, f"no order {no_order}")):
        r = await client.get(f"/v1/staff/orders/{oid}", headers=_auth(viewer))
        assert (r.status, (await r.json())["error"]) == (404, reason)


async def test_every_staff_route_needs_a_token_and_mutations_need_operator(
        client: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """Every /v1/staff route answers 401 without a token; a viewer cannot change anything
    nor read the audit trail."""
    viewer = await staff.create(pool, "viewer")
    found = [(r.method, r.resource.canonical) for r in client.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/v1/staff")]
    assert sorted(found) == [
        ("GET", "/v1/staff/areas"), ("GET", "/v1/staff/audit"),
        ("GET", "/v1/staff/cap/messages"), ("GET", "/v1/staff/feeds"),
        ("GET", "/v1/staff/orders"),
        ("GET", "/v1/staff/orders/{order_id}"), ("GET", "/v1/staff/quarantine"),
        ("GET", "/v1/staff/quarantine/{quarantine_id}"),
        ("GET", "/v1/staff/quarantine/{quarantine_id}/raw"), ("GET", "/v1/staff/shelters"),
        ("GET", "/v1/staff/tips"), ("GET", "/v1/staff/tips/next"),
        ("GET", "/v1/staff/warnings"),
        ("HEAD", "/v1/staff/areas"), ("HEAD", "/v1/staff/audit"),
        ("HEAD", "/v1/staff/cap/messages"), ("HEAD", "/v1/staff/feeds"),
        ("HEAD", "/v1/staff/orders"),
        ("HEAD", "/v1/staff/orders/{order_id}"), ("HEAD", "/v1/staff/quarantine"),
        ("HEAD", "/v1/staff/quarantine/{quarantine_id}"),
        ("HEAD", "/v1/staff/quarantine/{quarantine_id}/raw"), ("HEAD", "/v1/staff/shelters"),
        ("HEAD", "/v1/staff/tips"), ("HEAD", "/v1/staff/tips/next"),
        ("HEAD", "/v1/staff/warnings"),
        ("PATCH", "/v1/staff/orders/{order_id}"),
        ("POST", "/v1/staff/cap"), ("POST", "/v1/staff/orders"),
        ("POST", "/v1/staff/orders/{order_id}/approve"),
        ("POST", "/v1/staff/orders/{order_id}/lift"),
        ("POST", "/v1/staff/orders/{order_id}/reject"), ("POST", "/v1/staff/orders:preview"),
        ("POST", "/v1/staff/tips/send"),
        ("PUT", "/v1/staff/shelters/{shelter_id}/status"),
    ], "a staff route was added or removed: list it here so its authorization is checked"
    for method, path in found:
        url = path.replace("{order_id}", "00000000-0000-0000-0000-000000000000").replace(
            "{shelter_id}", "S-1").replace("{quarantine_id}", "1")
        r = await client.request(method, url)
        assert r.status == 401, (method, path)
        if method in ("POST", "PUT", "PATCH", "DELETE") and not path.endswith(":preview"):
            r = await client.request(method, url, headers=_auth(viewer), json={})
            assert r.status == 403, (method, path)
    r = await client.get("/v1/staff/audit", headers=_auth(viewer))
    assert r.status == 403, "the audit trail is for admins"


async def test_locations_and_secrets_are_never_logged(client: TestClient,  # type: ignore[type-arg]
                                                      pool: asyncpg.Pool) -> None:
    """Nothing logged while a device registers, shares a location and gets an order contains
    the location, the push token or a secret."""
    from structlog.testing import capture_logs

    operator = await staff.create(pool, "operator")
    with capture_logs() as logs:
        _, secret = await _register(client, "very-private-token")
        await client.put("/v1/me/location", json={"lat": 37.7512345, "lon": 140.4567891},
                         headers=_auth(secret))
        await client.put("/v1/me/places/home", json={"label": "home", "lat": 37.7612345,
                                                     "lon": 140.4667891}, headers=_auth(secret))
        r = await client.post("/v1/staff/orders", json={
            "level": 4, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難"}},
            headers=_auth(operator))
        assert r.status == 201
        await client.put("/v1/me/location", json={"lat": 91, "lon": 0}, headers=_auth(secret))
    text = repr(logs)
    assert logs, "the order was logged"
    for needle in ("37.751", "140.456", "37.761", "140.466", "very-private-token", secret,
                   operator):
        assert needle not in text


async def test_absurd_numbers_and_nesting_are_client_errors(client: TestClient,  # type: ignore[type-arg]
                                                            ) -> None:
    """A 400-digit latitude is a 422 and a JSON nested thousands deep a 400, never a 500."""
    _, secret = await _register(client)
    huge = b'{"lat": ' + b"9" * 400 + b', "lon": 140}'
    r = await client.put("/v1/me/location", data=huge, headers={
        **_auth(secret), "Content-Type": "application/json"})
    assert (r.status, (await r.json())["error"]) == (
        422, "lat must be a number of at most 20 digits")
    deep = b"[" * 5000 + b"]" * 5000
    r = await client.post("/v1/devices", data=deep, headers={"Content-Type": "application/json"})
    assert r.status == 400


async def _issue(client: TestClient, operator: str, level: int) -> str:  # type: ignore[type-arg]
    r = await client.post("/v1/staff/orders", headers=_auth(operator), json={
        "level": level, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難"}})
    assert r.status == 201
    order_id: str = (await r.json())["id"]
    return order_id


async def test_inbox_lists_what_was_sent_newest_first(
        client: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """GET /v1/me/alerts lists the device's alerts newest first with their order's state;
    a cancelled push is left out and a shelter opening is its own alert."""
    operator = await staff.create(pool, "operator")
    device_id, secret = await _register(client)
    await client.put("/v1/me/location", json={"lat": 37.75, "lon": 140.47}, headers=_auth(secret))
    kept = await _issue(client, operator, 4)
    await pool.execute("UPDATE deliveries SET state = 'sent' WHERE order_id = $1", kept)
    dropped = await _issue(client, operator, 3)
    assert (await client.post(f"/v1/staff/orders/{dropped}/lift",
                              headers=_auth(operator))).status == 200  # its push: cancelled
    assert (await client.post(f"/v1/staff/orders/{kept}/lift",
                              headers=_auth(operator))).status == 200
    await pool.execute(
        "INSERT INTO deliveries (apns_id, device_id, service, title, body, version, kind,"
        " expires_at, ref, alert_id) VALUES (gen_random_uuid(), $1, 'apns', 'T', 'B', 0,"
        " 'shelter_opened', now() + interval '1 hour', 'shelter:S-1:1', 'shelter-S-1')",
        device_id)
    rows = await pool.fetch("SELECT id, kind, title, body, created_at FROM deliveries"
                            " WHERE state <> 'cancelled' ORDER BY id DESC")
    r = await client.get("/v1/me/alerts", headers=_auth(secret))
    assert r.status == 200
    assert await r.json() == {"alerts": [
        {"id": str(rows[0]["id"]), "alert_id": "shelter-S-1", "version": 0,
         "kind": "shelter_opened", "level": None, "title": "T", "body": "B",
         "order_state": None, "at": rows[0]["created_at"].isoformat(), "read": False},
        {"id": str(rows[1]["id"]), "alert_id": kept, "version": 1, "kind": "order_lifted",
         "level": 4, "title": rows[1]["title"], "body": rows[1]["body"],
         "order_state": "lifted", "at": rows[1]["created_at"].isoformat(), "read": False},
        {"id": str(rows[2]["id"]), "alert_id": kept, "version": 1, "kind": "order",
         "level": 4, "title": rows[2]["title"], "body": rows[2]["body"],
         "order_state": "lifted", "at": rows[2]["created_at"].isoformat(), "read": False},
    ]}
    assert [row["kind"] for row in rows] == ["shelter_opened", "order_lifted", "order"]


async def _warning(pool: asyncpg.Pool, area_code: str, kind_code: str, level: int | None) -> None:
    await pool.execute(
        "INSERT INTO area_warnings (area_code, kind_code, kind_name, status, level_equivalent,"
        " area_name, warning_type, event_id, report_datetime)"
        " VALUES ($1, $2, 'name-' || $2, '発表', $3, 'area-' || $1, '気象警報・注意報（市町村等）',"
        " NULL, '2026-06-01T12:00:00+09:00')", area_code, kind_code, level)


def _warning_json(area_code: str, kind_code: str, level: int | None) -> dict[str, Any]:
    return {"area_code": area_code, "area_name": f"area-{area_code}", "kind": f"name-{kind_code}",
            "kind_code": kind_code, "status": "発表", "level_equivalent": level,
            "warning_type": "気象警報・注意報（市町村等）",
            "report_datetime": "2026-06-01T03:00:00+00:00"}


async def test_warnings_where_the_device_is_and_for_staff(
        client: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """/v1/me/warnings lists the warnings of the municipalities of the device's location and
    places, highest level first; /v1/staff/warnings lists all of them by area and kind."""
    viewer = await staff.create(pool, "viewer")
    _, secret = await _register(client)
    await client.put("/v1/me/location", json={"lat": 37.75, "lon": 140.47}, headers=_auth(secret))
    await client.put("/v1/me/places/p", json={"label": "p", "area_code": "072044"},
                     headers=_auth(secret))
    await _warning(pool, "0720100", "03", 3)   # where the device is (072010)
    await _warning(pool, "0720100", "10", None)
    await _warning(pool, "0720400", "04", 4)   # its place (072044)
    await _warning(pool, "0720200", "05", 4)   # elsewhere (072028)
    r = await client.get("/v1/me/warnings", headers=_auth(secret))
    assert r.status == 200
    assert await r.json() == {"warnings": [
        _warning_json("0720400", "04", 4), _warning_json("0720100", "03", 3),
        _warning_json("0720100", "10", None)]}
    r = await client.get("/v1/staff/warnings", headers=_auth(viewer))
    assert r.status == 200
    assert await r.json() == {"warnings": [
        _warning_json("0720100", "03", 3), _warning_json("0720100", "10", None),
        _warning_json("0720200", "05", 4), _warning_json("0720400", "04", 4)]}


NOTHING_HELD = {"quarantined": 0, "last_quarantined_at": None}


async def test_staff_feed_list_shows_each_feed_s_health(
        client: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """GET /v1/staff/feeds lists every feed by name with its last success, error and counts."""
    viewer = await staff.create(pool, "viewer")
    await pool.execute(
        "INSERT INTO feed_state (name, kind, url, last_success, last_error, last_error_at,"
        " failures, items_seen, items_skipped, next_at) VALUES"
        " ('jma:u', 'jma', 'u', NULL, 'HTTP 503 from u', '2026-06-01T00:00:00Z', 2, 0, 0,"
        "  '2026-06-01T00:05:00Z'),"
        " ('cap:v', 'cap', 'v', '2026-06-01T00:01:00Z', NULL, NULL, 0, 7, 2,"
        "  '2026-06-01T00:02:00Z')")
    r = await client.get("/v1/staff/feeds", headers=_auth(viewer))
    assert r.status == 200
    assert await r.json() == {"feeds": [
        {"name": "cap:v", "kind": "cap", "url": "v", "last_success": "2026-06-01T00:01:00+00:00",
         "last_error": None, "last_error_at": None, "failures": 0, "items_seen": 7,
         "items_skipped": 2,
         "next_at": "2026-06-01T00:02:00+00:00", **NOTHING_HELD},
        {"name": "jma:u", "kind": "jma", "url": "u", "last_success": None,
         "last_error": "HTTP 503 from u", "last_error_at": "2026-06-01T00:00:00+00:00",
         "failures": 2, "items_seen": 0, "items_skipped": 0,
         "next_at": "2026-06-01T00:05:00+00:00", **NOTHING_HELD}],
        "posted": {"source": "staff-api", **NOTHING_HELD}}


async def test_staff_order_list_shows_active_orders_unless_all_are_asked_for(
        client: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """GET /v1/staff/orders lists active orders newest first; ?state=all adds lifted ones."""
    operator = await staff.create(pool, "operator")
    lifted = await _issue(client, operator, 3)
    assert (await client.post(f"/v1/staff/orders/{lifted}/lift",
                              headers=_auth(operator))).status == 200
    active = await _issue(client, operator, 4)
    stored = {str(r["id"]): r for r in await pool.fetch(
        "SELECT o.id, o.created_at, v.expires_at FROM orders o JOIN order_versions v"
        " ON v.order_id = o.id")}

    def entry(order_id: str, state: str, level: int) -> dict[str, Any]:
        return {"id": order_id, "version": 1, "state": state, "source": "staff",
                "level": level, "hazard": "flood", "headline": {"ja": "避難"},
                "expires_at": stored[order_id]["expires_at"].isoformat(),
                "created_at": stored[order_id]["created_at"].isoformat(), "matched": 0,
                "sent": 0, "pending": 0, "failed": 0, "invalid_token": 0}

    r = await client.get("/v1/staff/orders", headers=_auth(operator))
    assert await r.json() == {"orders": [entry(active, "active", 4)]}
    r = await client.get("/v1/staff/orders?state=all", headers=_auth(operator))
    assert await r.json() == {"orders": [entry(active, "active", 4), entry(lifted, "lifted", 3)]}


async def test_a_push_token_belongs_to_the_last_device_that_set_it(
        client: TestClient) -> None:  # type: ignore[type-arg]
    """Registering a push token again (the app reinstalled) mutes the older device
    (push_enabled false); a PATCH /v1/me setting the token takes it back."""
    _, old = await _register(client, "reinstalled")
    _, new = await _register(client, "reinstalled")

    async def enabled(secret: str) -> bool:
        r = await client.get("/v1/me", headers=_auth(secret))
        return bool((await r.json())["push_enabled"])

    assert (await enabled(old), await enabled(new)) == (False, True)
    r = await client.patch("/v1/me", json={"push_token": "reinstalled"}, headers=_auth(old))
    assert r.status == 200 and (await r.json())["push_enabled"] is True
    assert (await enabled(old), await enabled(new)) == (True, False)
