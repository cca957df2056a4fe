"""A fake APNs provider API: HTTP/2 over TLS on asyncio (alertd.sandbox.h2server), answering
the way Apple does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from alertd.sandbox import material as mat
from alertd.sandbox.h2server import H2ServerConnection
from alertd.sandbox.recorder import REDACTED, SLOW_S, Recorder

MAX_CONCURRENT_STREAMS = 1000
MAX_PAYLOAD_BYTES = 4096
JWT_MAX_AGE_S = 3600  # Apple refuses provider tokens older than one hour
PUSH_TYPES = frozenset(
    {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm",
     "liveactivity", "pushtotalk"}
)


@dataclass(frozen=True, slots=True)
class Answer:
    """The fake's verdict on one request."""

    status: int
    reason: str = ""
    token: str = ""
    payload: Any = None
    delay: float = 0.0


class JwtVerifier:
    """Checks provider JWTs (ES256, kid, iss) once per distinct token string."""

    def __init__(self, public_pem: bytes, key_id: str, team_id: str) -> None:
        self._key = public_pem
        self._key_id = key_id
        self._team_id = team_id
        self._seen: dict[str, int | str] = {}  # token -> iat, or the reason it was refused
        self.verified = 0

    def problem(self, authorization: str | None) -> str | None:
        """The APNs reason refusing this authorization header, or None when it is valid."""
        if not authorization:
            return "MissingProviderToken"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "InvalidProviderToken"
        known = self._seen.get(token)
        if known is None:
            if len(self._seen) > 10_000:
                self._seen.clear()
            known = self._seen[token] = self._verify(token)
        if isinstance(known, str):
            return known
        return "ExpiredProviderToken" if time.time() - known > JWT_MAX_AGE_S else None

    def _verify(self, token: str) -> int | str:
        self.verified += 1
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["ES256"],
                leeway=60,
                options={"verify_exp": False, "require": ["iat", "iss"]},
            )
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        if header.get("kid") != self._key_id or claims.get("iss") != self._team_id:
            return "InvalidProviderToken"
        iat = claims.get("iat")
        return iat if isinstance(iat, int) else "InvalidProviderToken"


def judge(
    pseudo: dict[bytes, bytes],
    headers: dict[str, str],
    body: bytes,
    auth_problem: str | None,
    recorder: Recorder,
) -> Answer:
    """Decide the status and reason for one request the way APNs would."""
    path = pseudo.get(b":path", b"").decode("utf-8", "replace")
    token = path[len("/3/device/"):] if path.startswith("/3/device/") else ""
    payload = _parse(body)
    if pseudo.get(b":method") != b"POST":
        return Answer(405, "MethodNotAllowed", token, payload)
    if not path.startswith("/3/device/"):
        return Answer(404, "BadPath", token, payload)
    if not token:
        return Answer(400, "MissingDeviceToken", token, payload)
    problem = auth_problem or _header_problem(headers)
    if problem is None:
        if not body:
            problem = "PayloadEmpty"
        elif len(body) > MAX_PAYLOAD_BYTES:
            return Answer(413, "PayloadTooLarge", token, payload)
        elif not isinstance(payload, dict):
            problem = "BadPayload"
    if problem is not None:
        status = 403 if problem.endswith("ProviderToken") else 400
        return Answer(status, problem, token, payload)
    script = recorder.script("apns", token)
    status, reason = _SCRIPTED[script]
    return Answer(status, reason, token, payload, SLOW_S if script == "slow" else 0.0)


_SCRIPTED: dict[str, tuple[int, str]] = {
    "ok": (200, ""),
    "slow": (200, ""),
    "gone": (410, "Unregistered"),
    "bad": (400, "BadDeviceToken"),
    "busy": (429, "TooManyRequests"),
    "down": (503, "ServiceUnavailable"),
}


def _header_problem(headers: dict[str, str]) -> str | None:
    topic = headers.get("apns-topic")
    if not topic:
        return "MissingTopic"
    if topic != mat.TOPIC:
        return "TopicDisallowed"
    if headers.get("apns-push-type", "alert") not in PUSH_TYPES:
        return "InvalidPushType"
    if headers.get("apns-priority", "10") not in ("1", "5", "10"):
        return "BadPriority"
    if not headers.get("apns-expiration", "0").isdigit():
        return "BadExpirationDate"
    if len(headers.get("apns-collapse-id", "").encode()) > 64:
        return "BadCollapseId"
    if "apns-id" in headers and not _is_uuid(headers["apns-id"]):
        return "BadMessageId"
    return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class ApnsConnection(H2ServerConnection):
    """One client connection: many concurrent streams, flow control, abrupt closes."""

    max_concurrent_streams = MAX_CONCURRENT_STREAMS

    def __init__(self, fake: FakeApns) -> None:
        super().__init__()
        self._fake = fake
        self._cert_auth = False

    def on_open(self) -> None:
        assert self.transport is not None
        self._cert_auth = bool(self.transport.get_extra_info("peercert"))
        self._fake.connections.add(self)
        self._fake.accepted += 1

    def on_close(self) -> None:
        self._fake.connections.discard(self)

    def on_request(self, stream_id: int, fields: list[tuple[bytes, bytes]], body: bytes) -> None:
        pseudo: dict[bytes, bytes] = {}
        headers: dict[str, str] = {}
        for name, value in fields:
            if name[:1] == b":":
                pseudo[name] = value
            else:
                headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace")
        try:
            answer = self._fake.judge(pseudo, headers, body, self._cert_auth)
        except Exception:  # a bug here must not take the connection down
            answer = Answer(500, "InternalServerError")
        if "authorization" in headers:
            headers["authorization"] = REDACTED
        self._fake.recorder.record("apns", answer.token, answer.status, headers, answer.payload)
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        if answer.delay:
            self._fake.delayed += 1
            asyncio.get_running_loop().call_later(
                answer.delay, self._reply_late, stream_id, answer, apns_id
            )
        else:
            self._reply(stream_id, answer, apns_id)

    def _reply_late(self, stream_id: int, answer: Answer, apns_id: str) -> None:
        self._fake.delayed -= 1
        self._reply(stream_id, answer, apns_id)

    def _reply(self, stream_id: int, answer: Answer, apns_id: str) -> None:
        if answer.status == 200:
            self.respond(stream_id, 200, [(b"apns-id", apns_id.encode())])
        else:
            self.respond(stream_id, answer.status,
                         [(b"apns-id", apns_id.encode()), (b"content-type", b"application/json")],
                         _error_body(answer))


def _error_body(answer: Answer) -> bytes:
    body: dict[str, Any] = {"reason": answer.reason}
    if answer.status == 410:
        body["timestamp"] = int(time.time() * 1000)
    return json.dumps(body).encode()


class FakeApns:
    """The fake APNs server: its JWT verifier, its connections and its listening socket."""

    def __init__(self, recorder: Recorder, material: mat.Material) -> None:
        self.recorder = recorder
        self.material = material
        self.verifier = JwtVerifier(material.apns_public_pem, material.apns_key_id, mat.TEAM_ID)
        self.connections: set[ApnsConnection] = set()
        self.accepted = 0
        self.delayed = 0  # slow- answers not sent yet
        self._server: asyncio.Server | None = None

    def judge(
        self, pseudo: dict[bytes, bytes], headers: dict[str, str], body: bytes, cert_auth: bool
    ) -> Answer:
        """Judge one request; certificate-authenticated connections need no JWT."""
        authorization = headers.get("authorization")
        problem = None if cert_auth and not authorization else self.verifier.problem(authorization)
        return judge(pseudo, headers, body, problem, self.recorder)

    async def start(self, host: str, port: int) -> None:
        """Listen for TLS connections on host:port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ApnsConnection(self),
            host,
            port,
            ssl=mat.server_ssl_context(self.material),
            backlog=1024,
            reuse_address=True,
        )

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()

    def stats(self) -> dict[str, Any]:
        """Counters for the inspection endpoint."""
        return {
            "apns_connections": len(self.connections),
            "apns_connections_accepted": self.accepted,
            "apns_jwts_verified": self.verifier.verified,
            "apns_delayed": self.delayed,
        }
