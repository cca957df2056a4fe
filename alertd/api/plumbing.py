"""HTTP plumbing shared by the mobile and staff APIs: errors as JSON, bodies, credentials."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from alertd import credentials, devices, errors, staff
from alertd.context import Context

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS: dict[type[errors.AlertdError], int] = {
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.PayloadTooLarge: 413,
    errors.DatabaseUnavailable: 503,
    errors.NotReady: 503,
}
RETRY_AFTER_S = 2  # what a 503 tells the client to wait before it tries again


CONTEXT = web.AppKey("context", Context)


def ctx(request: web.Request) -> Context:
    """The application context of a request."""
    return request.app[CONTEXT]


def dumps(value: Any) -> str:
    """JSON text with every character as itself (Japanese stays readable; UTF-8 on the wire)."""
    return json.dumps(value, ensure_ascii=False)


def json_response(value: Any, *, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer (`application/json; charset=utf-8`): every handler answers through this."""
    return web.json_response(value, status=status, headers=headers, dumps=dumps)


def problem(status: int, reason: str, **extra: Any) -> web.Response:
    """A JSON error answer."""
    return json_response({"error": reason, **extra}, status=status)


class BadRequest(errors.InvalidInput):
    """The request body cannot be read."""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn alertd errors into JSON answers; never let a request crash the daemon."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return problem(400, exc.reason)
    except errors.AlertdError as exc:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        resp = problem(status, exc.reason)
        if status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        elif status == 503:
            resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp
    except web.HTTPRequestEntityTooLarge:
        return problem(413, f"body too large: at most {ctx(request).cfg.http.max_body_bytes} "
                            "bytes")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return problem(exc.status, exc.reason)
        raise
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        log.warning("request_database_error", path=request.path, error=str(exc))
        return problem(503, "the database is unavailable; retry shortly")
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        return problem(500, "internal error")


async def json_body(request: web.Request) -> Any:
    """The request body parsed as JSON (400 when it is not)."""
    raw = await request.read()
    if not raw:
        raise BadRequest("a JSON body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("body is nested too deeply") from exc


async def device(request: web.Request) -> devices.Device:
    """The device authenticated by the bearer secret (401 otherwise)."""
    secret = credentials.bearer(request.headers.get("Authorization"))
    if secret is None:
        raise errors.Unauthenticated("Authorization: Bearer <device_secret> is required")
    found = await devices.authenticate(ctx(request).pool, secret)
    if found is None:
        raise errors.Unauthenticated("unknown device credentials")
    structlog.contextvars.bind_contextvars(device_id=str(found.id))
    return found


async def staff_member(request: web.Request, role: str) -> staff.Staff:
    """The staff identity of the bearer token, required to hold at least `role`."""
    token = credentials.bearer(request.headers.get("Authorization"))
    if token is None:
        raise errors.Unauthenticated("Authorization: Bearer <staff token> is required")
    who = await staff.authenticate(ctx(request).pool, token)
    if who is None:
        raise errors.Unauthenticated("unknown or revoked staff token")
    who.require(role)
    return who


def int_arg(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    """An integer query argument within [lo, hi] (422 otherwise), or the default."""
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise errors.InvalidInput(f"{key} must be an integer") from exc
    if not lo <= value <= hi:
        raise errors.InvalidInput(f"{key} must be between {lo} and {hi}")
    return value
