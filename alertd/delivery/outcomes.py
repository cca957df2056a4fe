"""Pure mapping of APNs and FCM answers (and transport failures) to delivery outcomes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aioapns.exceptions
import aiohttp
import h2.exceptions

from alertd import logs
from alertd.delivery.push import Outcome

# APNs reasons that mean the device token will never work again for our topic.
APNS_INVALID_TOKEN_REASONS = frozenset(
    {"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"}
)
# The provider JWT is refreshed by aioapns; the push itself can be tried again.
APNS_RETRY_REASONS = frozenset(
    {
        "InvalidProviderToken",
        "ExpiredProviderToken",
        "TooManyProviderTokenUpdates",
        "TooManyRequests",
        "IdleTimeout",
        "InternalServerError",
        "ServiceUnavailable",
        "Shutdown",
    }
)

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
FCM_INVALID_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
FCM_RETRY_CODES = frozenset({"UNAVAILABLE", "INTERNAL", "UNAUTHENTICATED"})
# FCM asks for at least a minute of back-off when it names no Retry-After.
QUOTA_DEFAULT_PAUSE_S = 60.0
MAX_REASON_CHARS = 200

# What a send raises for network or provider-connection trouble (senders catch only these;
# anything else is a bug, which the dispatcher logs with its traceback and retries).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes TimeoutError and ConnectionError
    aiohttp.ClientError,
    aioapns.exceptions.ConnectionError,
    aioapns.exceptions.ConnectionClosed,
    aioapns.exceptions.MaxAttemptsExceeded,
    h2.exceptions.H2Error,
)


@dataclass(frozen=True, slots=True)
class FcmError:
    """The parts of a Google API error body that decide an outcome."""

    status: str
    code: str
    message: str
    token_field: bool


def from_apns(status: int, reason: str | None, retry_after: float | None) -> Outcome:
    """The outcome of one APNs answer (HTTP status and the reason from its JSON body)."""
    why = reason or ""
    if status == 200:
        return Outcome("sent")
    if status == 410 or why in APNS_INVALID_TOKEN_REASONS:
        return Outcome("invalid_token", reason=why or "Unregistered")
    if status == 429 or status >= 500 or why in APNS_RETRY_REASONS:
        return Outcome("retry", reason=why or f"HTTP {status}", retry_after=retry_after)
    return Outcome("failed", reason=why or f"HTTP {status}")


def parse_fcm_error(body: Mapping[str, Any] | None) -> FcmError | None:
    """The FcmError errorCode, canonical status and token hints of an FCM error body."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if not isinstance(error, Mapping):
        return None
    code = ""
    token_field = False
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, Mapping):
            continue
        kind = detail.get("@type")
        if kind == FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
            code = detail["errorCode"]
        elif kind == BAD_REQUEST_TYPE:
            token_field = token_field or _names_token_field(detail.get("fieldViolations"))
    message = error.get("message")
    text = message if isinstance(message, str) else ""
    if "registration token" in text.lower():
        token_field = True
    status = error.get("status")
    return FcmError(
        status=status if isinstance(status, str) else "",
        code=code,
        message=text,
        token_field=token_field,
    )


def _names_token_field(violations: object) -> bool:
    if not isinstance(violations, list):
        return False
    return any(
        isinstance(v, Mapping) and str(v.get("field", "")).startswith("message.token")
        for v in violations
    )


def from_fcm(status: int, body: Mapping[str, Any] | None, retry_after: float | None) -> Outcome:
    """The outcome of one FCM HTTP v1 answer (HTTP status and parsed JSON body)."""
    if 200 <= status < 300:
        name = body.get("name") if isinstance(body, Mapping) else None
        return Outcome("sent", provider_id=name if isinstance(name, str) else None)
    error = parse_fcm_error(body)
    code = error.code if error else ""
    canonical = error.status if error else ""
    reason = _fcm_reason(status, error)
    if code in FCM_INVALID_TOKEN_CODES:
        return Outcome("invalid_token", reason=reason)
    if code == "INVALID_ARGUMENT" or canonical == "INVALID_ARGUMENT":
        if error is not None and error.token_field:
            return Outcome("invalid_token", reason=reason)
        return Outcome("failed", reason=reason)
    if code == "QUOTA_EXCEEDED":
        wait = retry_after if retry_after is not None else QUOTA_DEFAULT_PAUSE_S
        return Outcome("retry", reason=reason, retry_after=wait, pause_service=True)
    if code == "THIRD_PARTY_AUTH_ERROR":
        return Outcome("failed", reason=reason)
    if code in FCM_RETRY_CODES or status in (401, 429) or status >= 500:
        return Outcome("retry", reason=reason, retry_after=retry_after)
    return Outcome("failed", reason=reason)


def _fcm_reason(status: int, error: FcmError | None) -> str:
    if error is None:
        return f"HTTP {status}"
    label = error.code or error.status or f"HTTP {status}"
    text = f"{label}: {error.message}" if error.message else label
    return text[:MAX_REASON_CHARS]


def from_exception(exc: BaseException) -> Outcome:
    """The outcome of a send that raised instead of answering: always a retry.

    Timeouts and I/O errors are passing trouble; anything else is a bug, and a bug must not
    drop an evacuation order: max_attempts and the order's expiry bound the retries.
    """
    if isinstance(exc, TimeoutError):
        return Outcome("retry", reason="timeout")
    return Outcome("retry", reason=logs.describe(exc)[:MAX_REASON_CHARS])


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
