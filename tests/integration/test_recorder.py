"""alertd.sandbox.recorder: the sandbox's inspection endpoint."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from alertd.sandbox.recorder import InspectionHooks, Recorder, inspection_app

TITLE = "【警戒レベル4】避難指示"


async def test_deliveries_are_utf8_json_with_japanese_unescaped() -> None:
    """GET /deliveries shows recorded Japanese text as UTF-8, not \\u escapes."""
    recorder = Recorder()
    recorder.record("apns", "tok-1", 200, {"apns-push-type": "alert"},
                    {"aps": {"alert": {"title": TITLE, "body": "避難してください"}}})
    hooks = InspectionHooks(stats=dict, revoke_fcm_tokens=lambda: 0)
    async with TestClient(TestServer(inspection_app(recorder, hooks))) as client:
        r = await client.get("/deliveries")
        raw = await r.read()
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert TITLE.encode("utf-8") in raw
    assert b"\\u" not in raw
