"""APNs sender on aioapns: token (.p8) or certificate auth, configurable host, per-push timeout."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

import aioapns
import structlog
from aioapns.common import NotificationRequest, NotificationResult
from aioapns.connection import (
    APNsDevelopmentClientProtocol,
    APNsProductionClientProtocol,
    APNsTLSClientProtocol,
)

from alertd import errors, settings
from alertd.delivery import outcomes, push, services

log = structlog.get_logger(__name__)

# Our dispatcher owns retries; aioapns' own loop (with a 1 s sleep) only bridges a reconnect.
MAX_CONNECTION_ATTEMPTS = 2


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


def request_for(
    msg: push.PushMessage, payload: dict[str, object], now: float
) -> NotificationRequest:
    """The aioapns request for a message; apns-expiration becomes int(now) + ttl = the expiry."""
    return NotificationRequest(
        device_token=msg.token,
        message=payload,
        notification_id=msg.apns_id,
        time_to_live=max(int(msg.expires_at.timestamp()) - int(now), 0),
        priority=msg.priority,
        collapse_key=msg.collapse_id,
        push_type=aioapns.PushType.ALERT,
    )


class ApnsSender:
    """Sends PushMessages to APNs and maps every answer or failure to an Outcome."""

    def __init__(self, config: settings.Apns) -> None:
        self._config = config
        self._client: aioapns.APNs | None = None

    async def start(self) -> None:
        """Load the credentials and build the client (connections open on first send)."""
        if self._client is None:
            self._client = client(self._config)

    async def send(self, msg: push.PushMessage) -> push.Outcome:
        """Send one push and return its outcome; raises only for a bug (the dispatcher's
        send slots bound how many run at once)."""
        if msg.expires_at <= datetime.now(UTC):
            return push.Outcome("failed", reason="expired")
        try:
            payload = push.apns_payload(msg)
        except errors.PayloadTooLarge as exc:
            return push.Outcome("failed", reason=exc.reason)
        await self.start()
        assert self._client is not None
        request = request_for(msg, payload, time.time())
        try:
            # asyncio.timeout, not wait_for: no extra task per push on the hot path.
            async with asyncio.timeout(self._config.timeout_s):
                result = await self._client.send_notification(request)
        except outcomes.TRANSPORT_ERRORS as exc:  # anything else is a bug: let it be seen
            outcome = outcomes.from_exception(exc)
            _log_unsent("apns_send_error", msg, outcome)
            return outcome
        outcome = outcomes.from_apns(_status(result.status), result.description, None)
        if outcome.status == "sent":
            return push.Outcome("sent", provider_id=result.notification_id)
        _log_unsent("apns_not_sent", msg, outcome)
        return outcome

    def paused_for(self) -> float:
        """Seconds the whole service is paused for (APNs has no such signal: always 0)."""
        return 0.0

    async def close(self) -> None:
        """Close the APNs connections."""
        if self._client is not None:
            self._client.pool.close()
            self._client = None


def _log_unsent(event: str, msg: push.PushMessage, outcome: push.Outcome) -> None:
    log.info(event, delivery_id=msg.delivery_id, token=push.redact_token(msg.token),
             outcome=outcome.status, reason=outcome.reason)


def _status(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return 0
