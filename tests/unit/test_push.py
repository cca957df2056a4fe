"""Push domain values and the APNs / FCM payload builders."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alertd import errors
from alertd.delivery import push

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
TITLE = "【警戒レベル4】避難指示"
BODY = "福島市渡利地区に避難指示を発令しました。直ちに渡利小学校へ避難してください。"


def message(**changes: Any) -> push.PushMessage:
    base = push.PushMessage(
        delivery_id=42,
        apns_id="6f1c2a9e-0d4b-4c1e-9a57-3b2d8e4f7a10",
        platform="ios",
        token="a" * 64,
        kind="order",
        alert_id="ord-20260701-001",
        level=4,
        title=TITLE,
        body=BODY,
        collapse_id="ord-20260701-001",
        thread_id=push.thread_id_for("ord-20260701-001"),
        expires_at=NOW + timedelta(hours=6),
        priority=10,
        critical=False,
    )
    return dataclasses.replace(base, **changes)


def size(payload: dict[str, Any]) -> int:
    return len(push.encode_apns(payload))


def body_fill(target: int, **changes: Any) -> str:
    """An ASCII body that makes the APNs payload exactly `target` bytes."""
    base = size(push.apns_payload(message(body="", **changes)))
    return "x" * (target - base)


def test_apns_payload_follows_the_contract() -> None:
    """An order becomes the contract's APNs shape with time-sensitive interruption."""
    payload = push.apns_payload(message())
    assert payload == {
        "aps": {
            "alert": {"title": TITLE, "body": BODY},
            "sound": "default",
            "interruption-level": "time-sensitive",
            "thread-id": "order-ord-20260701-001",
        },
        "alert_id": "ord-20260701-001",
        "kind": "order",
        "level": 4,
    }


def test_critical_message_uses_critical_interruption_and_sound() -> None:
    """A critical push asks for the critical interruption level and a critical sound."""
    aps = push.apns_payload(message(critical=True, level=5))["aps"]
    assert aps["interruption-level"] == "critical"
    assert aps["sound"] == {"critical": 1, "name": "default", "volume": 1.0}


def test_missing_level_is_null_for_apns_and_empty_for_fcm() -> None:
    """A push without a level (a tip) sends JSON null to APNs and "" in FCM data."""
    tip = message(kind="tip", level=None, priority=5)
    assert push.apns_payload(tip)["level"] is None
    assert push.fcm_message(tip, NOW)["message"]["data"]["level"] == ""


def test_japanese_text_is_sent_as_utf8_not_escaped() -> None:
    """The size limit counts UTF-8 bytes of unescaped JSON, as aioapns sends it."""
    wire = push.encode_apns(push.apns_payload(message()))
    assert TITLE.encode() in wire
    assert b"\\u" not in wire


def test_payload_of_exactly_4096_bytes_is_kept_whole() -> None:
    """A payload of exactly 4096 bytes is sent unchanged."""
    msg = message(body=body_fill(4096))
    payload = push.apns_payload(msg)
    assert size(payload) == 4096
    assert payload["aps"]["alert"]["body"] == msg.body


def test_payload_of_4097_bytes_is_shortened_to_fit() -> None:
    """One byte over the limit shortens the body, ending it with an ellipsis."""
    msg = message(body=body_fill(4097))
    payload = push.apns_payload(msg)
    body = payload["aps"]["alert"]["body"]
    assert size(payload) <= 4096
    assert body.endswith("…")
    assert msg.body.startswith(body[:-1])
    assert payload["aps"]["alert"]["title"] == TITLE


def test_japanese_body_is_cut_on_character_boundaries_as_little_as_possible() -> None:
    """A long Japanese body is cut between characters, keeping as much text as fits."""
    msg = message(body="避難所は開設済みです。" * 200)
    payload = push.apns_payload(msg)
    body = payload["aps"]["alert"]["body"]
    wire = push.encode_apns(payload)
    assert len(wire) <= 4096
    assert wire.decode("utf-8")  # still valid UTF-8
    kept = body[:-1]
    assert body.endswith("…") and msg.body.startswith(kept)
    one_more = dict(payload, aps=dict(payload["aps"], alert={
        "title": TITLE, "body": msg.body[: len(kept) + 1] + "…"}))
    assert size(one_more) > 4096


def test_escaped_characters_count_as_sent() -> None:
    """Quotes and newlines count with their JSON escapes when fitting the body."""
    msg = message(body='"引用"\n' * 1000)
    payload = push.apns_payload(msg)
    assert size(payload) <= 4096
    assert payload["aps"]["alert"]["body"].endswith("…")


def test_critical_payload_is_measured_with_its_larger_sound() -> None:
    """The critical sound dictionary is counted when fitting the body."""
    msg = message(body=body_fill(4096), critical=True)
    assert size(push.apns_payload(msg)) <= 4096
    assert push.apns_payload(msg)["aps"]["alert"]["body"].endswith("…")


def test_oversized_title_raises_payload_too_large() -> None:
    """A title that alone exceeds the limit cannot be fixed and raises PayloadTooLarge."""
    with pytest.raises(errors.PayloadTooLarge):
        push.apns_payload(message(title="警" * 1400))


def test_fcm_message_follows_the_contract() -> None:
    """An order becomes the contract's FCM HTTP v1 body with string data values."""
    body = push.fcm_message(message(platform="android"), NOW)
    assert body == {
        "message": {
            "token": "a" * 64,
            "notification": {"title": TITLE, "body": BODY},
            "data": {"alert_id": "ord-20260701-001", "kind": "order", "level": "4"},
            "android": {
                "priority": "HIGH",
                "ttl": "21600s",
                "collapse_key": "ord-20260701-001",
            },
        }
    }
    assert all(isinstance(v, str) for v in body["message"]["data"].values())
    json.dumps(body)  # serialisable as is


def test_fcm_tip_has_normal_priority() -> None:
    """Tips (priority 5) go out with FCM priority NORMAL."""
    tip = message(kind="tip", level=None, priority=5)
    assert push.fcm_message(tip, NOW)["message"]["android"]["priority"] == "NORMAL"


def test_fcm_ttl_is_clamped_to_zero_and_four_weeks() -> None:
    """The FCM ttl never goes negative nor beyond FCM's four-week maximum."""
    assert push.fcm_ttl(NOW - timedelta(minutes=1), NOW) == "0s"
    assert push.fcm_ttl(NOW + timedelta(days=60), NOW) == "2419200s"
    assert push.fcm_ttl(NOW + timedelta(seconds=90.9), NOW) == "90s"


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "news"},
        {"platform": "web"},
        {"priority": 7},
        {"collapse_id": "x" * 65},
        {"expires_at": datetime(2026, 7, 1, 9, 0)},
        {"apns_id": "not-a-uuid"},
        {"token": ""},
    ],
)
def test_invalid_push_messages_are_refused(changes: dict[str, Any]) -> None:
    """A PushMessage with an unknown kind, bad priority, long collapse id etc. is refused."""
    with pytest.raises(ValueError):
        message(**changes)


def test_outcome_refuses_unknown_status() -> None:
    """Outcome only takes the four statuses the dispatcher understands."""
    with pytest.raises(ValueError):
        push.Outcome("lost")  # type: ignore[arg-type]


def test_redacted_token_never_shows_the_whole_token() -> None:
    """Logged tokens keep only a short prefix."""
    token = "0123456789abcdef" * 4
    assert push.redact_token(token) == "01234567…"
    assert "…" == push.redact_token("short")


def _fcm_size(message: dict[str, Any]) -> int:
    """Bytes FCM counts against its limit: notification and data together."""
    counted = {"notification": message["notification"], "data": message["data"]}
    return len(json.dumps(counted, ensure_ascii=False).encode())


def test_fcm_long_body_is_shortened_to_fit() -> None:
    """A body too long for FCM is cut so notification + data fit 4096 bytes, keeping as much
    as fits."""
    msg = message(platform="android", body="避難所は開設済みです。" * 200)
    sent = push.fcm_message(msg, NOW)["message"]
    body = sent["notification"]["body"]
    assert _fcm_size(sent) <= push.FCM_MAX_PAYLOAD_BYTES
    kept = body.removesuffix("…")
    assert body.endswith("…") and msg.body.startswith(kept)
    assert sent["notification"]["title"] == TITLE
    one_more = dict(sent, notification={"title": TITLE, "body": msg.body[: len(kept) + 1] + "…"})
    assert _fcm_size(one_more) > push.FCM_MAX_PAYLOAD_BYTES


def test_fcm_oversized_title_raises_payload_too_large() -> None:
    """A title that alone exceeds FCM's limit cannot be fixed and raises PayloadTooLarge."""
    with pytest.raises(errors.PayloadTooLarge):
        push.fcm_message(message(platform="android", title="警" * 1400), NOW)


@pytest.mark.parametrize("cluster", [
    "e\u0302\u0301",  # Vietnamese ế in NFD: a base and two combining marks
    "か\u3099",  # が in NFD, as text pasted from macOS arrives
    "क्ष",  # a Devanagari conjunct (consonant, virama, consonant)
    "कि",  # a consonant and its vowel sign
    "👨\u200d👩\u200d👧",  # an emoji ZWJ sequence
    "👍🏽",  # an emoji and its skin tone
    "❤\ufe0f",  # an emoji and its variation selector
    "🇯🇵",  # a flag: two regional indicators
    "\u1100\u1161\u11a8",  # Hangul 각 as conjoining jamo
])
def test_long_body_is_never_cut_inside_a_character(cluster: str) -> None:
    """Shortened APNs and FCM bodies keep whole user-perceived characters only."""
    ios = push.apns_payload(message(body=cluster * 3000))["aps"]["alert"]["body"]
    android = push.fcm_message(message(platform="android", body=cluster * 3000), NOW)
    for body in (ios, android["message"]["notification"]["body"]):
        kept = body.removesuffix("…")
        assert body.endswith("…") and kept
        assert kept == cluster * (len(kept) // len(cluster))


def test_cluster_boundaries() -> None:
    """Cuts between characters are allowed, cuts inside CRLF or a flag pair are not."""
    assert not push.splits_cluster("a\r\nb", 1)
    assert push.splits_cluster("a\r\nb", 2)
    assert not push.splits_cluster("a\r\nb", 3)
    flags = "🇯🇵🇺🇸"
    assert [push.splits_cluster(flags, i) for i in range(5)] == [
        False, True, False, True, False]
    assert push.shorten("避難所", 3) == "避難所"
    assert push.shorten("避難  所", 3) == "避難…"
    assert push.shorten("e\u0302\u0301x", 2) == "…"


_ENCODED_ONCE_CASES = [
    {},
    {"platform": "android", "token": 'fcm:tok"\\\n', "level": None},
    {"platform": "android", "kind": "tip", "priority": 5, "critical": False},
    {"critical": True, "body": "x" * 5000},  # shortened to fit
    {"platform": "android", "title": "t\u2028\"é", "body": "避難" * 3000},  # shortened
    {"expires_at": NOW + timedelta(weeks=9)},  # ttl clamped
]


@pytest.mark.parametrize("changes", _ENCODED_ONCE_CASES)
def test_cached_encodings_are_the_bytes_of_a_full_encoding(changes: dict[str, Any]) -> None:
    """apns_bytes and fcm_bytes, asked twice (the second from the cache), give byte for byte
    the encoding of apns_payload and fcm_message, with each push's own token and ttl."""
    msg = message(**changes)
    later = NOW + timedelta(seconds=30)
    for _ in range(2):
        assert push.apns_bytes(msg) == push.encode_apns(push.apns_payload(msg))
        for now in (NOW, later):
            expected = json.dumps(push.fcm_message(msg, now), ensure_ascii=False).encode()
            assert push.fcm_bytes(msg, now) == expected
    other = dataclasses.replace(msg, token="b" * 64, delivery_id=43)
    assert json.loads(push.fcm_bytes(other, NOW))["message"]["token"] == "b" * 64


def test_cached_encodings_refuse_what_the_builders_refuse() -> None:
    """A title too long for any payload raises PayloadTooLarge from the cached encoders too,
    every time (a refusal is not cached as bytes)."""
    msg = message(title="x" * 5000)
    for _ in range(2):
        with pytest.raises(errors.PayloadTooLarge):
            push.apns_bytes(msg)
        with pytest.raises(errors.PayloadTooLarge):
            push.fcm_bytes(dataclasses.replace(msg, platform="android"), NOW)
