"""Orders through the console in a real browser: preview and issue by municipality and by a
drawn polygon, the pushes reaching the sandbox, live progress to completion, raise and lift."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.e2e.conftest import Client, Daemon, Sandbox, push_kind, received, staff_token, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

FUKUSHIMA_CITY = (37.7608, 140.4747)  # 福島市役所
IWAKI = (37.0505, 140.8877)  # いわき市: in no order below


async def issue_page(c: Console) -> None:
    """Go to the issue page through the navigation, its map drawn."""
    await c.page.get_by_role("navigation").get_by_role("link", name="新規発令").click()
    await expect(c.page.get_by_role("heading", name="避難情報の新規発令")).to_be_visible()
    await expect(c.page.locator("#issue-map .leaflet-interactive").first).to_be_attached()


async def _preview_and_send(c: Console, devices: int) -> str:
    """Preview (the total must be `devices`), send, confirm; the order page's id."""
    await c.page.get_by_role("button", name="対象端末数を確認").click()
    await expect(c.page.locator("#preview-total")).to_have_text(f"対象端末: {devices} 台")
    await c.shot("previewed")
    await c.page.get_by_role("button", name="発令する").click()
    dialog = c.page.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"{devices} 台の端末に送信します")
    await c.shot("confirm")
    await dialog.get_by_role("button", name="送信する").click()
    await c.page.wait_for_url(re.compile(r"#/orders/[0-9a-f-]{36}$"))
    return c.page.url.rsplit("/", 1)[1]


async def _completed(c: Console, sent: int) -> None:
    """The order page shows every push sent, without a reload."""
    await expect(c.page.locator("#phase")).to_have_text("配信完了", timeout=30_000)
    await expect(c.page.locator('#counts [data-count="sent"]')).to_have_text(str(sent))
    await expect(c.page.locator('#counts [data-count="pending"]')).to_have_text("0")


async def test_issue_by_municipality_watch_it_go_out_raise_and_lift(
        console_page: Any, db_url: str, daemon: Daemon, sandbox: Sandbox,
        http: aiohttp.ClientSession) -> None:
    """An operator picks 福島市 from the list, previews (2 devices), confirms naming 2, and
    watches the page's counts reach 2 sent as the sandbox receives both pushes; raising the
    level to 4 sends both an update, and lifting (confirmed) sends both the 解除; the phone in
    Iwaki gets nothing."""
    api = Client(http, daemon.url)
    await api.device("ios", "city-ios", *FUKUSHIMA_CITY)
    await api.device("android", "city-android", FUKUSHIMA_CITY[0] + 0.01, FUKUSHIMA_CITY[1])
    await api.device("ios", "iwaki-ios", *IWAKI)
    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "operator"))
    await issue_page(c)
    await c.page.get_by_label("福島市", exact=True).check()
    await expect(c.page.locator("#area-status")).to_have_text("1 市町村を選択")
    await c.page.get_by_label("警戒レベル3 高齢者等避難").check()
    await c.page.get_by_label("災害の種類").select_option("flood")
    await c.page.get_by_label("見出し（日本語）").fill("阿武隈川が氾濫のおそれ")
    await c.page.get_by_label("見出し（英語）").fill("The Abukuma River may flood")
    order_id = await _preview_and_send(c, 2)
    got = await received(sandbox, http, 2)
    assert sorted(got) == [("city-android", "order"), ("city-ios", "order")]
    await _completed(c, 2)
    await expect(c.page.locator("#order-state")).to_have_text("発令中")
    await c.shot("sent")

    await c.page.get_by_label("引き上げ後のレベル").select_option("4")
    await c.page.get_by_role("button", name="レベルを引き上げる").click()
    await c.page.get_by_role("dialog").get_by_role("button", name="レベルを引き上げる").click()
    await expect(c.page.locator("#order-head h1")).to_contain_text("警戒レベル4 避難指示")
    got = await received(sandbox, http, 4)
    assert sorted(k for t, k in got[2:]) == ["order_update", "order_update"]
    await expect(c.page.locator("#versions tbody tr")).to_have_count(2)
    await c.shot("raised")

    await c.page.get_by_role("button", name="解除する").click()
    dialog = c.page.get_by_role("dialog")
    await expect(dialog).to_contain_text("2 台の端末に解除が通知されます")
    await dialog.get_by_role("button", name="解除する").click()
    await expect(c.page.locator("#order-state")).to_have_text("解除済")
    got = await received(sandbox, http, 6)
    assert sorted(got[4:]) == [("city-android", "order_lifted"), ("city-ios", "order_lifted")]
    assert not [d for d in await sandbox.deliveries(http) if d["token"] == "iwaki-ios"]
    await expect(c.page.locator("#lift-button")).to_have_count(0)
    await c.shot("lifted")
    await c.page.get_by_role("link", name="過去の避難情報").click()
    await expect(c.page.locator(f'tr[data-order="{order_id}"]')).to_be_visible()


async def _areas_centre(http: aiohttp.ClientSession, daemon: Daemon, token: str
                        ) -> tuple[float, float]:
    """The centre (lat, lon) of the shipped areas' bounds: where the fitted map is centred."""
    async with http.get(f"{daemon.url}/v1/staff/areas",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        doc = await r.json()
    lons: list[float] = []
    lats: list[float] = []

    def walk(coords: Any) -> None:
        if isinstance(coords[0], (int, float)):
            lons.append(coords[0])
            lats.append(coords[1])
        else:
            for c in coords:
                walk(c)
    for f in doc["features"]:
        walk(f["geometry"]["coordinates"])
    return (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2


async def test_issue_by_a_drawn_polygon(console_page: Any, db_url: str, daemon: Daemon,
                                        sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    """An operator draws a small square around the map's centre (four clicks, then 完了): the
    preview counts the one phone at the centre, not the one in Iwaki, and only it receives
    the order."""
    token = staff_token(db_url, "operator")
    centre = await _areas_centre(http, daemon, token)
    api = Client(http, daemon.url)
    await api.device("ios", "centre-ios", *centre)
    await api.device("android", "iwaki-android", *IWAKI)
    c: Console = await console_page()
    await c.sign_in(token)
    await issue_page(c)
    await c.page.get_by_role("button", name="多角形を描く").click()
    box = await c.page.locator("#issue-map").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-30, -30), (30, -30), (30, 30), (-30, 30)):
        await c.page.mouse.click(x + dx, y + dy)
    await expect(c.page.locator("#area-status")).to_have_text("頂点 4 個")
    await c.page.get_by_role("button", name="多角形を完了").click()
    await c.page.get_by_label("警戒レベル4 避難指示").check()
    await c.page.get_by_label("見出し（日本語）").fill("土砂災害の危険")
    await c.page.get_by_label("災害の種類").select_option("landslide")
    await c.shot("drawn")
    await _preview_and_send(c, 1)
    got = await received(sandbox, http, 1)
    assert got == [("centre-ios", "order")]
    await _completed(c, 1)

    async def only_one() -> bool:
        return [push_kind(d) for d in await sandbox.deliveries(http)] == ["order"]
    assert await wait_for(only_one, "no second push")


async def test_the_console_fits_a_tablet_and_labels_every_control(console_page: Any,
                                                                 db_url: str) -> None:
    """At a tablet's width (820 px) the issue page has no horizontal scrolling, the form and
    the map are both shown, and every form control has a label; a municipality can be
    chosen with the keyboard alone."""
    c: Console = await console_page({"width": 820, "height": 1180})
    await c.sign_in(staff_token(db_url, "operator"))
    await issue_page(c)
    assert await c.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await expect(c.page.locator("#issue-form")).to_be_visible()
    await expect(c.page.locator("#issue-map")).to_be_visible()
    unlabelled = await c.page.evaluate("""[...document.querySelectorAll(
        '#issue-form input, #issue-form select, #issue-form textarea')]
        .filter((e) => !e.labels.length && !e.getAttribute('aria-label')).map((e) => e.id)""")
    assert unlabelled == []
    await c.page.get_by_label("福島市", exact=True).focus()
    await c.page.keyboard.press("Space")
    await expect(c.page.locator("#area-status")).to_have_text("1 市町村を選択")
    await c.shot("tablet")


async def test_english_is_switchable_and_kept(console_page: Any, db_url: str) -> None:
    """The language button turns the console into English, and a reload keeps it."""
    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "viewer"))
    await c.page.get_by_role("banner").get_by_role("button", name="English").click()
    await expect(c.page.get_by_role("heading", name="Active orders")).to_be_visible()
    await c.page.reload()
    await expect(c.page.get_by_role("heading", name="Active orders")).to_be_visible()
    assert await c.page.evaluate("document.documentElement.lang") == "en"


DATE_CITY = (37.8191, 140.5630)  # 伊達市役所


async def test_change_the_area_of_an_order(console_page: Any, db_url: str, daemon: Daemon,
                                           sandbox: Sandbox,
                                           http: aiohttp.ClientSession) -> None:
    """On an order's page, an operator grows its area from 福島市 to 福島市 and 伊達市: the
    preview counts both phones, the change makes a second version, and only the phone in
    伊達市 gets a push (the one in 福島市 already had the order at that level). An admin's
    page shows the order's audit trail: issued through the API, changed through the
    console."""
    api = Client(http, daemon.url)
    await api.device("ios", "city-ios", *FUKUSHIMA_CITY)
    await api.device("android", "date-android", *DATE_CITY)
    token = staff_token(db_url, "admin")
    status, body = await api.call("POST", "/v1/staff/orders", token, {
        "level": 4, "hazard": "flood", "area": {"area_codes": ["072010"]},
        "headline": {"ja": "阿武隈川が氾濫のおそれ"}})
    assert status == 201, body
    assert await received(sandbox, http, 1) == [("city-ios", "order")]
    c: Console = await console_page()
    await c.sign_in(token)
    await c.open(f"orders/{body['id']}")
    await expect(c.page.locator("#phase")).to_have_text("配信完了")
    await c.page.get_by_role("button", name="区域を変更する").click()
    change = c.page.locator("#change-area")
    await change.get_by_label("福島市", exact=True).check()
    await change.get_by_label("伊達市", exact=True).check()
    await change.get_by_role("button", name="新しい区域の対象端末数を確認").click()
    await expect(change.locator("#preview-total")).to_have_text("対象端末: 2 台")
    await c.shot("change-previewed")
    await change.get_by_role("button", name="この区域に変更する").click()
    dialog = c.page.get_by_role("dialog")
    await expect(dialog).to_contain_text("2 台")
    await dialog.get_by_role("button", name="この区域に変更する").click()
    await expect(c.page.locator("#versions tbody tr")).to_have_count(2)
    got = await received(sandbox, http, 2)
    assert got[1] == ("date-android", "order")
    await expect(c.page.locator('#counts [data-count="sent"]')).to_have_text("2")
    await expect(c.page.locator("#phase")).to_have_text("配信完了")
    assert len(await sandbox.deliveries(http)) == 2
    trail = c.page.locator("#trail tbody")
    await expect(trail).to_contain_text("order.amend")
    await expect(trail.locator("tr", has_text="order.amend")).to_contain_text("(console)")
    await expect(trail.locator("tr", has_text="order.issue")).to_contain_text("(api)")
    await c.shot("changed")
