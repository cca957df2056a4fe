"""A fake APNs provider API: HTTP/2 over TLS on asyncio + h2, answering the way Apple does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import jwt

from alertd.sandbox import material as mat
from alertd.sandbox.recorder import REDACTED, SLOW_S, Recorder

MAX_CONCURRENT_STREAMS = 1000
MAX_PAYLOAD_BYTES = 4096
JWT_MAX_AGE_S = 3600  # Apple refuses provider tokens older than one hour
PUSH_TYPES = frozenset(
    {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm",
     "liveactivity", "pushtotalk"}
)
_H2_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding=None,
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
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


class _Stream:
    __slots__ = ("body", "headers")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.body = bytearray()


class ApnsConnection(asyncio.Protocol):
    """One client connection: many concurrent streams, flow control, abrupt closes."""

    def __init__(self, fake: FakeApns) -> None:
        self._fake = fake
        self._conn = h2.connection.H2Connection(config=_H2_CONFIG)
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._pending: dict[int, bytes] = {}  # response bodies waiting for window
        self._cert_auth = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._cert_auth = bool(transport.get_extra_info("peercert"))
        self._fake.connections.add(self)
        self._fake.accepted += 1
        self._conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self._conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fake.connections.discard(self)
        self._streams.clear()
        self._pending.clear()
        self._transport = None

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close the transport."""
        if self._transport is not None:
            self._conn.close_connection()
            self._flush()
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()  # h2 queued a GOAWAY explaining the error
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            self._handle(event)
        self._flush()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived) and event.stream_id:
            # A header-only request is answered on the StreamEnded event that h2 also emits.
            self._streams[event.stream_id] = _Stream(list(event.headers or ()))
        elif isinstance(event, h2.events.DataReceived) and event.stream_id:
            stream = self._streams.get(event.stream_id)
            if stream is not None and event.data:
                stream.body += event.data
            self._conn.acknowledge_received_data(
                event.flow_controlled_length or 0, event.stream_id
            )
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id:
            self._respond(event.stream_id)
        elif isinstance(event, h2.events.StreamReset) and event.stream_id:
            self._streams.pop(event.stream_id, None)
            self._pending.pop(event.stream_id, None)
        elif isinstance(event, h2.events.WindowUpdated):
            self._send_pending()
        elif isinstance(event, h2.events.ConnectionTerminated) and self._transport:
            self._transport.close()

    def _respond(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        pseudo: dict[bytes, bytes] = {}
        headers: dict[str, str] = {}
        for name, value in stream.headers:
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                headers[name.decode("latin-1").lower()] = value.decode("utf-8", "replace")
        try:
            answer = self._fake.judge(pseudo, headers, bytes(stream.body), self._cert_auth)
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
        if self._transport is not None:
            self._reply(stream_id, answer, apns_id)
            self._flush()

    def _reply(self, stream_id: int, answer: Answer, apns_id: str) -> None:
        reply = [(b":status", str(answer.status).encode()), (b"apns-id", apns_id.encode())]
        try:
            if answer.status == 200:
                self._conn.send_headers(stream_id, reply, end_stream=True)
                return
            body = _error_body(answer)
            reply.append((b"content-type", b"application/json"))
            self._conn.send_headers(stream_id, reply)
            self._pending[stream_id] = body
            self._send_pending()
        except h2.exceptions.ProtocolError:  # the client reset the stream or went away
            self._pending.pop(stream_id, None)

    def _send_pending(self) -> None:
        for stream_id, body in list(self._pending.items()):
            try:
                if self._conn.local_flow_control_window(stream_id) < len(body):
                    continue  # wait for the client's WINDOW_UPDATE
                self._conn.send_data(stream_id, body, end_stream=True)
            except h2.exceptions.ProtocolError:  # includes closed streams and flow control
                pass
            del self._pending[stream_id]

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


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
