"""A fake FCM HTTP v1 API with its OAuth2 token endpoint (JWT-bearer grant), on aiohttp."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from typing import Any

import jwt
from aiohttp import web

from alertd.sandbox import material as mat
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


class FakeFcm:
    """The fake FCM endpoint: issues access tokens, checks them, answers sends."""

    def __init__(self, recorder: Recorder, material: mat.Material, token_ttl_s: int = 3600) -> None:
        self.recorder = recorder
        self.material = material
        self.token_ttl_s = token_ttl_s
        self.tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self.issued = 0
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        """The aiohttp application serving /token and /v1/projects/{p}/messages:send."""
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/token", self.token)
        app.router.add_post("/v1/projects/{project}/messages:send", self.send)
        return app

    def revoke(self) -> int:
        """Invalidate every access token issued so far."""
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def stats(self) -> dict[str, Any]:
        """Counters for the inspection endpoint."""
        return {"fcm_tokens_issued": self.issued, "fcm_tokens_active": len(self.tokens)}

    async def token(self, request: web.Request) -> web.Response:
        """OAuth2 token endpoint for the JWT-bearer grant of the sandbox service account."""
        form = await request.post()
        grant = form.get("grant_type")
        if grant != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant!s:.80}")
        assertion = form.get("assertion")
        if not isinstance(assertion, str):
            return _oauth_error("invalid_request", "Missing required parameter: assertion")
        problem = self._assertion_problem(assertion)
        if problem is not None:
            return _oauth_error(*problem)
        value = f"ya29.sandbox.{secrets.token_urlsafe(24)}"
        self.tokens[value] = time.monotonic() + self.token_ttl_s
        self.issued += 1
        return web.json_response(
            {"access_token": value, "expires_in": self.token_ttl_s, "token_type": "Bearer"}
        )

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
        """messages:send: check the access token and the body, then answer as scripted."""
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        token = message.get("token") if isinstance(message, dict) else None
        response, delay = self._answer(request, body, token if isinstance(token, str) else "")
        self.recorder.record(
            "fcm",
            token if isinstance(token, str) else "",
            response.status,
            redacted_headers(request.headers),
            body,
        )
        if delay:
            await asyncio.sleep(delay)  # slow- tokens: the answer is late, on purpose
        return response

    def _answer(
        self, request: web.Request, body: Any, token: str
    ) -> tuple[web.Response, float]:
        if not self._authorized(request.headers.get("Authorization", "")):
            return web.json_response(
                google_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED),
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            ), 0.0
        project = request.match_info["project"]
        if project != mat.PROJECT_ID:
            text = f"Permission 'cloudmessaging.messages.create' denied on resource '{project}'."
            return web.json_response(google_error(403, "PERMISSION_DENIED", text), status=403), 0.0
        problem = message_problem(body)
        if problem is not None:
            field, text = problem
            error = google_error(400, "INVALID_ARGUMENT", text, "INVALID_ARGUMENT", field)
            return web.json_response(error, status=400), 0.0
        script = self.recorder.script("fcm", token)
        if script in ("ok", "slow"):
            name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{next(self._ids):x}"
            return web.json_response({"name": name}), SLOW_S if script == "slow" else 0.0
        code, status, error_code, text = _SCRIPTED[script]
        headers = {"Retry-After": "1"} if script == "busy" else None
        error = google_error(code, status, text, error_code)
        return web.json_response(error, status=code, headers=headers), 0.0

    def _authorized(self, authorization: str) -> bool:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        expiry = self.tokens.get(value)
        return expiry is not None and expiry > time.monotonic()


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)
