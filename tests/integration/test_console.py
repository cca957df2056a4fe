"""The staff console's server side: sign-in sessions (cookie, CSRF, Origin, expiry, idle
time, revoked tokens, logout), its static files and headers, and the areas of its map."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import settings, staff
from alertd.api import console, routes
from alertd.context import Context

Client = TestClient  # type: ignore[type-arg]
PREVIEW = {"level": 4, "hazard": "flood", "area": {"area_codes": ["072010"]},
           "headline": {"ja": "避難指示"}}


@pytest.fixture
async def api(context: Context) -> AsyncIterator[Client]:
    """A client of the app that keeps no cookies: each request sends the one it names."""
    client: Client = TestClient(TestServer(routes.build_app(context)),
                                cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    yield client
    await client.close()


def _origin(api: Client) -> str:
    return str(api.make_url("")).rstrip("/")


async def _sign_in(api: Client, token: str, **headers: str) -> tuple[int, Any, SimpleCookie]:
    r = await api.post("/v1/console/session", json={"token": token},
                       headers={"Origin": _origin(api), **headers})
    jar: SimpleCookie = SimpleCookie()
    for value in r.headers.getall("Set-Cookie", []):
        jar.load(value)
    return r.status, await r.json(), jar


async def _session(api: Client, context: Context, role: str = "operator"
                   ) -> tuple[str, str, str]:
    """(staff token, cookie header value, CSRF token) of a fresh console session."""
    token = await staff.create(context.pool, role)
    status, body, jar = await _sign_in(api, token)
    assert status == 201, body
    return token, f"alertd_session={jar['alertd_session'].value}", body["csrf"]


async def test_sign_in_sets_the_cookie_and_answers_the_session(api: Client,
                                                               context: Context) -> None:
    """A valid token from the console's origin gets 201 with role, CSRF token and expiry, and
    an HttpOnly SameSite=Strict cookie on / with a Max-Age, not Secure over plain HTTP; the
    cookie's value is stored only as a digest."""
    token = await staff.create(context.pool, "viewer", "desk 1")
    status, body, jar = await _sign_in(api, token)
    assert status == 201
    assert body["role"] == "viewer" and body["label"] == "desk 1" and body["signed_in"]
    morsel = jar["alertd_session"]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert not morsel["secure"]
    assert 43000 <= int(morsel["max-age"]) <= 43200
    stored = await context.pool.fetchval("SELECT token_hash FROM console_sessions")
    assert morsel.value.encode() not in stored and len(stored) == 32


@pytest.mark.parametrize("origin", [None, "null", "https://evil.example", "http://127.0.0.1:1"])
async def test_sign_in_needs_the_consoles_own_origin(api: Client, context: Context,
                                                     origin: str | None) -> None:
    """A sign-in POST with no Origin, or another site's, is refused 403 and opens no
    session."""
    token = await staff.create(context.pool, "operator")
    headers = {} if origin is None else {"Origin": origin}
    r = await api.post("/v1/console/session", json={"token": token}, headers=headers)
    assert r.status == 403 and "Origin" in (await r.json())["error"]
    assert "Set-Cookie" not in r.headers
    assert await context.pool.fetchval("SELECT count(*) FROM console_sessions") == 0


async def test_a_bad_token_is_401_and_a_bad_body_422(api: Client, context: Context) -> None:
    """An unknown or revoked token is a 401; a body without a token string a 422."""
    assert (await _sign_in(api, "st_unknown"))[0] == 401
    token = await staff.create(context.pool, "operator")
    (info,) = await staff.tokens(context.pool)
    await staff.revoke(context.pool, str(info.id))
    assert (await _sign_in(api, token))[0] == 401
    r = await api.post("/v1/console/session", json={"token": 5},
                       headers={"Origin": _origin(api)})
    assert r.status == 422


async def test_the_cookie_stands_for_the_token_on_staff_routes(api: Client,
                                                               context: Context) -> None:
    """With the session cookie (no Authorization), staff routes answer as for the token;
    an unsafe one needs the session's X-CSRF-Token (403 without, or with another session's)."""
    _, cookie, csrf = await _session(api, context)
    _, _, other_csrf = await _session(api, context)
    assert other_csrf != csrf
    assert (await api.get("/v1/staff/orders", headers={"Cookie": cookie})).status == 200
    bare = await api.post("/v1/staff/orders:preview", json=PREVIEW, headers={"Cookie": cookie})
    assert bare.status == 403 and "X-CSRF-Token" in (await bare.json())["error"]
    crossed = await api.post("/v1/staff/orders:preview", json=PREVIEW,
                             headers={"Cookie": cookie, "X-CSRF-Token": other_csrf})
    assert crossed.status == 403
    ok = await api.post("/v1/staff/orders:preview", json=PREVIEW,
                        headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert ok.status == 200, await ok.text()


async def test_a_viewer_session_is_refused_what_a_viewer_token_is(api: Client,
                                                                  context: Context) -> None:
    """A viewer's session may preview but not issue (403), CSRF header or not."""
    _, cookie, csrf = await _session(api, context, "viewer")
    r = await api.post("/v1/staff/orders", json=PREVIEW,
                       headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert r.status == 403 and "operator" in (await r.json())["error"]


@pytest.mark.parametrize("change", [
    "UPDATE staff_tokens SET revoked_at = now()",
    "UPDATE staff_tokens SET expires_at = now() - interval '1 second'",
    "UPDATE console_sessions SET expires_at = now() - interval '1 second'",
    "UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes'",
])
async def test_a_session_ends_with_its_token_its_lifetime_or_idleness(
        api: Client, context: Context, change: str) -> None:
    """A revoked or expired staff token, the session's own expiry or 30 minutes without a
    request (console.idle_timeout_s) end the session at once: 401, and GET
    /v1/console/session says signed_in false."""
    _, cookie, _ = await _session(api, context)
    assert (await api.get("/v1/staff/orders", headers={"Cookie": cookie})).status == 200
    await context.pool.execute(change)
    r = await api.get("/v1/staff/orders", headers={"Cookie": cookie})
    assert r.status == 401 and "session ended" in (await r.json())["error"]
    who = await api.get("/v1/console/session", headers={"Cookie": cookie})
    assert (await who.json()) == {"signed_in": False}


async def test_a_session_never_outlives_its_token(api: Client, context: Context) -> None:
    """A token expiring in 10 minutes opens a session that expires with it, not in 12 h."""
    from datetime import timedelta
    token = await staff.create(context.pool, "operator", expires_in=timedelta(minutes=10))
    status, _, jar = await _sign_in(api, token)
    assert status == 201
    assert 590 <= int(jar["alertd_session"]["max-age"]) <= 600
    row = await context.pool.fetchrow(
        "SELECT s.expires_at = t.expires_at AS same FROM console_sessions s"
        " JOIN staff_tokens t ON t.id = s.staff_token_id")
    assert row["same"]


async def test_logout_ends_the_session_on_the_server(api: Client, context: Context) -> None:
    """DELETE /v1/console/session with the CSRF header deletes the session row and clears the
    cookie; without the header it is refused and the session lives on."""
    _, cookie, csrf = await _session(api, context)
    refused = await api.delete("/v1/console/session", headers={"Cookie": cookie})
    assert refused.status == 403
    r = await api.delete("/v1/console/session", headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert r.status == 204
    jar: SimpleCookie = SimpleCookie()
    jar.load(r.headers["Set-Cookie"])
    assert jar["alertd_session"].value == "" and jar["alertd_session"]["max-age"] == "0"
    assert await context.pool.fetchval("SELECT count(*) FROM console_sessions") == 0
    assert (await api.get("/v1/staff/orders", headers={"Cookie": cookie})).status == 401


async def test_sign_in_out_and_console_actions_are_audited_as_console(
        api: Client, context: Context) -> None:
    """Signing in and out are on the audit trail (via console, naming the token), and so is an
    action taken with the session cookie, and a refusal for a missing CSRF header."""
    token, cookie, csrf = await _session(api, context)
    await api.post("/v1/staff/orders:preview", json=PREVIEW, headers={"Cookie": cookie})
    r = await api.post("/v1/staff/orders", json=PREVIEW,
                       headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert r.status == 201, await r.text()
    await api.delete("/v1/console/session", headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    rows = await context.pool.fetch("SELECT action, via, status, staff_role FROM audit_log"
                                    " ORDER BY id")
    seen = [(r["action"], r["via"], r["status"]) for r in rows]
    assert ("console.sign_in", "console", 201) in seen
    assert ("order.issue", "console", 201) in seen
    assert ("console.sign_out", "console", 204) == seen[-1]
    assert all(r["staff_role"] == "operator" for r in rows)
    assert token not in str(seen)


@pytest.fixture
async def behind_tls(context: Context) -> AsyncIterator[Client]:
    """The app behind a trusted proxy (127.0.0.0/8)."""
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": context.cfg.database.url,
                                 "ALERTD_HTTP_TRUSTED_PROXIES": '["127.0.0.0/8"]'})
    client: Client = TestClient(TestServer(routes.build_app(dataclasses.replace(context, cfg=cfg))),
                                cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    yield client
    await client.close()


async def test_the_cookie_is_secure_over_tls_or_when_configured(
        behind_tls: Client, context: Context, pool: asyncpg.Pool) -> None:
    """The cookie is Secure when a trusted proxy says the request came over https, and not
    when it says http."""
    token = await staff.create(pool, "operator")
    _, _, jar = await _sign_in(behind_tls, token, **{"X-Forwarded-Proto": "https"})
    assert jar["alertd_session"]["secure"]
    _, _, jar = await _sign_in(behind_tls, token, **{"X-Forwarded-Proto": "http"})
    assert not jar["alertd_session"]["secure"]


async def test_the_console_is_served_with_a_strict_policy(api: Client) -> None:
    """/console answers the page with a CSP that allows only its own scripts (no inline
    script), nosniff and no framing; modules revalidate (ETag, 304), the vendored library
    is cached for a year."""
    page = await api.get("/console")
    assert page.status == 200 and page.content_type == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["X-Content-Type-Options"] == "nosniff"
    html = await page.text()
    assert '<script type="module" src="/console/app.js"></script>' in html
    assert "<script>" not in html and " on" not in html.split("<body>")[1].split("=")[0]
    app = await api.get("/console/app.js")
    assert app.content_type == "text/javascript" and app.headers["Cache-Control"] == "no-cache"
    again = await api.get("/console/app.js", headers={"If-None-Match": app.headers["ETag"]})
    assert again.status == 304
    lib = await api.get("/console/vendor/leaflet-1.9.4/leaflet-src.esm.js")
    assert lib.status == 200 and "immutable" in lib.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["/console/../alertd.toml", "/console/%2e%2e/sessions.py",
                                  "/console/vendor/leaflet-1.9.4/LICENSE",
                                  "/console/.hidden.js", "/console/nope.js",
                                  "/console/vendor//leaflet.css"])
async def test_only_console_files_are_served(api: Client, path: str) -> None:
    """Paths outside the console directory, hidden files, unknown types and missing files
    are a JSON 404."""
    r = await api.get(path)
    assert r.status == 404 and "error" in await r.json()


async def test_a_tile_url_adds_its_host_to_img_src() -> None:
    """console.tile_url puts its scheme and host (only) into the CSP's img-src."""
    csp = console.content_security_policy("https://tiles.example.jp:8443/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://tiles.example.jp:8443;" in csp


async def test_the_areas_are_geojson_with_codes_and_names(api: Client,
                                                          context: Context) -> None:
    """GET /v1/staff/areas (viewer) is every municipality of the area table as a GeoJSON
    feature with its code and Japanese and English names; unchanged, it answers 304."""
    token = await staff.create(context.pool, "viewer")
    auth = {"Authorization": f"Bearer {token}"}
    r = await api.get("/v1/staff/areas", headers=auth)
    assert r.status == 200
    doc = json.loads(await r.read())
    codes = [f["properties"]["code"] for f in doc["features"]]
    assert codes == context.table.codes6()
    fukushima = next(f for f in doc["features"] if f["properties"]["code"] == "072010")
    assert fukushima["properties"]["name"] == "福島市"
    assert fukushima["properties"]["name_en"].lower().startswith("fukushima")
    assert fukushima["geometry"]["type"] in ("Polygon", "MultiPolygon")
    again = await api.get("/v1/staff/areas", headers={**auth, "If-None-Match": r.headers["ETag"]})
    assert again.status == 304
    assert (await api.get("/v1/staff/areas")).status == 401
