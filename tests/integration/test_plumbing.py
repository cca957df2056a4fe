"""alertd.api.plumbing: what every answer of the HTTP API looks like on the wire."""

from __future__ import annotations

import ast
from pathlib import Path

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from alertd import staff
from alertd.api import plumbing

API = Path(__file__).resolve().parents[2] / "alertd" / "api"
HEADLINE = "【警戒レベル4】阿武隈川が氾濫のおそれ"
AREA = {"area_codes": ["072010"]}


async def test_answers_are_utf8_json_with_japanese_unescaped(
        api: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """An order's Japanese headline comes back as UTF-8 text, not \\u escapes, in UTF-8 JSON."""
    operator = await staff.create(pool, "operator")
    auth = {"Authorization": f"Bearer {operator}"}
    r = await api.post("/v1/staff/orders", headers=auth, json={
        "level": 4, "hazard": "flood", "area": AREA, "headline": {"ja": HEADLINE}})
    assert r.status == 201, await r.text()
    order_id = (await r.json())["id"]
    for path in (f"/v1/staff/orders/{order_id}", "/v1/staff/orders"):
        r = await api.get(path, headers=auth)
        raw = await r.read()
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        assert HEADLINE.encode("utf-8") in raw
        assert b"\\u" not in raw


def test_no_handler_bypasses_the_json_answer() -> None:
    """Handlers answer JSON only through plumbing.json_response (one encoder for the API)."""
    offenders = []
    for path in sorted(API.glob("*.py")):
        if path.name == "plumbing.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "json_response"
                    and isinstance(node.value, ast.Name) and node.value.id == "web"):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


async def test_a_timeout_is_logged_by_its_name_not_as_an_empty_error() -> None:
    """A request whose database wait times out answers 503 and is logged with error
    "TimeoutError" (str() of a TimeoutError is empty)."""
    async def stalled(_: web.Request) -> web.Response:
        raise TimeoutError

    app = web.Application(middlewares=[plumbing.error_middleware])
    app.router.add_get("/stalled", stalled)
    client: TestClient = TestClient(TestServer(app))  # type: ignore[type-arg]
    await client.start_server()
    try:
        with capture_logs() as logs:
            r = await client.get("/stalled")
            assert r.status == 503
    finally:
        await client.close()
    assert [(e["event"], e["error"]) for e in logs] == [("request_database_error", "TimeoutError")]
