"""Push domain values and the pure payload builders for APNs and FCM HTTP v1."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from alertd import errors

Platform = Literal["ios", "android"]
Status = Literal["sent", "invalid_token", "retry", "failed"]

KINDS = frozenset(
    {"order", "order_update", "order_lifted", "shelter_opened", "warning", "tip"}
)
PLATFORMS = frozenset({"ios", "android"})
STATUSES = frozenset({"sent", "invalid_token", "retry", "failed"})
PRIORITIES = frozenset({5, 10})

APNS_MAX_PAYLOAD_BYTES = 4096
APNS_MAX_COLLAPSE_ID_BYTES = 64
# FCM refuses a ttl above four weeks.
FCM_MAX_TTL_S = 2_419_200
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One rendered notification for one device, ready for a sender."""

    delivery_id: int
    apns_id: str
    platform: Platform
    token: str
    kind: str
    alert_id: str
    level: int | None
    title: str
    body: str
    collapse_id: str
    thread_id: str
    expires_at: datetime
    priority: int = 10
    critical: bool = False

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown platform {self.platform!r}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown push kind {self.kind!r}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"push priority must be 5 or 10, got {self.priority}")
        if not self.token:
            raise ValueError("push token is empty")
        if len(self.collapse_id.encode()) > APNS_MAX_COLLAPSE_ID_BYTES:
            raise ValueError("collapse_id is longer than 64 bytes")
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        uuid.UUID(self.apns_id)  # raises ValueError when it is not a UUID


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a provider said about one push, as the dispatcher records it."""

    status: Status
    provider_id: str | None = None
    reason: str = ""
    retry_after: float | None = None
    pause_service: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown outcome status {self.status!r}")


def thread_id_for(alert_id: str) -> str:
    """The APNs thread-id grouping every notification about one order."""
    return f"order-{alert_id}"


def redact_token(token: str) -> str:
    """A push token shortened so it can be logged."""
    return token[:8] + "…" if len(token) > 8 else "…"


def encode_apns(payload: dict[str, Any]) -> bytes:
    """The APNs payload as bytes on the wire (aioapns sends json.dumps(ensure_ascii=False))."""
    return json.dumps(payload, ensure_ascii=False).encode()


def apns_payload(msg: PushMessage) -> dict[str, Any]:
    """The APNs JSON payload, with the body shortened to fit 4096 bytes."""
    payload = _apns_payload(msg, msg.body)
    # JSON-encoding one character takes at most 6 bytes (\uXXXX; UTF-8 needs at most 4), and
    # the fixed structure well under 300: short messages fit without being encoded to check.
    chars = len(msg.title) + len(msg.body) + len(msg.thread_id) + len(msg.alert_id) + len(
        msg.kind)
    if 6 * chars + 300 <= APNS_MAX_PAYLOAD_BYTES or len(
            encode_apns(payload)) <= APNS_MAX_PAYLOAD_BYTES:
        return payload
    keep = _longest_fitting_prefix(msg)
    if keep is None:
        raise errors.PayloadTooLarge(
            f"APNs payload exceeds {APNS_MAX_PAYLOAD_BYTES} bytes even with an empty body"
        )
    return _apns_payload(msg, _shortened(msg.body, keep))


def _apns_payload(msg: PushMessage, body: str) -> dict[str, Any]:
    aps: dict[str, Any] = {
        "alert": {"title": msg.title, "body": body},
        "sound": "default",
        "interruption-level": "time-sensitive",
        "thread-id": msg.thread_id,
    }
    if msg.critical:
        aps["sound"] = {"critical": 1, "name": "default", "volume": 1.0}
        aps["interruption-level"] = "critical"
    return {"aps": aps, "alert_id": msg.alert_id, "kind": msg.kind, "level": msg.level}


def _shortened(body: str, keep: int) -> str:
    # Cutting by code points keeps the UTF-8 valid; trailing blanks before "…" look broken.
    return body[:keep].rstrip() + ELLIPSIS


def _longest_fitting_prefix(msg: PushMessage) -> int | None:
    """Largest number of body characters that fits once "…" is appended, None if none does."""

    def fits(keep: int) -> bool:
        payload = _apns_payload(msg, _shortened(msg.body, keep))
        return len(encode_apns(payload)) <= APNS_MAX_PAYLOAD_BYTES

    if not fits(0):
        return None
    low, high = 0, len(msg.body) - 1  # the full body is known not to fit
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def fcm_ttl(expires_at: datetime, now: datetime) -> str:
    """The FCM android.ttl duration string for the time left until expires_at."""
    seconds = int((expires_at - now).total_seconds())
    return f"{min(max(seconds, 0), FCM_MAX_TTL_S)}s"


def fcm_message(msg: PushMessage, now: datetime | None = None) -> dict[str, Any]:
    """The FCM HTTP v1 request body (messages:send) for one push."""
    current = now if now is not None else datetime.now(UTC)
    return {
        "message": {
            "token": msg.token,
            "notification": {"title": msg.title, "body": msg.body},
            # FCM data values must be strings; a missing level is sent as "".
            "data": {
                "alert_id": msg.alert_id,
                "kind": msg.kind,
                "level": "" if msg.level is None else str(msg.level),
            },
            "android": {
                "priority": "NORMAL" if msg.priority == 5 else "HIGH",
                "ttl": fcm_ttl(msg.expires_at, current),
                "collapse_key": msg.collapse_id,
            },
        }
    }
