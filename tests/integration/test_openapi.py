"""The OpenAPI description against the app itself: every route described and nothing else,
served without credentials, valid OpenAPI 3.1, its roles and rate limits as the app enforces
them, its error answers as the app gives them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema_rs
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import db, devices, settings, staff
from alertd.api import openapi, openapi_common, routes
from alertd.context import Context
from tests import described

DOC = openapi.document()
FILLED = {"{order_id}": "00000000-0000-0000-0000-000000000000", "{shelter_id}": "S-1",
          "{sheet_id}": "00000000-0000-4000-8000-000000000000",
          "{place_id}": "home", "{entry_id}": "1", "{file}": "app.js",
          "{quarantine_id}": "1"}


def _url(template: str) -> str:
    for name, value in FILLED.items():
        template = template.replace(name, value)
    return template


def _params(template: str) -> dict[str, str]:
    return {name.strip("{}"): value for name, value in FILLED.items() if name in template}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return sorted((method.upper(), path, op) for path, item in DOC["paths"].items()
                  for method, op in item.items() if method in openapi.METHODS)


async def test_every_route_is_described_and_nothing_else(api: TestClient) -> None:  # type: ignore[type-arg]
    """The router's routes and the description's operations are the same set: a route added
    without its description, or a description left behind by a removed route, is named."""
    taken = described.routes(api)
    told = openapi.operations(DOC)
    assert len(taken) >= 25
    missing, stale = sorted(taken - told), sorted(told - taken)
    assert not missing, f"routes not described in alertd/api/openapi*.py: {missing}"
    assert not stale, f"described in alertd/api/openapi*.py, but no route takes them: {stale}"


async def test_the_description_is_served_without_credentials(api: TestClient) -> None:  # type: ignore[type-arg]
    """GET /openapi.json needs no credentials and answers the document as JSON."""
    r = await api.get("/openapi.json")
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(await r.read()) == DOC
    assert DOC["openapi"] == "3.1.0"


def test_the_description_is_valid_openapi_3_1() -> None:
    """The document validates against the OpenAPI 3.1 schema, each of its component schemas
    against JSON Schema 2020-12, and every $ref points at a component that exists."""
    described.schema().validate()
    for name, schema in DOC["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    text = json.dumps(DOC)
    for kind in ("schemas", "responses"):
        prefix = f'"#/components/{kind}/'
        for piece in text.split(prefix)[1:]:
            assert piece.split('"')[0] in DOC["components"][kind], piece[:40]


def test_every_operation_describes_its_overload_and_errors_as_json() -> None:
    """Every operation lists 503 (with Retry-After), and every error answer it lists is a JSON
    object with the reason in `error`."""
    for method, path, op in _operations():
        assert "503" in op["responses"], (method, path)
        for status, resp in op["responses"].items():
            if status.startswith(("4", "5")):
                name = resp.get("$ref", "").rsplit("/", 1)[-1]
                resp = openapi_common.RESPONSES.get(name, resp)
                assert "application/json" in resp["content"], (method, path, status)


async def test_the_roles_described_are_the_roles_enforced(api: TestClient, context: Context,  # type: ignore[type-arg]
                                                         ) -> None:
    """Each staff operation refuses (403) exactly the roles below the one its security
    requirement names, and lists 403 only when some role is below it."""
    tokens = {role: await staff.create(context.pool, role) for role in openapi_common.ROLES}
    checked = 0
    for method, path, op in _operations():
        if not path.startswith("/v1/staff/"):
            continue
        (requirement,) = op["security"]
        (least,) = requirement["staffBearer"]
        assert ("403" in op["responses"]) == (least != "viewer"), (method, path)
        for role, token in tokens.items():
            r = await api.request(method, _url(path), json={},
                                  headers={"Authorization": f"Bearer {token}"})
            below = openapi_common.ROLES.index(role) < openapi_common.ROLES.index(least)
            assert (r.status == 403) == below, (method, path, role, r.status)
            await described.answer_conforms(r, path, _params(path))
        checked += 1
    assert checked >= 12


@pytest.fixture
async def strict(context: Context) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The app with every rate limit at a burst of one and no refill."""
    limits = {f"ALERTD_RATELIMIT_{kind}_{what}": value
              for kind in ("REGISTER", "DEVICE", "LOCATION", "STAFF", "SEARCH")
              for what, value in (("BURST", "1"), ("PER_S", "0.0001"))}
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": context.cfg.database.url, **limits})
    client = TestClient(TestServer(routes.build_app(dataclasses.replace(context, cfg=cfg))))
    await client.start_server()
    yield client
    await client.close()


async def test_rate_limits_are_described_where_they_apply(strict: TestClient,  # type: ignore[type-arg]
                                                          context: Context) -> None:
    """With a burst of one, a second request answers 429 (with Retry-After, as described) on
    exactly the operations whose description lists 429."""
    admin = await staff.create(context.pool, "admin")
    limited, unlimited = [], []
    for method, path, op in _operations():
        headers: dict[str, str] = {}
        if op["security"] == [{"deviceBearer": []}]:
            _, secret = await devices.register(context.pool, "ios", f"t-{method}{path}", "ja")
            headers = {"Authorization": f"Bearer {secret}"}
        elif op["security"]:
            headers = {"Authorization": f"Bearer {admin}"}
        statuses = []
        for _ in range(2):
            r = await strict.request(method, _url(path), json={}, headers=headers)
            await described.answer_conforms(r, path, _params(path))
            statuses.append(r.status)
        (limited if statuses[1] == 429 else unlimited).append((method, path))
        assert ("429" in op["responses"]) == (statuses[1] == 429), (method, path, statuses)
    assert len(limited) >= 15 and len(unlimited) >= 5


async def _client_of(context: Context) -> TestClient:  # type: ignore[type-arg]
    client: TestClient = TestClient(TestServer(routes.build_app(context)))  # type: ignore[type-arg]
    await client.start_server()
    return client


async def test_without_a_database_every_answer_is_as_described(context: Context,
                                                               db_url: str) -> None:
    """With the database gone, every operation answers as described: a 503 with Retry-After
    where it needs the database (readiness says why), never a 500."""
    gone = dataclasses.replace(context, pool=await db.connect(db_url, min_size=1, max_size=1))
    await gone.pool.close()
    client = await _client_of(gone)
    statuses: dict[int, int] = {}
    try:
        for method, path, _ in _operations():
            r = await client.request(method, _url(path), json={},
                                     headers={"Authorization": "Bearer some-token"})
            await described.answer_conforms(r, path, _params(path), overload=True)
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status == 503 and path != "/readyz":
                assert r.headers["Retry-After"] == "2", (method, path)
    finally:
        await client.close()
    assert statuses[503] >= 30 and 500 not in statuses


async def test_an_index_behind_answers_503_as_described(stalled_context: Context) -> None:
    """When the location index cannot confirm the latest locations, the operations that wait
    for it answer the described 503 with Retry-After."""
    client = await _client_of(stalled_context)
    operator = await staff.create(stalled_context.pool, "operator")
    await stalled_context.pool.execute(
        "INSERT INTO shelters (id, name, lat, lon, kind, source_format) VALUES"
        " ('S-1', 'hall', 37.75, 140.45, 'shelter', 'gsi_shelter')")
    order = {"level": 4, "hazard": "flood", "area": {"area_codes": ["072010"]},
             "headline": {"ja": "避難指示"}}
    try:
        for method, path, body in [("POST", "/v1/staff/orders:preview", order),
                                   ("POST", "/v1/staff/orders", order),
                                   ("PUT", "/v1/staff/shelters/{shelter_id}/status",
                                    {"status": "open"})]:
            r = await client.request(method, _url(path), json=body,
                                     headers={"Authorization": f"Bearer {operator}"})
            assert r.status == 503 and r.headers["Retry-After"] == "2", (method, path)
            await described.answer_conforms(r, path, _params(path), overload=True)
    finally:
        await client.close()
