"""HTTP plumbing shared by the mobile and staff APIs: errors as JSON, bodies, credentials."""

from __future__ import annotations

import json
import logging
import warnings
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from alertd import credentials, db, devices, errors, logs, sessions, settings, staff, validate
from alertd.context import Context

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UnsupportedEncoding(errors.AlertdError):
    """The body's Content-Encoding is not one the server decodes."""


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
    UnsupportedEncoding: 415,
    errors.Overloaded: 503,
}
RETRY_AFTER_S = 2  # what a 503 tells the client to wait before it tries again


CONTEXT = web.AppKey("context", Context)
# The request attribute holding the staff identity once authenticated (api.auditing reads it).
STAFF = web.RequestKey("staff", staff.Staff)


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


def json_text(text: str) -> web.Response:
    """A JSON answer the handler has serialised already (a sync page built in SQL)."""
    return web.Response(text=text, content_type="application/json", charset="utf-8")


def problem(status: int, reason: str, **extra: Any) -> web.Response:
    """A JSON error answer."""
    return json_response({"error": reason, **extra}, status=status)


class BadRequest(errors.InvalidInput):
    """The request body cannot be read."""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn alertd errors into JSON answers; never let a request crash the daemon.

    Anyone can send a bad request, so a client's error (4xx) is logged at DEBUG and without a
    traceback: it must not flood the log.
    """
    try:
        return await handler(request)
    except BadRequest as exc:
        return _refused(request, 400, exc.reason)
    except errors.AlertdError as exc:
        status = status_of(exc)
        resp = _refused(request, status, exc.reason)
        if status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        elif status == 503:
            resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp
    except web.HTTPRequestEntityTooLarge:
        return _refused(request, 413, _too_large(request))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            resp = _refused(request, exc.status, exc.reason)
            if "Allow" in exc.headers:  # a 405 names the methods the path takes
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        raise
    except db.UNAVAILABLE as exc:
        if request.transport is None:  # the client hung up: reading its body failed
            log.debug("request_client_disconnected", path=request.path,
                      method=request.method)
            return problem(400, "the client disconnected")  # nobody reads it
        log.warning("request_database_error", path=request.path, error=logs.describe(exc))
        resp = problem(503, "the database is unavailable; retry shortly")
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        return problem(500, "internal error")


def status_of(exc: errors.AlertdError) -> int:
    """The HTTP status answering an alertd error."""
    if isinstance(exc, BadRequest):
        return 400
    return next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)


def _refused(request: web.Request, status: int, reason: str) -> web.Response:
    if status < 500:
        log.debug("request_refused", status=status, path=request.path, method=request.method)
    return problem(status, reason)


@web.middleware
async def args_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse path parameters and query arguments that PostgreSQL could not store.

    A NUL or an unpaired surrogate (from %00 or %ED%A0%80) names nothing that can exist: a
    path parameter holding one is a 404, a query argument a 422; no handler sees either.
    """
    for name, value in request.match_info.items():
        if not validate.storable(value):
            raise errors.NotFound(f"no such {name}: it holds a NUL or an unpaired surrogate")
    for name, value in request.query.items():
        if not (validate.storable(name) and validate.storable(value)):
            raise errors.InvalidInput("query arguments must not hold a NUL or an unpaired "
                                      "surrogate")
    return await handler(request)


async def expect(request: web.Request) -> web.StreamResponse | None:
    """The Expect handler of every route: 100-continue is answered `100 Continue` (as aiohttp
    does), any other expectation is a 417 with a JSON reason (aiohttp answered text, and a 500
    when the header held bytes beyond ASCII). It runs before any middleware."""
    if request.headers.get("Expect", "").lower() != "100-continue":
        return problem(417, "the only expectation understood is Expect: 100-continue")
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


async def _no_route(request: web.Request) -> web.StreamResponse:
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def add_routes(app: web.Application, *tables: web.RouteTableDef) -> None:
    """Add the routes of the tables, every one with the `expect` handler, and then a last
    route for every other path and method: aiohttp's own answer to a request no route takes
    (404, 405) ignores the Expect handlers, as it ignores the middlewares."""
    for table in tables:
        for route in table:
            assert isinstance(route, web.RouteDef), route
            app.router.add_routes([web.RouteDef(route.method, route.path, route.handler,
                                                {**route.kwargs, "expect_handler": expect})])
    app.router.add_route("*", r"/{path:[\s\S]*}", _no_route, expect_handler=expect)  # \n too


def _too_large(request: web.Request) -> str:
    return f"body too large: at most {ctx(request).cfg.http.max_body_bytes} bytes"


# Content-Encoding -> zlib window bits. aiohttp's own decoding is switched off (HANDLER_ARGS):
# it inflated a whole zip bomb while draining an unread body, and answered 500 to a body
# that was not compressed at all.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
            "deflate": zlib.MAX_WBITS}


class BodyTooLarge(errors.PayloadTooLarge):
    """The request body is larger than the route accepts."""

    def __init__(self, reason: str, received: bytes, size: int) -> None:
        super().__init__(reason)
        self.received = received  # what was read of it before it was refused
        self.size = size  # its declared size, or what was read


# Routes that read their body with a limit of their own (handler -> the limit from settings):
# the declared-length check of every other route (connections.body_deadline) leaves them be,
# so that they can authenticate first and keep what they refuse.
OWN_BODY_LIMITS: dict[Callable[..., Any], Callable[[settings.Settings], int]] = {}


def own_body_limit(request: web.Request) -> bool:
    """Whether the request's route reads its body with a limit of its own."""
    return request.match_info.handler in OWN_BODY_LIMITS


async def receive(request: web.Request, limit: int, keep: int = 0) -> bytes:
    """The request body as sent (still encoded), at most ``limit`` bytes: BodyTooLarge beyond,
    carrying the first ``keep`` bytes read (a declared size over the limit reads no more)."""
    declared = request.content_length
    reason = f"body too large: at most {limit} bytes"
    if declared is not None and declared > limit:
        head = await request.content.read(keep) if keep else b""
        raise BodyTooLarge(reason, head, declared)
    received = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        received += chunk
        if len(received) > limit:
            raise BodyTooLarge(reason, bytes(received[:keep]), len(received))
    return bytes(received)


def decoded(request: web.Request, raw: bytes, limit: int) -> bytes:
    """A received body decoded from gzip or deflate: 400 when it is not what it claims, 415 for
    other codings, 413 when what it expands to exceeds ``limit``."""
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if not raw or coding in ("", "identity"):
        return raw
    wbits = _CODINGS.get(coding)
    if wbits is None:
        raise UnsupportedEncoding(f"Content-Encoding must be gzip or deflate, not {coding!r}")
    return _inflate(raw, coding, wbits, limit, f"body too large: at most {limit} bytes")


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded from gzip or deflate: 400 when it is not what it claims,
    415 for other codings, 413 when it (or what it expands to) exceeds http.max_body_bytes."""
    limit = ctx(request).cfg.http.max_body_bytes
    return decoded(request, await receive(request, limit), limit)


def _inflate(raw: bytes, coding: str, wbits: int, limit: int, too_large: str) -> bytes:
    if coding == "deflate" and (raw[0] & 0x0F != 8 or int.from_bytes(raw[:2], "big") % 31):
        wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header, as some clients send
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, limit + 1)  # never more than the limit: a zip bomb stops
    except zlib.error as exc:
        raise BadRequest(f"body is not {coding} data: {exc}") from exc
    if len(out) > limit:
        raise errors.PayloadTooLarge(too_large)
    if not inflater.eof or inflater.unused_data:
        raise BadRequest(f"body is not {coding} data: the stream is cut short or followed by "
                         "other data")
    return out


def _no_constant(name: str) -> Any:
    raise BadRequest(f"body is not valid JSON: {name} is not a JSON value")


async def json_body(request: web.Request, *, optional: bool = False) -> Any:
    """The request body parsed as JSON (400 when it is not; 422, naming the field, when a
    value is one no field may hold: see validate.document); None for no body at all when
    the body is `optional`."""
    raw = await read_body(request)
    if not raw and optional:
        return None
    if not raw:
        raise BadRequest("a JSON body is required")
    try:
        value = json.loads(raw, parse_int=validate.json_int, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("body is nested too deeply") from exc
    validate.document(value)
    return value


async def device(request: web.Request,
                 conn: asyncpg.Connection | None = None) -> devices.Device:
    """The device authenticated by the bearer secret (401 otherwise), looked up on `conn`
    when the handler holds one already (a round trip to take one saved)."""
    secret = credentials.bearer(request.headers.get("Authorization"))
    if secret is None:
        raise errors.Unauthenticated("Authorization: Bearer <device_secret> is required")
    found = await devices.authenticate(conn if conn is not None else ctx(request).pool, secret)
    if found is None:
        raise errors.Unauthenticated("unknown device credentials")
    structlog.contextvars.bind_contextvars(device_id=str(found.id))
    return found


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
VIA = "alertd.via"  # request key: "api" (a bearer token) or "console" (a session cookie)


async def staff_member(request: web.Request, role: str) -> staff.Staff:
    """The staff identity of the request, required to hold at least `role`: the bearer token's
    or, without an Authorization header, the console session's (its cookie, and for an unsafe
    method its CSRF header). The one place every staff route authenticates."""
    header = request.headers.get("Authorization")
    if header is None and sessions.COOKIE in request.cookies:
        who = (await console_session(request)).who
        via(request, "console")
    else:
        token = credentials.bearer(header)
        if token is None:
            raise errors.Unauthenticated("Authorization: Bearer <staff token> is required")
        found = await staff.authenticate(ctx(request).pool, token)
        if found is None:
            raise errors.Unauthenticated("unknown, expired or revoked staff token")
        who = found
        via(request, "api")
    request[STAFF] = who  # the audit trail names who was refused, too
    who.require(role)
    return who


def via(request: web.Request, channel: str) -> None:
    """Note how the request was authenticated ("api" or "console"), for the audit trail."""
    with warnings.catch_warnings():  # a plain key: the audit trail reads it by this name
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        request[VIA] = channel


async def console_session(request: web.Request) -> sessions.Session:
    """The console session of the request's cookie (401 when there is none, or it ended), with
    its CSRF header checked for an unsafe method (403)."""
    secret = sessions.cookie_secret(request.cookies.get(sessions.COOKIE))
    if secret is None:
        raise errors.Unauthenticated("sign in to the console: no session")
    cfg = ctx(request).cfg.console
    found = await sessions.authenticate(ctx(request).pool, secret,
                                        timedelta(seconds=cfg.idle_timeout_s))
    if found is None:
        raise errors.Unauthenticated("the console session ended (signed out, expired, idle "
                                     "too long, or its staff token was revoked): sign in again")
    request[STAFF] = found.who  # a refusal for the CSRF header is on the audit trail too
    if request.method not in SAFE_METHODS and not sessions.csrf_matches(
            secret, request.headers.get(sessions.CSRF_HEADER)):
        raise errors.Forbidden(f"a console request that changes something needs the "
                               f"session's {sessions.CSRF_HEADER} header")
    return found


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


class _ServerLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with requests it could not parse (a client's error, 4xx) at
    DEBUG and without a traceback, instead of ERROR with one."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log, demoting a client's malformed request to one DEBUG line."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            del kwargs["exc_info"]
            first_line = "".join((exc.message or "").strip().splitlines()[:1])
            level, msg, args = logging.DEBUG, f"{msg}: %s %s", (*args, exc.code, first_line)
        super().log(level, msg, *args, **kwargs)


# Keyword arguments of aiohttp's connection handler (Application(handler_args=...)).
HANDLER_ARGS: Mapping[str, Any] = {
    "auto_decompress": False,  # read_body decodes, within the body limit
    "logger": _ServerLogger(logging.getLogger("aiohttp.server"), {}),
}
