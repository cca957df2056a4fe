"""Four-eyes in the console: a level-5 order waits for a second operator, who sees it with its
preview numbers and approves it; the operator who asked cannot approve it."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.test_orders import FUKUSHIMA_CITY, IWAKI, issue_page
from tests.e2e.conftest import Client, Daemon, Sandbox, received, staff_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_a_level_5_order_waits_for_a_second_operator(
        console_page: Any, db_url: str, daemon: Daemon, sandbox: Sandbox,
        http: aiohttp.ClientSession) -> None:
    """Operator A issues 緊急安全確保 for 福島市: the page says it waits for a second operator
    and the sandbox receives nothing; A's approvals page offers no approval and the server
    refuses A's own (403); operator B sees it with its preview number, approves, and the
    phone in 福島市 (not the one in Iwaki) receives it; B's page shows it complete."""
    api = Client(http, daemon.url)
    await api.device("ios", "city-ios", *FUKUSHIMA_CITY)
    await api.device("ios", "iwaki-ios", *IWAKI)
    a: Console = await console_page()
    await a.sign_in(staff_token(db_url, "operator"))
    await issue_page(a)
    await a.page.get_by_label("福島市", exact=True).check()
    await a.page.get_by_label("警戒レベル5 緊急安全確保").check()
    await a.page.get_by_label("見出し（日本語）").fill("直ちに命を守る行動を")
    await a.page.get_by_role("button", name="対象端末数を確認").click()
    await expect(a.page.locator("#preview-total")).to_have_text("対象端末: 1 台")
    await a.page.get_by_role("button", name="発令する").click()
    await a.page.get_by_role("dialog").get_by_role("button", name="送信する").click()
    await expect(a.page.locator("#pending-approval")).to_contain_text("第二の操作者の承認待ち")
    await a.shot("waiting")
    await a.page.get_by_role("link", name="承認待ちの一覧へ").click()
    card = a.page.locator("article.approval")
    await expect(card).to_contain_text("あなたの依頼です")
    await expect(card.get_by_role("button", name="承認して送信")).to_have_count(0)
    order_id = await card.get_attribute("data-order")
    session = await (await a.page.request.get(f"{a.base}/v1/console/session")).json()
    own = await a.page.request.post(f"{a.base}/v1/staff/orders/{order_id}/approve",
                                    headers={"X-CSRF-Token": session["csrf"]})
    assert own.status == 403
    assert await sandbox.deliveries(http) == []

    b: Console = await console_page()
    await b.sign_in(staff_token(db_url, "operator"))
    await b.page.get_by_role("navigation").get_by_role("link", name="承認待ち").click()
    card = b.page.locator(f'article.approval[data-order="{order_id}"]')
    await expect(card).to_contain_text("対象端末: 1 台")
    await expect(card).to_contain_text("福島市")
    await expect(card.locator(".reasons")).to_contain_text("level 5")
    await b.shot("to-approve")
    await card.get_by_role("button", name="承認して送信").click()
    dialog = b.page.get_by_role("dialog")
    await expect(dialog).to_contain_text("1 台の端末に送信します")
    await dialog.get_by_role("button", name="承認して送信").click()
    await b.page.wait_for_url(re.compile(f"#/orders/{order_id}$"))
    assert await received(sandbox, http, 1) == [("city-ios", "order")]
    await expect(b.page.locator("#phase")).to_have_text("配信完了", timeout=30_000)
    await expect(b.page.locator("#order-head h1")).to_contain_text("警戒レベル5 緊急安全確保")
    await b.shot("approved")
