"""The shelters, feeds and audit pages of the console in a real browser, against the real
daemon and sandbox: opening a shelter reaches phones, a refused CAP message is readable with
its reason and raw text, and the audit log is an admin's page only."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import expect

from tests import capgen
from tests.browser.conftest import Console
from tests.e2e.conftest import Client, Daemon, Sandbox, post_cap, received, staff_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Central Fukushima City: the device, a flood shelter 150 m away, and one for earthquakes only.
HOME = (37.7500, 140.4500)
SHELTERS = [("S-RIVER", "河川敷中央小学校", 37.7510, 140.4505, ["flood", "earthquake"]),
            ("S-HILL", "丘の上体育館", 37.7600, 140.4600, ["earthquake"])]
ORDER = {"level": 4, "hazard": "flood", "area": {"area_codes": ["072010"]},
         "headline": {"ja": "阿武隈川が氾濫のおそれ", "en": "The Abukuma may flood"}}


async def _shelters(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.executemany(
            "INSERT INTO shelters (id, name, address, lat, lon, hazards, capacity,"
            " municipality_code, kind, source_format) VALUES ($1, $2, '福島市', $3, $4, $5, 200,"
            " '072010', 'shelter', 'test')", SHELTERS)
    finally:
        await conn.close()


async def _nearest(api: Client) -> dict[str, Any]:
    status, body = await api.call("GET", f"/v1/shelters?lat={HOME[0]}&lon={HOME[1]}"
                                         "&hazard=flood&open=true")
    assert status == 200, body
    return {s["id"]: s for s in body["shelters"]}


async def test_an_operator_opens_a_shelter_and_phones_hear_of_it(
        console_page: Any, db_url: str, daemon: Daemon, sandbox: Sandbox,
        http: aiohttp.ClientSession) -> None:
    """With an order over a located phone, an operator finds the shelter by name, filters by
    hazard, opens it in two clicks with its evacuees: the table, totals and map marker show
    it open, the mobile /v1/shelters answer lists it open, and the phone gets shelter_opened."""
    await _shelters(db_url)
    api = Client(http, daemon.url)
    await api.device("ios", "tok-home", *HOME)
    status, answer = await api.call("POST", "/v1/staff/orders", staff_token(db_url, "operator"),
                                    ORDER)
    assert status == 201, answer
    assert await received(sandbox, http, 1) == [("tok-home", "order")]
    assert await _nearest(api) == {}

    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "operator"))
    await c.page.get_by_role("link", name="避難所", exact=True).click()
    await c.page.get_by_label("適した災害").select_option("flood")
    rows = c.page.locator("table.shelters tbody tr[data-shelter]")
    await expect(rows).to_have_count(1)
    await c.page.get_by_label("名称・住所・IDで検索").fill("河川敷")
    await expect(rows.first).to_contain_text("未開設")
    await expect(c.page.locator("#total-open")).to_have_text("0")
    await c.shot("before")

    await c.page.get_by_role("button", name="開設する: 河川敷中央小学校").click()  # click 1
    await c.page.get_by_label("避難者数", exact=True).fill("35")
    await c.page.get_by_label("混雑", exact=True).select_option("medium")
    await c.page.get_by_role("button", name="確定").click()  # click 2
    await expect(c.page.get_by_role("alert")).to_contain_text(
        "河川敷中央小学校 を「開設」にしました。")
    row = c.page.locator('tr[data-shelter="S-RIVER"]')
    await expect(row).to_contain_text("開設")
    await expect(row).to_contain_text("やや混雑")
    await expect(row).to_contain_text("35")
    await expect(c.page.locator("#total-open")).to_have_text("1")
    await expect(c.page.locator("#total-evacuees")).to_have_text("35")
    marker = c.page.locator('path[data-shelter="S-RIVER"][data-status="open"]')
    await expect(marker).to_have_count(1)
    await c.shot("opened")

    opened = await _nearest(api)
    assert list(opened) == ["S-RIVER"]
    assert (opened["S-RIVER"]["status"], opened["S-RIVER"]["crowding"],
            opened["S-RIVER"]["evacuees"]) == ("open", "medium", 35)
    got = await received(sandbox, http, 2)
    assert got[1] == ("tok-home", "shelter_opened")


async def test_the_shelters_page_fits_a_tablet_and_a_viewer_cannot_change(
        console_page: Any, db_url: str, daemon: Daemon) -> None:
    """At a tablet's width a viewer sees the shelters with their totals and markers, and no
    status buttons."""
    await _shelters(db_url)
    c: Console = await console_page({"width": 820, "height": 1180})
    await c.sign_in(staff_token(db_url, "viewer"))
    await c.open("shelters")
    await expect(c.page.locator("table.shelters tbody tr[data-shelter]")).to_have_count(2)
    await expect(c.page.locator("#total-not_open")).to_have_text("2")
    await expect(c.page.locator("path[data-shelter]")).to_have_count(2)
    await expect(c.page.locator("button[data-to]")).to_have_count(0)
    width = await c.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, f"the page scrolls sideways at a tablet's width ({width} px)"
    await c.shot("tablet")


async def test_a_quarantined_cap_message_shows_its_reason_and_raw_text(
        console_page: Any, db_url: str, daemon: Daemon, http: aiohttp.ClientSession) -> None:
    """A CAP Draft posted through the staff API is refused; the feeds page lists it in the
    quarantine with the reason, and its page shows the reason and the raw XML as text, never
    as markup; the good message posted next is in the received list with
    its order."""
    operator = staff_token(db_url, "operator")
    bad = capgen.message("draft-1", status="Draft")
    status, refused = await post_cap(http, daemon, operator, bad)
    assert status == 400 and refused["error"] == (
        "status Draft is not accepted: drafts are never issued")
    status, issued = await post_cap(http, daemon, operator, capgen.message("good-1"))
    assert status == 202, issued

    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "viewer"))
    await c.page.get_by_role("link", name="フィード", exact=True).click()
    item = c.page.locator(f'#quarantine tr[data-item="{refused["quarantine_id"]}"]')
    await expect(item).to_contain_text("drafts are never issued")
    await expect(item).to_contain_text("staff-api")
    await expect(c.page.locator("#feed-health")).to_contain_text("APIへの投稿")
    message = c.page.locator('#cap-messages tr[data-identifier="good-1"]')
    await expect(message).to_contain_text("発令")
    await expect(message).to_contain_text("警戒レベル4")
    await c.shot("feeds")

    await item.get_by_role("link", name=re.compile("表示")).click()
    await expect(c.page.locator("#item-reason")).to_have_text(refused["error"])
    raw = c.page.locator("#item-raw")
    await expect(raw).to_contain_text("<status>Draft</status>")
    assert await raw.text_content() == bad.decode()
    assert await c.page.locator("#item-raw *").count() == 0
    await c.shot("item")
    await c.page.get_by_role("button", name="English").click()
    await expect(c.page.get_by_role("heading", level=1)).to_have_text(
        f"Quarantined item #{refused['quarantine_id']}")
    await expect(c.page.locator("#item-raw")).to_contain_text("<status>Draft</status>")


async def test_the_audit_log_is_an_admins_page_only(
        console_page: Any, db_url: str, daemon: Daemon, http: aiohttp.ClientSession) -> None:
    """An admin's audit page lists the actions taken (an order issued, a shelter opened)
    with who did them, and filters by action; an operator is not offered the page, and
    reaching it by address shows no entries and asks nothing of the server."""
    await _shelters(db_url)
    api = Client(http, daemon.url)
    operator = staff_token(db_url, "operator")
    status, order = await api.call("POST", "/v1/staff/orders", operator, ORDER)
    assert status == 201, order
    status, _ = await api.call("PUT", "/v1/staff/shelters/S-HILL/status", operator,
                               {"status": "open", "evacuees": 4})
    assert status == 200

    admin: Console = await console_page()
    await admin.sign_in(staff_token(db_url, "admin"))
    await admin.page.get_by_role("link", name="監査ログ", exact=True).click()
    entries = admin.page.locator("#audit tbody tr")
    await expect(admin.page.locator('#audit tr[data-action="order.issue"]')).to_contain_text(
        order["id"])
    await expect(admin.page.locator('#audit tr[data-action="shelter.status"]')).to_contain_text(
        "S-HILL")
    await admin.shot("audit")
    await admin.page.get_by_label("操作").fill("shelter.status")
    await admin.page.get_by_role("button", name="絞り込む").click()
    await expect(entries).to_have_count(1)
    await expect(entries.first).to_contain_text("S-HILL")

    other: Console = await console_page()
    await other.sign_in(staff_token(db_url, "operator"))
    await expect(other.page.locator("header nav")).not_to_contain_text("監査ログ")
    asked: list[str] = []
    other.page.on("request", lambda r: asked.append(r.url) if "/v1/staff/audit" in r.url else None)
    await other.open("audit")
    await expect(other.page.locator("main")).to_contain_text("管理者")
    assert asked == []
    await other.shot("operator")
