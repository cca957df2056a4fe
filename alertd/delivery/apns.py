"""APNs sender: token (.p8) or certificate auth, configurable host, per-push timeout, over a
wire (alertd.delivery.wire): libcurl HTTP/2 (apns.transport = "curl") or aioapns ("aioapns")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import aioapns
import jwt
import structlog
from aioapns.common import NotificationRequest, NotificationResult
from aioapns.connection import (
    APNsDevelopmentClientProtocol,
    APNsProductionClientProtocol,
    APNsTLSClientProtocol,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alertd import errors, logs, settings
from alertd.delivery import outcomes, push, services, wire

log = structlog.get_logger(__name__)

# Our dispatcher owns retries; aioapns' own loop (with a 1 s sleep) only bridges a reconnect.
MAX_CONNECTION_ATTEMPTS = 2
# Apple refuses a provider token older than an hour and more than one new token per 20
# minutes: sign a new one every 50 minutes.
PROVIDER_TOKEN_REFRESH_S = 50 * 60
PROVIDER_TOKEN_RETRY_S = 60.0  # after a failed signature (the key file went bad)


class _Protocol(APNsProductionClientProtocol):
    """aioapns' TLS protocol with four gaps closed (see protocol_class)."""

    _window: asyncio.Event | None = None  # set when the peer may have opened the window

    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        # aioapns writes the body without looking at HTTP/2 flow control: once a burst of
        # requests exhausts the connection window (64 KiB, about 90 order payloads), h2
        # raises FlowControlError after the HEADERS went out, so the stream stays open on
        # both ends for the connection's lifetime, and aioapns sleeps 1 s and tries again.
        # Every payload fits in APNS_MAX_PAYLOAD_BYTES (checked when it was built), so waiting
        # for that much room avoids encoding the payload once more just to measure it.
        size = push.APNS_MAX_PAYLOAD_BYTES
        while (self.conn.outbound_flow_control_window < size and self.transport is not None
               and not self.transport.is_closing()):
            if self._window is None:
                self._window = asyncio.Event()
            await self._window.wait()
        try:
            return await super().send_notification(request)
        except asyncio.CancelledError:
            waiting = self.requests.get(request.notification_id)
            if waiting is not None and waiting.cancelled():
                del self.requests[request.notification_id]
            raise

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._wake_senders()  # WINDOW_UPDATE frames may have arrived

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake_senders()

    def _wake_senders(self) -> None:
        if self._window is not None:
            self._window.set()
            self._window = None

    def on_data_received(self, raw_data: bytes, stream_id: int) -> None:
        self.conn.acknowledge_received_data(len(raw_data), stream_id)
        super().on_data_received(raw_data, stream_id)

    def on_stream_ended(self, stream_id: int) -> None:
        self.request_streams.pop(stream_id, None)  # aioapns keeps them after a 200
        super().on_stream_ended(stream_id)


def protocol_class(host: str, port: int, use_sandbox: bool) -> type[APNsTLSClientProtocol]:
    """The aioapns protocol class that dials host:port (Apple's host when host is empty).

    aioapns takes the server address from the class attributes APNS_SERVER / APNS_PORT of
    ``pool.protocol_class``; this is the one place alertd sets them, by subclassing rather
    than patching aioapns. The base class also closes four aioapns gaps: it waits for the
    HTTP/2 flow-control window before sending a body (see send_notification), it hands the
    flow-control window back for error bodies (aioapns never does, so a connection stops
    receiving error reasons after 64 KiB of them and stalls until its idle timer), it
    forgets a request whose caller gave up (timeout), so a late answer cannot hit a
    cancelled future and kill the connection, and it drops the stream bookkeeping of
    successful pushes, which aioapns keeps for the connection's lifetime.
    """
    apple = APNsDevelopmentClientProtocol if use_sandbox else APNsProductionClientProtocol
    server = host or apple.APNS_SERVER
    return type(
        f"AlertdApnsProtocol[{server}:{port}]",
        (_Protocol,),
        {"APNS_SERVER": server, "APNS_PORT": port},
    )


def ssl_context(ca_file: str) -> ssl.SSLContext:
    """TLS context trusting ca_file (or the system store) and offering HTTP/2 by ALPN."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def client(config: settings.Apns) -> aioapns.APNs:
    """An aioapns client for the configured credentials and host; call inside the event loop."""
    missing = services.apns_missing(config)
    if missing:
        raise errors.ConfigError(services.problems_text(missing))
    key: str | None = None
    cert: str | None = None
    if config.key_file:
        key = _read(config.key_file, "apns.key_file")
    else:
        _read(config.cert_file, "apns.cert_file")
        cert = config.cert_file
    apns = aioapns.APNs(
        client_cert=cert,
        key=key,
        key_id=config.key_id if key else None,
        team_id=config.team_id if key else None,
        topic=config.topic,
        max_connections=config.max_connections,
        max_connection_attempts=MAX_CONNECTION_ATTEMPTS,
        use_sandbox=config.use_sandbox,
        ssl_context=ssl_context(config.ca_file),
        err_func=_quiet,  # outcomes are logged by ApnsSender, not by aioapns
    )
    apns.pool.protocol_class = protocol_class(config.host, config.port, config.use_sandbox)
    return apns


async def _quiet(request: NotificationRequest, result: NotificationResult) -> None:
    """Swallow aioapns' own error log line."""


def _read(path: str, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from exc


class ProviderTokens:
    """The APNs provider token (ES256 JWT) of the .p8 key: signed at start, re-signed every
    PROVIDER_TOKEN_REFRESH_S by one background task, and at once when APNs calls the current
    one expired. Every send reads `current`, nothing else signs."""

    def __init__(self, key_pem: str, key_id: str, team_id: str) -> None:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an elliptic-curve key")
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self.current = self._sign()
        self.signed = 1  # tokens signed so far (for tests)
        self._refresh_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _sign(self) -> str:
        return jwt.encode({"iss": self._team_id, "iat": int(time.time())}, self._key,
                          algorithm="ES256", headers={"kid": self._key_id})

    def start(self) -> None:
        """Start the refresher (inside the event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep_fresh(), name="apns-provider-token")

    def expired(self, token: str) -> None:
        """APNs called this token expired: sign another now (once per token)."""
        if token == self.current:
            self._refresh_now.set()

    async def _keep_fresh(self) -> None:
        delay = float(PROVIDER_TOKEN_REFRESH_S)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), delay)
            self._refresh_now.clear()
            try:
                self.current = self._sign()
            except Exception as exc:  # the refresher must outlive any failure
                log.warning("apns_token_failed", error=logs.describe(exc))
                delay = PROVIDER_TOKEN_RETRY_S
            else:
                self.signed += 1
                delay = float(PROVIDER_TOKEN_REFRESH_S)

    async def close(self) -> None:
        """Stop the refresher."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class AioapnsWire:
    """The Wire protocol over aioapns (apns.transport = "aioapns"): APNs requests only.

    The request's apns-* headers and JSON body become an aioapns NotificationRequest; aioapns
    signs its own provider token (an authorization header is ignored); the answer's reason
    comes back as the JSON body APNs sends.
    """

    def __init__(self, apns: aioapns.APNs) -> None:
        self._apns = apns

    async def request(self, method: str, target: str, headers: Mapping[str, str],
                      body: bytes, timeout_s: float) -> wire.Response:
        """See wire.Wire.request (method is POST, target /3/device/<token>)."""
        expiration = headers.get("apns-expiration")
        request = NotificationRequest(
            device_token=target.rpartition("/")[2],
            message=json.loads(body),
            notification_id=headers.get("apns-id"),
            time_to_live=(None if expiration is None
                          else max(int(expiration) - int(time.time()), 0)),
            priority=int(headers.get("apns-priority", "10")),
            collapse_key=headers.get("apns-collapse-id"),
            push_type=aioapns.PushType(headers.get("apns-push-type", "alert")),
        )
        async with asyncio.timeout(timeout_s):
            result = await self._apns.send_notification(request)
        reason = json.dumps({"reason": result.description}).encode() if result.description else b""
        return wire.Response(_status(result.status), {"apns-id": result.notification_id}, reason)

    async def close(self) -> None:
        """See wire.Wire.close."""
        self._apns.pool.close()


def curl_wire(config: settings.Apns, client_cert: str) -> wire.CurlWire:
    """A CurlWire to the configured APNs host: HTTP/2 only, up to max_connections
    connections, each carrying up to concurrency / max_connections streams."""
    apple = APNsDevelopmentClientProtocol if config.use_sandbox else APNsProductionClientProtocol
    host = config.host or apple.APNS_SERVER
    streams = max(math.ceil(config.concurrency / config.max_connections), 1)
    return wire.CurlWire(f"https://{host}:{config.port}", ca_file=config.ca_file,
                         client_cert=client_cert, http2="prior",
                         max_connections=config.max_connections, max_streams=streams)


class ApnsSender:
    """Sends PushMessages to APNs and maps every answer or failure to an Outcome."""

    def __init__(self, config: settings.Apns) -> None:
        self._config = config
        self._wire: wire.Wire | None = None
        self._tokens: ProviderTokens | None = None
        self._path = "/3/device/"

    @property
    def provider_tokens(self) -> ProviderTokens | None:
        """The provider-token refresher of the curl transport with token auth."""
        return self._tokens

    async def start(self) -> None:
        """Load the credentials and build the wire (connections open on first send)."""
        if self._wire is not None:
            return
        if self._config.transport == "aioapns":
            self._wire = AioapnsWire(client(self._config))
            return
        missing = services.apns_missing(self._config)
        if missing:
            raise errors.ConfigError(services.problems_text(missing))
        if self._config.key_file:
            key = _read(self._config.key_file, "apns.key_file")
            try:
                self._tokens = ProviderTokens(key, self._config.key_id, self._config.team_id)
            except (ValueError, TypeError, jwt.PyJWTError) as exc:
                raise errors.ConfigError(
                    f"apns.key_file: {self._config.key_file} is not an ES256 .p8 key: {exc}"
                ) from exc
            self._tokens.start()
            self._wire = curl_wire(self._config, "")
        else:
            _read(self._config.cert_file, "apns.cert_file")
            self._wire = curl_wire(self._config, self._config.cert_file)

    def headers(self, msg: push.PushMessage) -> dict[str, str]:
        """The request headers of one push (apns-expiration is the message's expiry)."""
        headers = {
            "apns-id": msg.apns_id,
            "apns-expiration": str(int(msg.expires_at.timestamp())),
            "apns-priority": str(msg.priority),
            "apns-push-type": "alert",
            "apns-topic": self._config.topic,
        }
        if msg.collapse_id:
            headers["apns-collapse-id"] = msg.collapse_id
        return headers

    async def send(self, msg: push.PushMessage) -> push.Outcome:
        """Send one push and return its outcome; raises only for a bug (the dispatcher's
        send slots bound how many run at once)."""
        if msg.expires_at <= datetime.now(UTC):
            return push.Outcome("failed", reason="expired")
        try:
            body = push.apns_bytes(msg)
        except errors.PayloadTooLarge as exc:
            return push.Outcome("failed", reason=exc.reason)
        if self._wire is None:
            await self.start()
        assert self._wire is not None
        headers = self.headers(msg)
        token = self._tokens.current if self._tokens is not None else ""
        if token:
            headers["authorization"] = f"bearer {token}"
        try:
            # Every wire bounds its own wait by timeout_s (TimeoutError): no timer object of
            # ours per push.
            answer = await self._wire.request("POST", self._path + msg.token, headers, body,
                                              self._config.timeout_s)
        except outcomes.TRANSPORT_ERRORS as exc:  # anything else is a bug: let it be seen
            outcome = outcomes.from_exception(exc)
            _log_unsent("apns_send_error", msg, outcome)
            return outcome
        reason = _reason(answer.body)
        outcome = outcomes.from_apns(answer.status, reason, None)
        if outcome.status == "sent":
            return push.Outcome("sent", provider_id=msg.apns_id)
        if reason == "ExpiredProviderToken" and self._tokens is not None:
            self._tokens.expired(token)
        _log_unsent("apns_not_sent", msg, outcome)
        return outcome

    def paused_for(self) -> float:
        """Seconds the whole service is paused for (APNs has no such signal: always 0)."""
        return 0.0

    async def close(self) -> None:
        """Stop the provider-token refresher and close the connections."""
        if self._tokens is not None:
            await self._tokens.close()
            self._tokens = None
        if self._wire is not None:
            await self._wire.close()
            self._wire = None


def _reason(body: bytes) -> str | None:
    """The reason of an APNs error body ({"reason": ...}), if any."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason if isinstance(reason, str) else None


def _log_unsent(event: str, msg: push.PushMessage, outcome: push.Outcome) -> None:
    log.info(event, delivery_id=msg.delivery_id, token=push.redact_token(msg.token),
             outcome=outcome.status, reason=outcome.reason)


def _status(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return 0
