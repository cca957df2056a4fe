"""Mapping APNs / FCM answers, exceptions and Retry-After headers to outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aioapns.exceptions
import aiohttp
import pytest

from alertd.delivery import outcomes
from alertd.delivery.push import Outcome

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def fcm_error(
    code: int, status: str, message: str, error_code: str | None = None, *extra: dict[str, Any]
) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR, "errorCode": error_code})
    details.extend(extra)
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


# --- APNs -------------------------------------------------------------------------------


def test_apns_200_is_sent() -> None:
    """APNs 200 means the push was accepted."""
    assert outcomes.from_apns(200, None, None) == Outcome("sent")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (410, "Unregistered"),
        (410, "ExpiredToken"),
        (400, "BadDeviceToken"),
        (400, "DeviceTokenNotForTopic"),
    ],
)
def test_apns_dead_tokens_are_invalid(status: int, reason: str) -> None:
    """Unregistered, expired, malformed or foreign-topic device tokens disable the device."""
    assert outcomes.from_apns(status, reason, None) == Outcome("invalid_token", reason=reason)


def test_apns_410_without_reason_is_invalid_token() -> None:
    """A 410 is an unregistered token even when the body names no reason."""
    assert outcomes.from_apns(410, None, None).status == "invalid_token"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, "TooManyRequests"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailable"),
        (503, "Shutdown"),
        (403, "ExpiredProviderToken"),
        (403, "InvalidProviderToken"),
        (429, "TooManyProviderTokenUpdates"),
    ],
)
def test_apns_transient_errors_retry(status: int, reason: str) -> None:
    """Throttling, server errors and provider-JWT problems (aioapns re-signs) are retried."""
    outcome = outcomes.from_apns(status, reason, 30.0)
    assert outcome == Outcome("retry", reason=reason, retry_after=30.0)


def test_apns_5xx_without_reason_retries() -> None:
    """An unexplained 502 is retried with the HTTP status as the reason."""
    assert outcomes.from_apns(502, None, None) == Outcome("retry", reason="HTTP 502")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (413, "PayloadTooLarge"),
        (400, "BadTopic"),
        (400, "MissingTopic"),
        (400, "BadCollapseId"),
        (400, "BadExpirationDate"),
        (403, "BadCertificate"),
        (403, "MissingProviderToken"),
        (404, "BadPath"),
        (405, "MethodNotAllowed"),
    ],
)
def test_apns_request_errors_fail_with_reason(status: int, reason: str) -> None:
    """Errors in our own request fail the delivery and keep Apple's reason."""
    assert outcomes.from_apns(status, reason, None) == Outcome("failed", reason=reason)


def test_apns_unknown_4xx_without_reason_fails() -> None:
    """An unknown 4xx without a body fails with the HTTP status as the reason."""
    assert outcomes.from_apns(418, None, None) == Outcome("failed", reason="HTTP 418")


# --- FCM --------------------------------------------------------------------------------


def test_fcm_success_is_sent_with_message_name() -> None:
    """FCM 200 is sent and keeps the message name as the provider id."""
    name = "projects/alertd-prod/messages/0:1751360400000000%31bd1c9631bd1c96"
    assert outcomes.from_fcm(200, {"name": name}, None) == Outcome("sent", provider_id=name)


def test_fcm_unregistered_is_invalid_token() -> None:
    """404 NOT_FOUND with errorCode UNREGISTERED disables the token."""
    body = fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
    assert outcomes.from_fcm(404, body, None) == Outcome(
        "invalid_token", reason="UNREGISTERED: Requested entity was not found.")


def test_fcm_invalid_registration_token_message_is_invalid_token() -> None:
    """INVALID_ARGUMENT about the registration token disables the token."""
    body = fcm_error(
        400, "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT",
    )
    assert outcomes.from_fcm(400, body, None).status == "invalid_token"


def test_fcm_token_field_violation_is_invalid_token() -> None:
    """INVALID_ARGUMENT whose BadRequest violation names message.token disables the token."""
    violation = {
        "@type": BAD_REQUEST,
        "fieldViolations": [{"field": "message.token", "description": "Invalid registration"}],
    }
    body = fcm_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                     "INVALID_ARGUMENT", violation)
    assert outcomes.from_fcm(400, body, None).status == "invalid_token"


def test_fcm_other_invalid_argument_fails() -> None:
    """INVALID_ARGUMENT about the message itself (a non-string data value) fails."""
    violation = {
        "@type": BAD_REQUEST,
        "fieldViolations": [{"field": "message.data[0].value",
                             "description": "Invalid value at 'message.data[0].value'"}],
    }
    body = fcm_error(
        400, "INVALID_ARGUMENT",
        "Invalid value at 'message.data[0].value' (TYPE_STRING), 4", None, violation,
    )
    assert outcomes.from_fcm(400, body, None) == Outcome("failed", reason=(
        "INVALID_ARGUMENT: Invalid value at 'message.data[0].value' (TYPE_STRING), 4"))


def test_fcm_sender_id_mismatch_is_invalid_token() -> None:
    """A token registered to another sender is useless to us."""
    body = fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
    assert outcomes.from_fcm(403, body, None).status == "invalid_token"


def test_fcm_quota_exceeded_pauses_the_service() -> None:
    """QUOTA_EXCEEDED retries and asks for the whole sender to pause for Retry-After."""
    body = fcm_error(
        429, "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'",
        "QUOTA_EXCEEDED",
    )
    outcome = outcomes.from_fcm(429, body, 12.0)
    assert (outcome.status, outcome.retry_after, outcome.pause_service) == ("retry", 12.0, True)


def test_fcm_quota_exceeded_without_retry_after_pauses_a_minute() -> None:
    """Without Retry-After a quota pause lasts FCM's recommended minute."""
    body = fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED")
    outcome = outcomes.from_fcm(429, body, None)
    assert outcome.retry_after == outcomes.QUOTA_DEFAULT_PAUSE_S
    assert outcome.pause_service


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.",
                        "UNAVAILABLE")),
        (500, fcm_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL")),
        (429, None),
        (502, None),
        (401, fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                        "credentials. Expected OAuth 2 access token.")),
    ],
)
def test_fcm_transient_errors_retry(status: int, body: dict[str, Any] | None) -> None:
    """Unavailable, internal, bare 429/5xx and an expired access token (401) are retried."""
    outcome = outcomes.from_fcm(status, body, 5.0)
    assert (outcome.status, outcome.retry_after, outcome.pause_service) == ("retry", 5.0, False)


def test_fcm_third_party_auth_error_fails() -> None:
    """A rejected APNs credential behind FCM fails rather than retrying forever."""
    body = fcm_error(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service",
                     "THIRD_PARTY_AUTH_ERROR")
    assert outcomes.from_fcm(401, body, None).status == "failed"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, fcm_error(404, "NOT_FOUND", "Requested entity was not found."),
         "NOT_FOUND: Requested entity was not found."),
        (403, fcm_error(403, "PERMISSION_DENIED", "Permission denied."),
         "PERMISSION_DENIED: Permission denied."),
        (400, {"unexpected": True}, "HTTP 400"),
    ],
)
def test_fcm_other_client_errors_fail(status: int, body: dict[str, Any], reason: str) -> None:
    """Other 4xx answers fail with the error status and message as reason."""
    assert outcomes.from_fcm(status, body, None) == Outcome("failed", reason=reason)


def test_fcm_reason_is_truncated() -> None:
    """A very long error message is cut to a bounded reason."""
    body = fcm_error(400, "INVALID_ARGUMENT", "x" * 1000, "INVALID_ARGUMENT")
    assert len(outcomes.from_fcm(400, body, None).reason) == outcomes.MAX_REASON_CHARS


def test_parse_fcm_error_ignores_malformed_details() -> None:
    """Details that are not objects or lack fields are skipped, not fatal."""
    body = {"error": {"status": "UNAVAILABLE", "details": ["junk", {"@type": FCM_ERROR}]}}
    parsed = outcomes.parse_fcm_error(body)
    assert parsed == outcomes.FcmError("UNAVAILABLE", "", "", False)
    assert outcomes.parse_fcm_error({"error": "text"}) is None


# --- exceptions and Retry-After ----------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionResetError("reset by peer"), "ConnectionResetError: reset by peer"),
        (aiohttp.ClientConnectionError("refused"), "ClientConnectionError: refused"),
        (aioapns.exceptions.MaxAttemptsExceeded(), "MaxAttemptsExceeded"),
        (aioapns.exceptions.ConnectionError(), "ConnectionError"),
        (aioapns.exceptions.ConnectionClosed("closed"), "ConnectionClosed: closed"),
    ],
)
def test_connection_errors_retry(exc: BaseException, reason: str) -> None:
    """Connection failures are retried, with the exception type (and message) as reason."""
    assert outcomes.from_exception(exc) == Outcome("retry", reason=reason)


def test_timeout_retries() -> None:
    """A timeout is retried with reason "timeout"."""
    assert outcomes.from_exception(TimeoutError()) == Outcome("retry", reason="timeout")


def test_unexpected_exception_retries() -> None:
    """A programming error is retried (attempts and expiry bound it), never a silent failure."""
    assert outcomes.from_exception(ValueError("boom")) == Outcome("retry",
                                                                  reason="ValueError: boom")
    assert outcomes.from_exception(KeyError()) == Outcome("retry", reason="KeyError")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 01 Jul 2026 09:02:00 GMT", 120.0),
        ("Wed, 01 Jul 2026 08:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP-date relative to now."""
    assert outcomes.parse_retry_after(value, NOW) == expected
