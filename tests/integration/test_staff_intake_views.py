"""What the staff see of the feeds' input on a real PostgreSQL: one quarantined item with its
raw input, the CAP messages received with their orders, and the quarantine in feed health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from alertd import staff
from alertd.context import Context
from alertd.ingest import feedstate, quarantine
from tests import capgen


async def _get(api: TestClient, token: str, path: str,  # type: ignore[type-arg]
               status: int = 200) -> Any:
    r = await api.get(path, headers={"Authorization": f"Bearer {token}"})
    body = await r.json()
    assert r.status == status, body
    return body


async def _post_cap(api: TestClient, token: str, raw: bytes) -> Any:  # type: ignore[type-arg]
    r = await api.post("/v1/staff/cap", data=raw, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/cap+xml"})
    return r.status, await r.json()


async def test_a_refused_cap_is_readable_with_its_reason_and_raw_text(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """A posted Draft is refused; its quarantined item answers the same reason and the
    document as text, and the raw download is the bytes as posted, as an attachment."""
    operator = await staff.create(context.pool, "operator")
    viewer = await staff.create(context.pool, "viewer")
    raw = capgen.message("draft-7", status="Draft")
    status, answer = await _post_cap(api, operator, raw)
    assert status == 400
    item = await _get(api, viewer, f"/v1/staff/quarantine/{answer['quarantine_id']}")
    assert item["reason"] == answer["error"] == (
        "status Draft is not accepted: drafts are never issued")
    assert (item["source"], item["raw"], item["raw_utf8"], item["truncated"]) == (
        "staff-api", raw.decode(), True, False)
    r = await api.get(f"/v1/staff/quarantine/{answer['quarantine_id']}/raw",
                      headers={"Authorization": f"Bearer {viewer}"})
    assert r.status == 200 and await r.read() == raw
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_large_or_foreign_item_is_bounded_and_marked(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """An item's text is its first 64 KiB (a list shows 4 KiB each), marked truncated with the
    whole size; bytes that are not UTF-8 are replaced and marked."""
    viewer = await staff.create(context.pool, "viewer")
    big = await quarantine.put(context.pool, "jma-extra", b"<x>" + "あ".encode() * 50_000,
                               "too big")
    sjis = await quarantine.put(context.pool, "shelters-csv", "名称,住所".encode("cp932"),
                                "not UTF-8")
    item = await _get(api, viewer, f"/v1/staff/quarantine/{big}")
    assert (item["truncated"], item["raw_size"], item["raw_utf8"]) == (True, 150_003, True)
    assert len(item["raw"].encode()) <= quarantine.ITEM_RAW
    assert item["raw"].startswith("<x>あ") and "\ufffd" not in item["raw"]
    foreign = await _get(api, viewer, f"/v1/staff/quarantine/{sjis}")
    assert foreign["raw_utf8"] is False and "\ufffd" in foreign["raw"]
    listed = await _get(api, viewer, "/v1/staff/quarantine?source=jma-extra")
    assert [i["id"] for i in listed["items"]] == [big]
    assert len(listed["items"][0]["raw"].encode()) <= quarantine.LIST_RAW


async def test_an_unknown_item_is_404(api: TestClient,  # type: ignore[type-arg]
                                      context: Context) -> None:
    """An id that names no item (or is no number) answers 404 with the reason."""
    viewer = await staff.create(context.pool, "viewer")
    for path in ("/v1/staff/quarantine/99", "/v1/staff/quarantine/abc",
                 "/v1/staff/quarantine/99/raw", "/v1/staff/quarantine/" + "9" * 30):
        answer = await _get(api, viewer, path, 404)
        assert answer["error"].startswith(("no quarantined item", "no such quarantined item"))


async def test_cap_messages_newest_first_with_their_orders(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """Received messages list newest first with what became of each; the order they made is
    named once, as it stands after the update, with its area as GeoJSON; pages with a cursor
    walk them all once."""
    operator = await staff.create(context.pool, "operator")
    viewer = await staff.create(context.pool, "viewer")
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for raw in (capgen.message("m-1", sent=sent),
                capgen.message("m-2", msg_type="Update", references=("m-1",), level=5,
                               sent=sent + timedelta(minutes=1)),
                capgen.message("m-3", status="Test", sent=sent + timedelta(minutes=2))):
        status, answer = await _post_cap(api, operator, raw)
        assert status == 202, answer
    page = await _get(api, viewer, "/v1/staff/cap/messages")
    got = [(m["identifier"], m["msg_type"], m["outcome"]) for m in page["messages"]]
    assert got == [("m-3", "Alert", "recorded"), ("m-2", "Update", "updated"),
                   ("m-1", "Alert", "order")]
    order_id = page["messages"][2]["order_id"]
    assert page["messages"][1]["order_id"] == order_id and page["messages"][0]["order_id"] is None
    assert list(page["orders"]) == [order_id]
    order = page["orders"][order_id]
    assert (order["level"], order["version"], order["state"]) == (5, 2, "active")
    assert order["area"]["type"] in ("Polygon", "MultiPolygon")
    assert page["cursor"] is None
    walked: list[str] = []
    cursor = ""
    while True:
        part = await _get(api, viewer, f"/v1/staff/cap/messages?limit=1&areas=false{cursor}")
        walked += [m["identifier"] for m in part["messages"]]
        assert all("area" not in o for o in part["orders"].values())
        if part["cursor"] is None:
            break
        cursor = f"&cursor={part['cursor']}"
    assert walked == ["m-3", "m-2", "m-1"]
    bad = await _get(api, viewer, "/v1/staff/cap/messages?cursor=bm9wZQ", 422)
    assert bad["error"] == "cursor is not one this server gave"


async def test_feed_health_counts_what_each_feed_left_in_quarantine(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """Each feed's health counts its quarantined items with the time of the last; posted CAP
    is counted apart."""
    viewer = await staff.create(context.pool, "viewer")
    await feedstate.register(context.pool, "pref-cap", "cap", "https://example.jp/cap.xml")
    await feedstate.register(context.pool, "jma", "jma", "https://example.jp/jma.xml")
    await feedstate.count_skipped(context.pool, "pref-cap")
    for source in ("pref-cap", "pref-cap", "staff-api"):
        await quarantine.put(context.pool, source, b"<bad/>", "bad")
    health = await _get(api, viewer, "/v1/staff/feeds")
    feeds = {f["name"]: f for f in health["feeds"]}
    assert (feeds["pref-cap"]["quarantined"], feeds["pref-cap"]["items_skipped"]) == (2, 1)
    assert feeds["pref-cap"]["last_quarantined_at"] is not None
    assert (feeds["jma"]["quarantined"], feeds["jma"]["last_quarantined_at"]) == (0, None)
    assert health["posted"]["source"] == "staff-api" and health["posted"]["quarantined"] == 1
