"""Hostile input over a real socket on a real PostgreSQL: each gets a 4xx with a JSON reason,
never a 500, and a client's errors are not logged as the server's."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from alertd import staff
from alertd.api import routes
from alertd.context import Context
from tests import rawhttp
from tests.waiting import wait_for

MAX_BODY = 20000
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
ORDER = {"level": 4, "hazard": "flood", "area": SQUARE, "headline": {"ja": "避難"}}
DEVICE = {"platform": "ios", "push_token": "tok-1", "locale": "ja"}


def small_bodies(context: Context) -> Context:
    """The context with http.max_body_bytes lowered to MAX_BODY."""
    return replace(context, cfg=replace(context.cfg, http=replace(context.cfg.http,
                                                                  max_body_bytes=MAX_BODY)))


@pytest.fixture
async def server(context: Context) -> AsyncIterator[TestServer]:
    """The real app on a socket, bodies limited to MAX_BODY bytes."""
    srv = TestServer(routes.build_app(small_bodies(context)))
    await srv.start_server()
    yield srv
    await srv.close()


async def call(srv: TestServer, method: str, target: str | bytes, body: Any = None,
               headers: dict[str, str | bytes] | None = None) -> rawhttp.Answer:
    """One request: a JSON body unless bytes are given, header values as given (bytes raw)."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    raw_headers = [(b"Content-Type", b"application/json")] if data is not None else []
    for name, value in (headers or {}).items():
        raw_headers.append((name.encode(), value if isinstance(value, bytes) else
                            value.encode()))
    path = target if isinstance(target, bytes) else target.encode()
    assert srv.port is not None
    return await rawhttp.request(srv.host, srv.port, method, path, raw_headers, data)


def bearer(token: str) -> dict[str, str | bytes]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


async def register(srv: TestServer) -> str:
    """A new device's secret."""
    answer = await call(srv, "POST", "/v1/devices", DEVICE)
    assert answer.status == 201, answer
    secret: str = answer.json()["device_secret"]
    return secret


def refused(answer: rawhttp.Answer, status: int, *fragments: str) -> None:
    """The answer is `status` with a JSON reason holding every fragment."""
    assert answer.status == status, answer
    reason = answer.json()["error"]
    assert reason and all(f in reason for f in fragments), reason


async def test_bearer_with_invalid_utf8_is_401(server: TestServer, pool: asyncpg.Pool) -> None:
    """A bearer token of bytes that are not UTF-8 is a 401 on device and staff routes."""
    for path in ("/v1/me", "/v1/me/alerts", "/v1/staff/orders", "/v1/staff/feeds"):
        for token in (b"\xff\xfe", b"\xc3\x28abc", b"ds_\xe3\x81"):
            answer = await call(server, "GET", path, headers={"Authorization": b"Bearer " + token})
            refused(answer, 401, "Bearer")
            assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "x-gzip"])
async def test_body_that_is_not_compressed_as_declared_is_400(server: TestServer,
                                                              coding: str) -> None:
    """A body declared gzip or deflate that is plain JSON is a 400 naming the coding."""
    answer = await call(server, "POST", "/v1/devices", DEVICE,
                        headers={"Content-Encoding": coding})
    refused(answer, 400, coding.removeprefix("x-"))


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_read(server: TestServer, coding: str) -> None:
    """A gzip, zlib-deflate or raw-deflate body registers a device like a plain one."""
    plain = json.dumps(DEVICE).encode()
    if coding == "gzip":
        data = gzip.compress(plain)
    elif coding == "deflate":
        data = zlib.compress(plain)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = packer.compress(plain) + packer.flush()
    answer = await call(server, "POST", "/v1/devices", data,
                        headers={"Content-Encoding": coding.removeprefix("raw-")})
    assert answer.status == 201, answer
    assert answer.json()["device_secret"].startswith("ds_")


async def test_zip_bomb_is_413_and_not_inflated_beyond_the_limit(
        server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    """A small gzip body expanding beyond http.max_body_bytes is a 413, and the server inflates
    no more than the limit, neither before answering nor after: a corrupt tail after 2 MB of
    zeros is never reached (reaching it logs an error)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = packer.compress(b"\0" * 2_000_000) + packer.flush(zlib.Z_SYNC_FLUSH) + b"\xff" * 64
    assert len(data) < MAX_BODY
    answer = await call(server, "POST", "/v1/devices", data,
                        headers={"Content-Encoding": "gzip"})
    refused(answer, 413, "too large", str(MAX_BODY))
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.INFO] == []


async def test_unsupported_content_encoding_is_415(server: TestServer) -> None:
    """A Content-Encoding other than gzip or deflate is a 415 with a JSON reason."""
    for coding in ("br", "zstd", "compress", "gzip, gzip"):
        answer = await call(server, "POST", "/v1/devices", b"\x1b\x00abc",
                            headers={"Content-Encoding": coding})
        refused(answer, 415, "Content-Encoding")


async def test_unstorable_text_is_422_naming_the_field(server: TestServer,
                                                       pool: asyncpg.Pool) -> None:
    """A NUL or an unpaired surrogate anywhere in a body is a 422 naming the field's path."""
    operator = await staff.create(pool, "operator")
    secret = await register(server)
    cases: list[tuple[str, str, Any, dict[str, str | bytes], str]] = [
        ("POST", "/v1/staff/orders", {**ORDER, "headline": {"ja": "避\x00難"}}, bearer(operator),
         "headline.ja"),
        ("POST", "/v1/staff/orders", {**ORDER, "instruction": {"en": "go\ud800"}},
         bearer(operator), "instruction.en"),
        ("POST", "/v1/staff/orders:preview", {**ORDER, "headline": {"ja\x00": "x"}},
         bearer(operator), "headline"),
        ("PUT", "/v1/me/places/home", {"label": "家\x00", "lat": 37.7, "lon": 140.4},
         bearer(secret), "label"),
        ("PUT", "/v1/me/places/home", {"label": "\udc80", "lat": 37.7, "lon": 140.4},
         bearer(secret), "label"),
        ("PATCH", "/v1/me", {"quiet_hours": {"start": "22:00\x00", "end": "06:00"}},
         bearer(secret), "quiet_hours.start"),
        ("POST", "/v1/devices", [{"a": ["x", "\x00"]}], {}, "body[0].a[1]"),
    ]
    for method, path, body, headers, field in cases:
        answer = await call(server, method, path, body, headers=headers)
        refused(answer, 422, field)
        assert "NUL" in answer.json()["error"] or "surrogate" in answer.json()["error"]
    assert await pool.fetchval("SELECT count(*) FROM orders") == 0
    assert await pool.fetchval("SELECT count(*) FROM device_points") == 0


async def test_unstorable_path_parameters_are_404(server: TestServer, pool: asyncpg.Pool) -> None:
    """%00 or an encoded surrogate in a path parameter is a 404 (or 422), never a 500."""
    operator = await staff.create(pool, "operator")
    secret = await register(server)
    for path in ("/v1/me/places/%00", "/v1/me/places/a%00b", "/v1/me/places/%ED%A0%80"):
        answer = await call(server, "DELETE", path, headers=bearer(secret))
        assert answer.status in (404, 422) and answer.json()["error"], (path, answer)
    answer = await call(server, "PUT", "/v1/staff/shelters/%00/status", {"status": "open"},
                        headers=bearer(operator))
    refused(answer, 404, "shelter_id")
    answer = await call(server, "GET", "/v1/staff/quarantine?before=%00",
                        headers=bearer(operator))
    refused(answer, 422, "query")


async def test_integers_beyond_the_digit_limit_are_422(server: TestServer,
                                                       pool: asyncpg.Pool) -> None:
    """Integers of thousands of digits are a 422 naming the field, NaN a 400."""
    operator = await staff.create(pool, "operator")
    secret = await register(server)
    answer = await call(server, "PUT", "/v1/me/location",
                        b'{"lat": ' + b"9" * 5000 + b', "lon": 140}', headers=bearer(secret))
    refused(answer, 422, "lat", "digits")
    answer = await call(server, "POST", "/v1/staff/orders",
                        b'{"level": -' + b"4" * 5000 + b', "hazard": "flood"}',
                        headers=bearer(operator))
    refused(answer, 422, "level", "digits")
    answer = await call(server, "PUT", "/v1/me/location", b'{"lat": 1e309, "lon": 140}',
                        headers=bearer(secret))
    refused(answer, 422, "lat")
    answer = await call(server, "PUT", "/v1/me/location", b'{"lat": NaN, "lon": 140}',
                        headers=bearer(secret))
    refused(answer, 400, "NaN")


async def test_small_slips_are_refused(server: TestServer, pool: asyncpg.Pool) -> None:
    """A locale or a place id with a trailing newline, level 4.0 and empty quiet hours are
    refused with 422, and nothing of them is stored."""
    operator = await staff.create(pool, "operator")
    secret = await register(server)
    refused(await call(server, "PATCH", "/v1/me", {"locale": "ja\n"}, headers=bearer(secret)),
            422, "locale")
    refused(await call(server, "POST", "/v1/devices", {**DEVICE, "locale": "en\n"}), 422,
            "locale")
    refused(await call(server, "PATCH", "/v1/me",
                       {"quiet_hours": {"start": "22:00", "end": "22:00"}},
                       headers=bearer(secret)), 422, "quiet_hours")
    refused(await call(server, "PATCH", "/v1/me",
                       {"quiet_hours": {"start": "22:00\n", "end": "06:00"}},
                       headers=bearer(secret)), 422, "quiet_hours.start")
    refused(await call(server, "PUT", "/v1/me/places/home%0A",
                       {"label": "x", "lat": 37.7, "lon": 140.4}, headers=bearer(secret)),
            422, "place_id")
    refused(await call(server, "POST", "/v1/staff/orders", {**ORDER, "level": 4.0},
                       headers=bearer(operator)), 422, "level")
    assert await pool.fetchval("SELECT count(*) FROM orders") == 0
    assert await pool.fetchval("SELECT count(*) FROM device_points") == 0
    assert await pool.fetchval("SELECT array_agg(locale) FROM devices") == ["ja"]
    assert await pool.fetchval("SELECT quiet_start FROM devices") is None


async def test_idempotency_key_beyond_ascii_is_422(server: TestServer,
                                                   pool: asyncpg.Pool) -> None:
    """An Idempotency-Key of bytes beyond printable ASCII is a 422, and no order is made."""
    operator = await staff.create(pool, "operator")
    for key in (b"\xff\xfe", b"k\xc3\xa9"):
        answer = await call(server, "POST", "/v1/staff/orders", ORDER,
                            headers={**bearer(operator), "Idempotency-Key": key})
        refused(answer, 422, "Idempotency-Key")
    assert await pool.fetchval("SELECT count(*) FROM orders") == 0


def _loud(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["log_level"] not in ("debug", "info") or "exc_info" in e]


async def test_client_errors_are_logged_quietly(server: TestServer,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Bad requests of every kind (malformed HTTP included) are logged at DEBUG or INFO at
    most and never with a traceback."""
    caplog.set_level(logging.DEBUG)
    assert server.port is not None
    with capture_logs() as logs:
        await call(server, "POST", "/v1/devices", b"{nope")
        await call(server, "GET", "/v1/me", headers={"Authorization": b"Bearer \xff"})
        await call(server, "GET", "/v1/nowhere")
        await call(server, "DELETE", "/v1/me/places/%00")
        await call(server, "POST", "/v1/devices", b"abc", headers={"Content-Encoding": "br"})
        await call(server, "POST", "/v1/devices", b"abc", headers={"Content-Encoding": "gzip"})
        answer = await rawhttp.send(server.host, server.port, b"GET /v1/\xff HTTP/1.1\r\n\r\n")
        assert answer.status == 400
        answer = await rawhttp.send(server.host, server.port, b"BREW / HTCPCP/1.0\r\n\r\n")
        assert answer.status == 400
    assert logs, "the refusals are logged at DEBUG"
    assert _loud(logs) == []
    loud = [r for r in caplog.records if r.levelno > logging.INFO or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]


async def test_client_that_hangs_up_is_not_a_database_error(context: Context) -> None:
    """A client that disconnects while sending its body is logged at DEBUG as such, not as
    request_database_error (the server cancels no handler, as in production)."""
    runner = web.AppRunner(routes.build_app(small_bodies(context)))  # handler_cancellation off
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with capture_logs() as logs:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v1/devices HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                         b"\r\nContent-Length: 1000\r\n\r\n{\"platform\"")
            await writer.drain()
            writer.close()

            async def seen() -> bool:
                return any(e["event"] == "request_client_disconnected" for e in logs)

            await wait_for(seen, "the disconnection logged")
        assert [e["event"] for e in logs] == ["request_client_disconnected"]
        assert _loud(logs) == []
    finally:
        await runner.cleanup()


async def test_unknown_expectation_is_417_on_every_path(server: TestServer) -> None:
    """An Expect header other than 100-continue (bytes beyond ASCII included) is a 417 with a
    JSON reason on every route and on paths no route takes (it was a 500)."""
    found = {(r.method, r.resource.canonical) for r in server.app.router.routes()
             if r.resource is not None}
    targets = [(m if m != "*" else "GET", re.sub(r"\{[^}]+\}", "x", path)) for m, path in found]
    for method, path in [*sorted(targets), ("GET", "/nowhere"), ("POST", "/v1/me/x/y")]:
        for value in (b"\xff\xfe", b"something-else"):
            answer = await call(server, method, path, headers={"Expect": value})
            assert answer.status == 417, (method, path, answer)
            if method != "HEAD":
                refused(answer, 417, "100-continue")


async def test_expect_100_continue_still_works(server: TestServer) -> None:
    """A client that waits for 100 Continue before its body gets it and then its answer."""
    assert server.port is not None
    body = json.dumps(DEVICE).encode()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(b"POST /v1/devices HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        answer = rawhttp.parse(await reader.read())
    finally:
        writer.close()
    assert answer.status == 201 and answer.json()["device_secret"]


async def test_wrong_method_is_405_and_unknown_path_404(server: TestServer) -> None:
    """A route's path with a method it does not take is a 405 naming the allowed ones, a path
    no route takes a 404, both with JSON reasons."""
    answer = await call(server, "POST", "/v1/me")
    refused(answer, 405)
    assert set(answer.headers["allow"].split(",")) == {"DELETE", "GET", "HEAD", "PATCH"}
    refused(await call(server, "GET", "/v1/nowhere"), 404)


async def test_unknown_expectation_on_a_path_with_a_newline_is_417(server: TestServer) -> None:
    """A path no route takes that holds an encoded newline gets the 417 as well (it was a 500)."""
    answer = await call(server, "POST", "/a%0Ab", headers={"Expect": b"\xf2\xe1"})
    refused(answer, 417, "100-continue")
