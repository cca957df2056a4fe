"""Push domain values and the pure payload builders for APNs and FCM HTTP v1."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
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
# FCM counts notification and data together against 4096 bytes.
FCM_MAX_PAYLOAD_BYTES = 4096
APNS_MAX_COLLAPSE_ID_BYTES = 64
# FCM refuses a ttl above four weeks.
FCM_MAX_TTL_S = 2_419_200
ELLIPSIS = "…"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


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
        if _UUID.fullmatch(self.apns_id) is None:  # a regex: a fifth of uuid.UUID()'s cost
            raise ValueError(f"apns_id is not a UUID: {self.apns_id!r}")


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


# One fan-out sends the same notification to every device of a language: the bytes that do not
# depend on the device are encoded once per distinct message, not once per push. Bounded: the
# cache is emptied when full (a few hundred texts are in use at once at most).
_CACHE_MAX = 512
_apns_bytes: dict[tuple[object, ...], bytes] = {}
_fcm_parts: dict[tuple[object, ...], tuple[str, str]] = {}
_JSON = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(..., ensure_ascii=False) uses


def _remember(cache: dict[tuple[object, ...], Any], key: tuple[object, ...], value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def apns_bytes(msg: PushMessage) -> bytes:
    """encode_apns(apns_payload(msg)), encoded once per distinct notification (the APNs body
    names no device); raises PayloadTooLarge like apns_payload."""
    key = (msg.title, msg.body, msg.kind, msg.alert_id, msg.level, msg.thread_id, msg.critical)
    body = _apns_bytes.get(key)
    if body is None:
        body = encode_apns(apns_payload(msg))
        _remember(_apns_bytes, key, body)
    return body


def encode_apns(payload: dict[str, Any]) -> bytes:
    """The APNs payload as bytes on the wire (aioapns sends json.dumps(ensure_ascii=False))."""
    return json.dumps(payload, ensure_ascii=False).encode()


def apns_payload(msg: PushMessage) -> dict[str, Any]:
    """The APNs JSON payload, with the body shortened to fit 4096 bytes."""
    body = _fitted_body(msg, lambda text: len(encode_apns(_apns_payload(msg, text))),
                        APNS_MAX_PAYLOAD_BYTES, "APNs")
    return _apns_payload(msg, body)


def _apns_payload(msg: PushMessage, body: str) -> dict[str, Any]:
    aps: dict[str, Any] = {
        "alert": {"title": msg.title, "body": body},
        "sound": "default",
        # A tip waits quietly in the notification list: no sound, no lit screen.
        "interruption-level": "passive" if msg.kind == "tip" else "time-sensitive",
        "thread-id": msg.thread_id,
    }
    if msg.critical:
        aps["sound"] = {"critical": 1, "name": "default", "volume": 1.0}
        aps["interruption-level"] = "critical"
    return {"aps": aps, "alert_id": msg.alert_id, "kind": msg.kind, "level": msg.level}


def _fitted_body(msg: PushMessage, size: Callable[[str], int], limit: int,
                 service: str) -> str:
    """msg.body, or its longest prefix that keeps `size` within `limit` once "…" is added."""
    # JSON-encoding one character takes at most 6 bytes (\uXXXX; UTF-8 needs at most 4), and
    # the fixed structure well under 300: short messages fit without being encoded to check.
    chars = len(msg.title) + len(msg.body) + len(msg.thread_id) + len(msg.alert_id) + len(
        msg.kind)
    if 6 * chars + 300 <= limit or size(msg.body) <= limit:
        return msg.body
    if size(shorten(msg.body, 0)) > limit:
        raise errors.PayloadTooLarge(
            f"{service} payload exceeds {limit} bytes even with an empty body")
    low, high = 0, len(msg.body) - 1  # the full body is known not to fit
    while low < high:
        mid = (low + high + 1) // 2
        if size(shorten(msg.body, mid)) <= limit:
            low = mid
        else:
            high = mid - 1
    return shorten(msg.body, low)


def shorten(text: str, keep: int) -> str:
    """At most `keep` characters of text and "…", never splitting a user-perceived
    character (a base and its marks, a conjunct, an emoji sequence, a flag)."""
    if keep >= len(text):
        return text
    while keep > 0 and splits_cluster(text, keep):
        keep -= 1
    # Trailing blanks before "…" look broken.
    return text[:keep].rstrip() + ELLIPSIS


ZWJ = "\u200d"
ZWNJ = "\u200c"
VIRAMA = 9  # the canonical combining class of viramas (Devanagari ्, …)


def splits_cluster(text: str, at: int) -> bool:
    """Whether cutting text before index `at` would split a grapheme cluster (the rules of
    Unicode UAX #29 that occur in our languages, emoji and NFD-decomposed text)."""
    if not 0 < at < len(text):
        return False
    before, after = text[at - 1], text[at]
    code = ord(after)
    if before == "\r" and after == "\n":
        return True
    if before == ZWJ or unicodedata.combining(before) == VIRAMA:
        return True  # emoji ZWJ sequences; conjuncts such as क्ष
    if after in (ZWJ, ZWNJ) or unicodedata.category(after) in ("Mn", "Mc", "Me"):
        return True  # combining marks: Vietnamese and Japanese in NFD, Devanagari vowel signs
    if (0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE01EF
            or 0x1160 <= code <= 0x11FF or 0xD7B0 <= code <= 0xD7FF):
        return True  # variation selectors, skin tones, tags; Hangul medial and final jamo
    if _regional(after) and _regional(before):
        # Flags are pairs of regional indicators: the cut splits one after an odd count.
        run = 0
        while at - run - 1 >= 0 and _regional(text[at - run - 1]):
            run += 1
        return run % 2 == 1
    return False


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def fcm_ttl(expires_at: datetime, now: datetime) -> str:
    """The FCM android.ttl duration string for the time left until expires_at."""
    seconds = int((expires_at - now).total_seconds())
    return f"{min(max(seconds, 0), FCM_MAX_TTL_S)}s"


def fcm_message(msg: PushMessage, now: datetime | None = None) -> dict[str, Any]:
    """The FCM HTTP v1 request body (messages:send) for one push, the body shortened so
    that notification and data together fit FCM's 4096 bytes."""
    current = now if now is not None else datetime.now(UTC)
    # FCM data values must be strings; a missing level is sent as "".
    data = {
        "alert_id": msg.alert_id,
        "kind": msg.kind,
        "level": "" if msg.level is None else str(msg.level),
    }

    def size(body: str) -> int:
        counted = {"notification": {"title": msg.title, "body": body}, "data": data}
        return len(json.dumps(counted, ensure_ascii=False).encode())

    body = _fitted_body(msg, size, FCM_MAX_PAYLOAD_BYTES, "FCM")
    return {
        "message": {
            "token": msg.token,
            "notification": {"title": msg.title, "body": body},
            "data": data,
            "android": {
                "priority": "NORMAL" if msg.priority == 5 else "HIGH",
                "ttl": fcm_ttl(msg.expires_at, current),
                "collapse_key": msg.collapse_id,
            },
        }
    }


def fcm_bytes(msg: PushMessage, now: datetime | None = None) -> bytes:
    """The FCM request body, byte for byte json.dumps(fcm_message(msg, now),
    ensure_ascii=False).encode(): only the token and the ttl are encoded per push, the rest
    once per distinct notification; raises PayloadTooLarge like fcm_message."""
    key = (msg.title, msg.body, msg.kind, msg.alert_id, msg.level, msg.priority,
           msg.collapse_id)
    parts = _fcm_parts.get(key)
    if parts is None:
        # Split a whole encoding at the two values that vary: token and ttl (json.dumps keeps
        # the dict order of fcm_message, so the rest is the same text for every push).
        whole = fcm_message(msg, datetime.now(UTC))["message"]
        head = _JSON.encode({"notification": whole["notification"], "data": whole["data"]})
        android = whole["android"]
        parts = (
            ", " + head[1:-1] + ', "android": {"priority": ' + _JSON.encode(android["priority"])
            + ', "ttl": ',
            ', "collapse_key": ' + _JSON.encode(android["collapse_key"]) + "}}}",
        )
        _remember(_fcm_parts, key, parts)
    ttl = fcm_ttl(msg.expires_at, now if now is not None else datetime.now(UTC))
    return ('{"message": {"token": ' + _JSON.encode(msg.token) + parts[0] + _JSON.encode(ttl)
            + parts[1]).encode()
