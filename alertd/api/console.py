"""The staff console: its static files at /console, its sign-in and the map's base layer.

The console is plain ES modules, CSS and a vendored Leaflet in the package directory
alertd/console (no build step). It calls the same /v1/staff/* routes as any client, with the
session cookie that POST /v1/console/session sets instead of a bearer token (see
alertd.sessions and plumbing.staff_member).
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import shapely
from aiohttp import web

from alertd import credentials, errors, sessions, validate
from alertd.api import auditing, plumbing, throttle
from geo import municipalities

routes = web.RouteTableDef()

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json"}
_TEXT = {".html", ".js", ".css", ".svg", ".json"}
# Files under vendor/ live in a directory named with their version: cached for a year.
_VENDOR = "vendor/"


def root() -> Path:
    """The directory of the console's files (shipped as package data of alertd)."""
    return Path(__file__).resolve().parent.parent / "console"


def content_security_policy(tile_url: str) -> str:
    """The console's CSP: its own scripts and styles only (no inline script), images from
    itself and, when configured, the tile server."""
    img = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url)
        img += f" {parts.scheme}://{parts.netloc}"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src {img}; connect-src 'self'; font-src 'self'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def _headers(request: web.Request) -> dict[str, str]:
    return {"Content-Security-Policy": content_security_policy(
                plumbing.ctx(request).cfg.console.tile_url),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin"}


@lru_cache(maxsize=256)
def _file(relative: str) -> tuple[bytes, str, str] | None:
    """(content, ETag, content type) of a console file, or None when there is none to serve."""
    parts = relative.split("/")
    if any(not p or p.startswith(".") or "\\" in p for p in parts):
        return None
    path = root().joinpath(*parts)
    ctype = _TYPES.get(path.suffix)
    if ctype is None or not path.is_file():
        return None
    body = path.read_bytes()
    if path.suffix in _TEXT:
        ctype += "; charset=utf-8"
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', ctype


@routes.get("/console")
async def index(request: web.Request) -> web.StreamResponse:
    """The console's page (sign-in, then everything else)."""
    return _serve(request, "index.html")


@routes.get(r"/console/{file:.*}")
async def asset(request: web.Request) -> web.StreamResponse:
    """A file of the console: its page, scripts, styles, the vendored map library."""
    return _serve(request, request.match_info["file"] or "index.html")


def _serve(request: web.Request, relative: str) -> web.StreamResponse:
    found = _file(relative)
    if found is None:
        raise errors.NotFound(f"no console file {relative[:100]!r}")
    body, etag, ctype = found
    headers = _headers(request)
    headers["ETag"] = etag
    headers["Cache-Control"] = ("public, max-age=31536000, immutable"
                                if relative.startswith(_VENDOR) else "no-cache")
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = ctype
    return web.Response(body=body, headers=headers)


def _same_origin(request: web.Request) -> bool:
    """Whether the request's Origin header names the site it was sent to (the console's own
    page), so a page of another site cannot sign a browser in (login CSRF)."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


def _secure(request: web.Request) -> bool:
    """Whether the session cookie must be Secure: configured so, or the request came over TLS
    (itself, or as a trusted proxy says)."""
    if plumbing.ctx(request).cfg.console.secure_cookie or request.secure:
        return True
    trusted = request.app[throttle.THROTTLE].trusted
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and any(peer.version == n.version and peer in n for n in trusted)


def _session_json(request: web.Request, secret: str,
                  session: sessions.Session) -> dict[str, Any]:
    cfg = plumbing.ctx(request).cfg.console
    return {"signed_in": True, "staff_id": str(session.who.id), "role": session.who.role,
            "label": session.who.label,
            "csrf": sessions.csrf_token(secret), "expires_at": session.expires_at.isoformat(),
            "idle_timeout_s": cfg.idle_timeout_s, "tile_url": cfg.tile_url,
            "tile_attribution": cfg.tile_attribution}


@routes.post("/v1/console/session")
async def sign_in(request: web.Request) -> web.Response:
    """Sign in to the console with a staff token: a session cookie (HttpOnly, SameSite=Strict)
    and the session's CSRF token. Only from the console's own origin."""
    if not _same_origin(request):
        raise errors.Forbidden("sign in from the console's own page: the Origin header must "
                               "name this site")
    body = validate.obj(await plumbing.json_body(request))
    validate.only(body, {"token"})
    token = body.get("token")
    if not isinstance(token, str) or not token.strip():
        raise errors.InvalidInput("token must be a staff token (alertd staff-token create)")
    c = plumbing.ctx(request)
    cfg = c.cfg.console
    token = token.strip()
    if credentials.bearer(f"Bearer {token}") is None:
        raise errors.Unauthenticated("unknown, expired or revoked staff token")
    opened = await sessions.open_session(c.pool, token, timedelta(seconds=cfg.session_ttl_s))
    if opened is None:
        raise errors.Unauthenticated("unknown, expired or revoked staff token")
    secret, session = opened
    plumbing.via(request, "console")
    await auditing.record(c.pool, request, session.who, "console.sign_in",
                          target=str(session.id), status=201,
                          after={"expires_at": session.expires_at.isoformat()})
    resp = plumbing.json_response(_session_json(request, secret, session), status=201)
    max_age = int((session.expires_at - datetime.now(UTC)).total_seconds())
    resp.set_cookie(sessions.COOKIE, secret, path="/", httponly=True, samesite="Strict",
                    secure=_secure(request), max_age=max(max_age, 1))
    return resp


@routes.get("/v1/console/session")
async def whoami(request: web.Request) -> web.Response:
    """The console session of the cookie (role, label, CSRF token, expiry, map settings), or
    `{"signed_in": false}`: the console asks at start, so no session is an answer, not an
    error."""
    secret = sessions.cookie_secret(request.cookies.get(sessions.COOKIE))
    c = plumbing.ctx(request)
    found = None
    if secret is not None:
        found = await sessions.authenticate(c.pool, secret,
                                            timedelta(seconds=c.cfg.console.idle_timeout_s))
    if secret is None or found is None:
        return plumbing.json_response({"signed_in": False})
    return plumbing.json_response(_session_json(request, secret, found))


@routes.delete("/v1/console/session")
async def sign_out(request: web.Request) -> web.Response:
    """Sign out: the session ends on the server and the cookie is cleared."""
    session = await plumbing.console_session(request)  # the CSRF header too: not from elsewhere
    secret = sessions.cookie_secret(request.cookies.get(sessions.COOKIE))
    assert secret is not None
    pool = plumbing.ctx(request).pool
    await sessions.end(pool, secret)
    plumbing.via(request, "console")
    await auditing.record(pool, request, session.who, "console.sign_out", target=str(session.id),
                          status=204)
    resp = web.Response(status=204)
    resp.del_cookie(sessions.COOKIE, path="/", secure=_secure(request), httponly=True,
                    samesite="Strict")
    return resp


@lru_cache(maxsize=4)
def _areas_body(table: municipalities.Table) -> tuple[bytes, str]:
    features = []
    for code in table.codes6():
        m = table.municipality(code)
        geometry = shapely.to_geojson(shapely.set_precision(m.geometry, 1e-5))
        features.append(f'{{"type":"Feature","id":"{code}","properties":'
                        f'{plumbing.dumps({"code": code, "name": m.name, "name_en": m.name_en})}'
                        f',"geometry":{geometry}}}')
    body = ('{"type":"FeatureCollection","features":[' + ",".join(features) + "]}").encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@routes.get("/v1/staff/areas")
async def areas(request: web.Request) -> web.Response:
    """The municipalities served (the shipped areas): a GeoJSON FeatureCollection, each
    feature with its 6-digit `code` and its Japanese and English names."""
    await plumbing.staff_member(request, "viewer")
    body, etag = _areas_body(plumbing.ctx(request).table)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type="application/json",
                        charset="utf-8")
