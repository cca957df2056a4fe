"""FCM HTTP v1 sender over a wire (alertd.delivery.wire: libcurl, HTTP/2 over https, with
fcm.transport = "curl"; aiohttp with "aiohttp"), and the refresher that keeps its OAuth2
access token fresh."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import google.auth.crypt
import google.auth.jwt
import structlog

from alertd import backoff, errors, logs, settings
from alertd.delivery import outcomes, push, services, wire

log = structlog.get_logger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_AT = 0.8  # refresh once 80% of an access token's lifetime has passed
REFRESH_RETRY_S = (1.0, 30.0)  # back-off bounds while the token endpoint fails
ASSERTION_TTL_S = 3600


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The fields of a Google service-account file that the sender needs."""

    project_id: str
    client_email: str
    token_uri: str
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An OAuth2 access token and when (time.monotonic) it should be replaced."""

    value: str
    refresh_at: float
    expires_at: float


def load_service_account(path: str) -> ServiceAccount:
    """Read and check a service-account JSON file."""
    if not path:
        raise errors.ConfigError(services.problems_text(["fcm.service_account_file"]))
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise errors.ConfigError(
            f"fcm.service_account_file: cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise errors.ConfigError(
            f"fcm.service_account_file: {path} is not JSON: {exc}") from exc
    fields = ("project_id", "client_email", "token_uri", "private_key")
    if not isinstance(info, dict) or not all(isinstance(info.get(f), str) for f in fields):
        raise errors.ConfigError(f"fcm.service_account_file: {path} is not a service-account "
                                 f"file (it needs {', '.join(fields)})")
    return ServiceAccount(info["project_id"], info["client_email"], info["token_uri"], info)


def assertion(account: ServiceAccount, now: float) -> str:
    """The signed RS256 JWT that the jwt-bearer grant exchanges for an access token."""
    # google-auth ships these two without annotations.
    signer = google.auth.crypt.RSASigner.from_service_account_info(  # type: ignore[no-untyped-call]
        account.info
    )
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": int(now),
        "exp": int(now) + ASSERTION_TTL_S,
    }
    token: bytes = google.auth.jwt.encode(signer, claims)  # type: ignore[no-untyped-call]
    return token.decode()


class AccessTokens:
    """Keeps an OAuth2 access token of a service account fresh, in one background task.

    It fetches a token (jwt-bearer grant), replaces it once REFRESH_AT of its lifetime has
    passed, retries with back-off while the token endpoint fails, and fetches a new one at once
    when a send reports the current one rejected.
    """

    def __init__(self, account: ServiceAccount, transport: wire.Wire, timeout_s: float) -> None:
        self._account = account
        self._wire = transport
        self._timeout_s = timeout_s
        self._token: AccessToken | None = None
        self._ready = asyncio.Event()  # set while _token holds a token
        self._refresh_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> AccessToken | None:
        """The token held now, if any."""
        return self._token

    async def start(self, timeout_s: float) -> bool:
        """Start the refresher and wait up to timeout_s for the first token; True once held."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep_fresh(), name="fcm-token")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def usable(self) -> AccessToken:
        """A token that has not expired, waiting for the refresher while there is none."""
        token = self._token
        while token is None or token.expires_at <= time.monotonic():
            if token is not None:
                self.rejected(token)  # the refresher is late; ask it now
            await self._ready.wait()
            token = self._token
        return token

    def rejected(self, token: AccessToken) -> None:
        """The service refused this token: fetch another one now."""
        if self._token is token:  # only the first refusal of a token asks for a new one
            self._token = None
            self._ready.clear()
            self._refresh_now.set()

    async def close(self) -> None:
        """Stop the refresher."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _keep_fresh(self) -> None:
        failures = 0
        while True:
            try:
                self._token = await self._fetch()
            except Exception as exc:  # the refresher must outlive any failure
                failures += 1
                delay = backoff.delay(failures, *REFRESH_RETRY_S)
                log.warning("fcm_token_failed", error=logs.describe(exc), retry_in=delay)
            else:
                failures = 0
                self._ready.set()
                delay = self._token.refresh_at - time.monotonic()
            self._refresh_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), max(delay, 0.0))

    async def _fetch(self) -> AccessToken:
        form = {"grant_type": JWT_BEARER, "assertion": assertion(self._account, time.time())}
        started = time.monotonic()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        async with asyncio.timeout(self._timeout_s):
            answer = await self._wire.request("POST", self._account.token_uri, headers,
                                              urlencode(form).encode(), self._timeout_s)
        body = _json(answer.body)
        if answer.status != 200 or body is None:
            raise ValueError(f"token endpoint answered {answer.status}")
        lifetime = float(body.get("expires_in", 3600))
        value = body["access_token"]
        if not isinstance(value, str):
            raise ValueError("token endpoint gave no access_token")
        log.info("fcm_token_fetched", expires_in=lifetime)
        return AccessToken(value, started + lifetime * REFRESH_AT, started + lifetime)


class FcmSender:
    """Sends PushMessages through FCM HTTP v1 and maps every answer to an Outcome."""

    def __init__(self, config: settings.Fcm) -> None:
        self._config = config
        self._wire: wire.Wire | None = None
        self._tokens: AccessTokens | None = None
        self._path = ""
        self._closed = asyncio.Event()
        self._paused_until = 0.0  # time.monotonic() before which no send starts

    @property
    def access_token(self) -> str | None:
        """The current access token, if any (for tests and diagnostics)."""
        token = self._tokens.current if self._tokens else None
        return token.value if token else None

    def paused_for(self) -> float:
        """Seconds left in a quota pause (0 when not paused)."""
        return max(self._paused_until - time.monotonic(), 0.0)

    async def start(self) -> None:
        """Load the service account, open the wire, fetch the first access token."""
        if self._wire is not None:
            return
        account = load_service_account(self._config.service_account_file)
        project = self._config.project_id or account.project_id
        self._path = f"/v1/projects/{project}/messages:send"
        endpoint = self._config.endpoint.rstrip("/")
        # Sized for the dispatcher's send slots (which are the limit) and one more, so a token
        # refresh never queues behind sends: HTTP/1.1 needs a connection per request in
        # flight; over HTTP/2 they multiplex on the first one.
        connections = self._config.concurrency + 1
        if self._config.transport == "aiohttp":
            self._wire = wire.AiohttpWire(endpoint, connections=connections)
        else:
            http2 = "prior" if self._config.cleartext_http2 else "tls"
            self._wire = wire.CurlWire(endpoint, http2=http2, max_connections=connections,
                                       max_streams=connections)
        self._tokens = AccessTokens(account, self._wire, self._config.timeout_s)
        if not await self._tokens.start(self._config.timeout_s):
            log.warning("fcm_token_not_ready", timeout_s=self._config.timeout_s)

    async def send(self, msg: push.PushMessage) -> push.Outcome:
        """Send one push and return its outcome; raises only for a bug (the dispatcher's
        send slots bound how many run at once)."""
        now = datetime.now(UTC)
        if msg.expires_at <= now:
            return push.Outcome("failed", reason="expired")
        if self._closed.is_set():
            return push.Outcome("retry", reason="sender closed")
        if self._wire is None:
            await self.start()
        if self._paused_until and not await self._wait_out_pause():
            return push.Outcome("retry", reason="sender closed")
        try:
            return await self._post(msg, now)
        except outcomes.TRANSPORT_ERRORS as exc:  # anything else is a bug: let it be seen
            outcome = outcomes.from_exception(exc)
            log.warning("fcm_send_error", delivery_id=msg.delivery_id,
                        token=push.redact_token(msg.token), reason=outcome.reason)
            return outcome

    async def _wait_out_pause(self) -> bool:
        """Wait while a quota pause lasts; False if the sender closed meanwhile."""
        while (left := self.paused_for()) > 0 and not self._closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), left)
        return not self._closed.is_set()

    async def _post(self, msg: push.PushMessage, now: datetime) -> push.Outcome:
        assert self._wire is not None and self._tokens is not None
        try:
            body = push.fcm_bytes(msg, now)
        except errors.PayloadTooLarge as exc:
            return push.Outcome("failed", reason=exc.reason)
        timeout_s = self._config.timeout_s
        token = self._tokens.current
        if token is None or token.expires_at <= time.monotonic():
            # Rare: no usable token yet. Waiting for one counts against timeout_s; the wire
            # bounds its own wait by the rest (no timer object of ours on the common path).
            started = time.monotonic()
            async with asyncio.timeout(timeout_s):
                token = await self._tokens.usable()
            timeout_s -= time.monotonic() - started
            if timeout_s <= 0:
                raise TimeoutError("no FCM access token within timeout_s")
        headers = {
            "Authorization": f"Bearer {token.value}",
            "Content-Type": "application/json; charset=utf-8",
        }
        answer = await self._wire.request("POST", self._path, headers, body, timeout_s)
        status = answer.status
        if 200 <= status < 300:  # the common case: no Retry-After to read
            return outcomes.from_fcm(status, _json(answer.body), None)
        retry_after = outcomes.parse_retry_after(
            answer.headers.get("Retry-After"), datetime.now(UTC))
        outcome = outcomes.from_fcm(status, _json(answer.body), retry_after)
        if status == 401:
            self._tokens.rejected(token)
        if outcome.pause_service:
            self._pause(outcome.retry_after or outcomes.QUOTA_DEFAULT_PAUSE_S)
        if outcome.status != "sent":
            log.info("fcm_not_sent", delivery_id=msg.delivery_id, outcome=outcome.status,
                     reason=outcome.reason, token=push.redact_token(msg.token))
        return outcome

    def _pause(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self._paused_until:
            self._paused_until = until
            log.warning("fcm_paused", seconds=seconds)

    async def close(self) -> None:
        """Stop the token refresher and close the connections."""
        self._closed.set()
        if self._tokens is not None:
            await self._tokens.close()
            self._tokens = None
        if self._wire is not None:
            await self._wire.close()
            self._wire = None


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
