"""Every rendered push fits the APNs and FCM size limits, in every language (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from alertd import orders, render
from alertd.delivery import push

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
# Worst cases for the byte count and for cutting: a 4-byte CJK character, a control character
# and a quote (escaped in JSON: 6 and 2 bytes), an emoji ZWJ sequence, a Vietnamese letter in
# NFD (base + two marks) and a Devanagari conjunct.
NASTY = "𠮷\x01\"避👨\u200d👩\u200d👧e\u0302\u0301क्ष "
HEADLINE = (NASTY * 200)[:orders.MAX_HEADLINE]
INSTRUCTION = (NASTY * 2000)[:orders.MAX_INSTRUCTION]
NAME = (NASTY * 20)[:100]
PLAN = render.Plan(
    place="other", place_label=NAME, trigger=3,
    destination=render.Destination("shelter", "unsuitable", NAME),
    nearest=render.Nearest(NAME, 12_345))


def _text(kind: str, lang: str, level: int, hazard: str) -> render.Text:
    if kind == "shelter_opened":
        return render.shelter_text(lang, NAME * 2, NAME * 2, "full")
    if kind == "warning":
        return render.warning_text(lang, level, hazard, NAME, NAME, PLAN)
    return render.order_text(kind, lang, level, hazard, {lang: HEADLINE}, {lang: INSTRUCTION},
                             PLAN)


def _message(kind: str, text: render.Text, platform: push.Platform, level: int
             ) -> push.PushMessage:
    alert_id = "0b5e6c1e-3f1d-4b8a-9c7e-2d4f6a8b0c1e"
    return push.PushMessage(
        delivery_id=1, apns_id="6f1c2a9e-0d4b-4c1e-9a57-3b2d8e4f7a10", platform=platform,
        token="a" * 64, kind=kind, alert_id=alert_id,
        level=None if kind == "shelter_opened" else level, title=text.title, body=text.body,
        collapse_id=alert_id, thread_id=push.thread_id_for(alert_id),
        expires_at=NOW + timedelta(hours=6), critical=level == 5)


def _check_cut(sent: str, full: str) -> bool:
    """The body sent is the whole body, or a prefix of it cut between characters + "…"."""
    if sent == full:
        return False
    kept = sent.removesuffix(push.ELLIPSIS)
    assert sent.endswith(push.ELLIPSIS) and full.startswith(kept)
    assert not push.splits_cluster(full, len(kept))
    return True


@pytest.mark.parametrize("lang", render.LANGUAGES)
def test_every_push_fits_apns_and_fcm(lang: str) -> None:
    """Every level x hazard x kind in this language, with the longest staff texts and plan
    the API accepts, fits 4096 bytes for APNs and for FCM's notification + data, the body
    cut between characters and the title short."""
    cut = 0
    for level in orders.LEVELS:
        for hazard in orders.HAZARDS:
            for kind in render.KINDS:
                text = _text(kind, lang, level, hazard)
                assert len(text.title) <= render.TITLE_MAX_CHARS + 1
                ios = push.apns_payload(_message(kind, text, "ios", level))
                assert len(push.encode_apns(ios)) <= push.APNS_MAX_PAYLOAD_BYTES
                assert ios["aps"]["alert"]["title"] == text.title
                cut += _check_cut(ios["aps"]["alert"]["body"], text.body)
                fcm = push.fcm_message(_message(kind, text, "android", level), NOW)["message"]
                counted = {"notification": fcm["notification"], "data": fcm["data"]}
                size = len(json.dumps(counted, ensure_ascii=False).encode())
                assert size <= push.FCM_MAX_PAYLOAD_BYTES
                assert fcm["notification"]["title"] == text.title
                cut += _check_cut(fcm["notification"]["body"], text.body)
    # Orders and updates carry the 2000-character instruction: always cut, for both services;
    # the other kinds fit whole.
    assert cut == 2 * len(orders.LEVELS) * len(orders.HAZARDS) * 2


@pytest.mark.parametrize("lang", render.LANGUAGES)
def test_every_template_renders_without_staff_text_or_plan(lang: str) -> None:
    """Every level x hazard x kind renders from the templates alone, with nothing left blank."""
    for level in orders.LEVELS:
        for hazard in orders.HAZARDS:
            for kind in render.KINDS:
                if kind == "shelter_opened":
                    text = render.shelter_text(lang, "渡利小学校", "", None)
                elif kind == "warning":
                    text = render.warning_text(lang, level, hazard, "大雨警報", "福島市")
                else:
                    text = render.order_text(kind, lang, level, hazard, {}, {})
                assert text.title and text.body
                assert "{" not in text.title + text.body
                assert "\n\n" not in text.body and text.body == text.body.strip()
