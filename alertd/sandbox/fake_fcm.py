"""A fake FCM HTTP v1 API with its OAuth2 token endpoint (JWT-bearer grant): HTTP/1.1 on
aiohttp and HTTP/2 (prior knowledge) on alertd.sandbox.h2server, on one port."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from alertd.sandbox import material as mat
from alertd.sandbox.h2server import PREFACE, H2ServerConnection
from alertd.sandbox.recorder import SLOW_S, Recorder, redacted_headers

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_QUOTA = (
    "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' "
    "of service 'fcm.googleapis.com' for consumer 'project_number:100000000001'."
)
_SCRIPTED: dict[str, tuple[int, str, str, str]] = {
    "gone": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "bad": (
        400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "busy": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", _QUOTA),
    "down": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}


def google_error(
    code: int,
    status: str,
    message: str,
    error_code: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    """A Google API error body, with an FcmError and a BadRequest detail when given."""
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR, "errorCode": error_code})
    if field:
        details.append(
            {"@type": BAD_REQUEST, "fieldViolations": [{"field": field, "description": message}]}
        )
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def message_problem(body: Any) -> tuple[str, str] | None:
    """(field, description) of the first thing FCM would refuse in a send request."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        return "message", "Invalid JSON payload received. 'message' is required."
    token = message.get("token")
    if not isinstance(token, str) or not token:
        return "message.token", "The registration token is not a valid FCM registration token"
    data = message.get("data", {})
    if not isinstance(data, dict):
        return "message.data", "Invalid value at 'message.data' (map), expected an object."
    for index, value in enumerate(data.values()):
        if not isinstance(value, str):
            return f"message.data[{index}].value", (
                f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {value!r}"
            )
    android = message.get("android", {})
    if not isinstance(android, dict):
        return "message.android", "Invalid value at 'message.android', expected an object."
    if android.get("priority", "NORMAL") not in ("NORMAL", "HIGH"):
        return "message.android.priority", "Invalid value at 'message.android.priority'."
    ttl = android.get("ttl", "0s")
    if not isinstance(ttl, str) or not _TTL.match(ttl):
        return "message.android.ttl", "Invalid value at 'message.android.ttl' (Duration)."
    return None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the fake answers one request, whichever HTTP version carried it."""

    status: int
    body: Any  # a JSON value
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # slow- tokens: the answer is late, on purpose

    def response(self) -> web.Response:
        """As an aiohttp response (HTTP/1.1)."""
        return web.json_response(self.body, status=self.status, headers=self.headers)


_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")


class FakeFcm:
    """The fake FCM endpoint: issues access tokens, checks them, answers sends; over HTTP/1.1
    (aiohttp) and HTTP/2 with prior knowledge (h2c, as curl speaks it to a plain-http
    endpoint) on the same port."""

    def __init__(self, recorder: Recorder, material: mat.Material, token_ttl_s: int = 3600) -> None:
        self.recorder = recorder
        self.material = material
        self.token_ttl_s = token_ttl_s
        self.tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self.issued = 0
        self.h2_connections: set[FcmH2Connection] = set()
        self.h2_accepted = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    def app(self) -> web.Application:
        """The aiohttp application serving /token and /v1/projects/{p}/messages:send."""
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/token", self.token)
        app.router.add_post("/v1/projects/{project}/messages:send", self.send)
        return app

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port for HTTP/1.1 and HTTP/2 (prior knowledge) alike."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        http1 = self._runner.server
        assert http1 is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Sniffer(lambda: http1(), lambda: FcmH2Connection(self)),
            host, port, backlog=1024, reuse_address=True)

    async def close(self) -> None:
        """Stop listening; close the HTTP/2 connections and the aiohttp server."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.h2_connections):
            connection.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()

    def revoke(self) -> int:
        """Invalidate every access token issued so far."""
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def stats(self) -> dict[str, Any]:
        """Counters for the inspection endpoint."""
        return {"fcm_tokens_issued": self.issued, "fcm_tokens_active": len(self.tokens),
                "fcm_h2_connections": len(self.h2_connections),
                "fcm_h2_connections_accepted": self.h2_accepted}

    async def token(self, request: web.Request) -> web.Response:
        """OAuth2 token endpoint for the JWT-bearer grant of the sandbox service account."""
        form = await request.post()
        grant, assertion = form.get("grant_type"), form.get("assertion")
        return self.token_reply(grant if isinstance(grant, str) else None,
                                assertion if isinstance(assertion, str) else None).response()

    def token_reply(self, grant: str | None, assertion: str | None) -> Reply:
        """The answer to a token request with these form fields."""
        if grant != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant!s:.80}")
        if assertion is None:
            return _oauth_error("invalid_request", "Missing required parameter: assertion")
        problem = self._assertion_problem(assertion)
        if problem is not None:
            return _oauth_error(*problem)
        value = f"ya29.sandbox.{secrets.token_urlsafe(24)}"
        self.tokens[value] = time.monotonic() + self.token_ttl_s
        self.issued += 1
        return Reply(200, {"access_token": value, "expires_in": self.token_ttl_s,
                           "token_type": "Bearer"})

    def _assertion_problem(self, assertion: str) -> tuple[str, str] | None:
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.material.fcm_public_pem,
                algorithms=["RS256"],
                audience=self.material.token_uri,
                issuer=mat.CLIENT_EMAIL,
                leeway=60,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)."
        except jwt.PyJWTError as exc:
            return "invalid_grant", f"Invalid JWT Signature. ({type(exc).__name__})"
        if header.get("kid", self.material.fcm_private_key_id) != self.material.fcm_private_key_id:
            return "invalid_grant", "Invalid JWT Signature. (unknown kid)"
        if claims["exp"] - claims["iat"] > 3600 + 60:
            return "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)."
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & SCOPES:
            return "invalid_scope", "Invalid OAuth scope or ID token audience provided."
        return None

    async def send(self, request: web.Request) -> web.Response:
        """messages:send over HTTP/1.1."""
        reply = self.send_reply(request.match_info["project"], request.headers,
                                await request.read())
        if reply.delay:
            await asyncio.sleep(reply.delay)  # slow- tokens: the answer is late, on purpose
        return reply.response()

    def send_reply(self, project: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """messages:send: check the access token and the body, answer as scripted, record."""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        token = message.get("token") if isinstance(message, dict) else None
        token = token if isinstance(token, str) else ""
        reply = self._answer(project, headers.get("Authorization", ""), body, token)
        self.recorder.record("fcm", token, reply.status, redacted_headers(headers), body)
        return reply

    def _answer(self, project: str, authorization: str, body: Any, token: str) -> Reply:
        if not self._authorized(authorization):
            return Reply(401, google_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED),
                         {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if project != mat.PROJECT_ID:
            text = f"Permission 'cloudmessaging.messages.create' denied on resource '{project}'."
            return Reply(403, google_error(403, "PERMISSION_DENIED", text))
        problem = message_problem(body)
        if problem is not None:
            field_name, text = problem
            return Reply(400, google_error(400, "INVALID_ARGUMENT", text, "INVALID_ARGUMENT",
                                           field_name))
        script = self.recorder.script("fcm", token)
        if script in ("ok", "slow"):
            name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{next(self._ids):x}"
            return Reply(200, {"name": name}, delay=SLOW_S if script == "slow" else 0.0)
        code, status, error_code, text = _SCRIPTED[script]
        headers = {"Retry-After": "1"} if script == "busy" else {}
        return Reply(code, google_error(code, status, text, error_code), headers)

    def _authorized(self, authorization: str) -> bool:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        expiry = self.tokens.get(value)
        return expiry is not None and expiry > time.monotonic()

    def h2_reply(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """The routes of app() for a request that came over HTTP/2."""
        send = _SEND_PATH.match(path)
        if path != "/token" and send is None:
            return Reply(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                         "message": f"No route for {path[:80]}"}})
        if method != "POST":
            return Reply(405, {"error": {"code": 405, "status": "METHOD_NOT_ALLOWED",
                                         "message": f"{method[:16]} is not allowed"}})
        if len(body) > 1 << 20:
            return Reply(413, {"error": {"code": 413, "message": "Request body too large"}})
        if send is None:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            return self.token_reply(form.get("grant_type", [None])[0],
                                    form.get("assertion", [None])[0])
        return self.send_reply(send.group(1), headers, body)


class _Headers(dict[str, str]):
    """Request headers by lower-case name, read case-insensitively like aiohttp's."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


class FcmH2Connection(H2ServerConnection):
    """One HTTP/2 connection to the fake FCM (h2c: HTTP/2 over plain TCP by prior knowledge)."""

    def __init__(self, fake: FakeFcm) -> None:
        super().__init__()
        self._fake = fake

    def on_open(self) -> None:
        self._fake.h2_connections.add(self)
        self._fake.h2_accepted += 1

    def on_close(self) -> None:
        self._fake.h2_connections.discard(self)

    def on_request(self, stream_id: int, fields: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers = _Headers()
        method = path = ""
        for name, value in fields:
            if name == b":method":
                method = value.decode("latin-1")
            elif name == b":path":
                path = value.decode("utf-8", "replace")
            elif name == b":authority":
                headers["host"] = value.decode("latin-1")
            elif name[:1] != b":":
                headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace")
        reply = self._fake.h2_reply(method, path, headers, body)
        if reply.delay:
            asyncio.get_running_loop().call_later(reply.delay, self._reply, stream_id, reply)
        else:
            self._reply(stream_id, reply)

    def _reply(self, stream_id: int, reply: Reply) -> None:
        fields = [(b"content-type", b"application/json; charset=utf-8")]
        fields += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        self.respond(stream_id, reply.status, fields, json.dumps(reply.body).encode())


class _Sniffer(asyncio.Protocol):
    """Reads the first bytes of a connection, then hands it to the HTTP/2 connection (the
    client preface) or to aiohttp's HTTP/1.1 protocol (anything else)."""

    def __init__(self, http1: Callable[[], asyncio.Protocol],
                 http2: Callable[[], asyncio.Protocol]) -> None:
        self._http1 = http1
        self._http2 = http2
        self._transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._head += data
        size = min(len(self._head), len(PREFACE))
        if self._head[:size] == PREFACE[:size] and size < len(PREFACE):
            return  # perhaps the preface: wait for the rest of it
        protocol = self._http2() if self._head.startswith(PREFACE) else self._http1()
        assert self._transport is not None
        self._transport.set_protocol(protocol)
        protocol.connection_made(self._transport)
        protocol.data_received(self._head)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def _oauth_error(error: str, description: str) -> Reply:
    return Reply(400, {"error": error, "error_description": description})
