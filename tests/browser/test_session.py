"""Console sign-in in a real browser: the cookie, roles, CSRF, logout, revoked tokens."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from alertd.sandbox.handle import clean_env
from tests.browser.conftest import Console
from tests.e2e.conftest import Daemon, staff_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PREVIEW = {"level": 4, "hazard": "flood", "area": {"area_codes": ["072010"]},
           "headline": {"ja": "避難指示"}}


def _cli(db_url: str, *args: str) -> str:
    """Run the real CLI on the test's database; its standard output."""
    return subprocess.run([sys.executable, "-m", "alertd.cli", *args],
                          env=clean_env(ALERTD_DATABASE_URL=db_url), capture_output=True,
                          check=True, text=True).stdout


async def _cookie(c: Console) -> dict[str, Any]:
    (cookie,) = [k for k in await c.page.context.cookies() if k["name"] == "alertd_session"]
    return dict(cookie)


async def test_sign_in_sets_a_strict_httponly_session_cookie(console_page: Any, db_url: str,
                                                            daemon: Daemon) -> None:
    """Signing in with an operator token shows the navigation with the issue page, and the
    session is an HttpOnly, SameSite=Strict cookie on / with an expiry (not Secure over plain
    HTTP); the page itself cannot read it."""
    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "operator"))
    await c.shot("signed-in")
    cookie = await _cookie(c)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/" and cookie["secure"] is False and cookie["expires"] > 0
    assert await c.page.evaluate("document.cookie") == ""
    await expect(c.page.locator("#issue-link")).to_be_visible()
    await expect(c.page.locator("header .who")).to_contain_text("操作者")


async def test_a_wrong_token_is_refused_with_the_reason(console_page: Any) -> None:
    """An unknown token leaves the sign-in form up with the server's reason."""
    c: Console = await console_page()
    await c.open()
    with c.expect(r"/v1/console/session$", 401):
        await c.page.get_by_label("職員トークン").fill("st_not-a-real-token")
        await c.page.get_by_role("button", name="ログイン").click()
        await expect(c.page.get_by_role("alert")).to_contain_text("ログインできません")
    await expect(c.page.locator("header")).to_be_hidden()


async def test_a_viewer_is_not_offered_issuing_and_the_server_refuses_it(
        console_page: Any, db_url: str) -> None:
    """A viewer sees no issue link and no issue page; a direct API call with the viewer's
    session cookie (and its CSRF token) is refused 403 all the same, while reading works."""
    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "viewer"))
    await expect(c.page.locator("header nav")).not_to_contain_text("新規発令")
    await expect(c.page.locator("#issue-link")).to_have_count(0)
    session = await (await c.page.request.get(f"{c.base}/v1/console/session")).json()
    assert session["role"] == "viewer"
    refused = await c.page.request.post(f"{c.base}/v1/staff/orders", data=PREVIEW,
                                        headers={"X-CSRF-Token": session["csrf"]})
    assert refused.status == 403
    assert "operator" in (await refused.json())["error"]
    read = await c.page.request.get(f"{c.base}/v1/staff/orders")
    assert read.status == 200
    await c.open("orders/new")
    await expect(c.page.locator("main")).to_contain_text("この操作には 操作者 権限が必要です")
    await expect(c.page.locator("#issue-form")).to_have_count(0)
    await c.shot("viewer")


async def test_an_unsafe_request_without_the_csrf_header_is_refused(console_page: Any,
                                                                    db_url: str) -> None:
    """With a live session cookie, a POST without X-CSRF-Token (what a forged cross-site
    request would send) is refused 403; the same with the session's header passes."""
    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "operator"))
    bare = await c.page.request.post(f"{c.base}/v1/staff/orders:preview", data=PREVIEW)
    assert bare.status == 403
    assert "X-CSRF-Token" in (await bare.json())["error"]
    wrong = await c.page.request.post(f"{c.base}/v1/staff/orders:preview", data=PREVIEW,
                                      headers={"X-CSRF-Token": "forged"})
    assert wrong.status == 403
    session = await (await c.page.request.get(f"{c.base}/v1/console/session")).json()
    ok = await c.page.request.post(f"{c.base}/v1/staff/orders:preview", data=PREVIEW,
                                   headers={"X-CSRF-Token": session["csrf"]})
    assert ok.status == 200, await ok.text()


async def test_sign_in_from_another_origin_is_refused(console_page: Any, db_url: str) -> None:
    """A sign-in POST whose Origin is another site (login CSRF) is refused 403, sets no
    cookie."""
    c: Console = await console_page()
    await c.open()
    answer = await c.page.request.post(f"{c.base}/v1/console/session",
                                       data={"token": staff_token(db_url, "operator")},
                                       headers={"Origin": "https://evil.example"})
    assert answer.status == 403
    assert [k for k in await c.page.context.cookies() if k["name"] == "alertd_session"] == []


async def _old_cookie_status(http: aiohttp.ClientSession, daemon: Daemon, value: str) -> int:
    async with http.get(f"{daemon.url}/v1/staff/orders",
                        headers={"Cookie": f"alertd_session={value}"}) as r:
        return r.status


async def test_logout_ends_the_session_on_the_server(console_page: Any, db_url: str,
                                                     daemon: Daemon,
                                                     http: aiohttp.ClientSession) -> None:
    """After signing out, the sign-in form is back and the old cookie value, replayed by
    another client, is refused 401: the session ended on the server, not only in the
    browser."""
    c: Console = await console_page()
    await c.sign_in(staff_token(db_url, "operator"))
    value = (await _cookie(c))["value"]
    assert await _old_cookie_status(http, daemon, value) == 200
    await c.page.get_by_role("button", name="ログアウト").click()
    await expect(c.page.get_by_label("職員トークン")).to_be_visible()
    assert [k for k in await c.page.context.cookies() if k["name"] == "alertd_session"] == []
    assert await _old_cookie_status(http, daemon, value) == 401
    await c.shot("signed-out")


async def test_revoking_the_token_ends_its_session_at_once(console_page: Any, db_url: str,
                                                           daemon: Daemon) -> None:
    """Revoking the staff token (alertd staff-token revoke) ends the console session signed
    in with it: the page's next request is refused and the sign-in form returns, saying so."""
    c: Console = await console_page()
    token = staff_token(db_url, "operator")
    await c.sign_in(token)
    listed = _cli(db_url, "staff-token", "list", "--json")
    (token_id,) = [t["id"] for t in json.loads(listed) if t["state"] == "active"]
    with c.expect(r"/v1/staff/", 401):
        _cli(db_url, "staff-token", "revoke", token_id)
        # the orders page polls; its next answer is a 401 and the form comes back
        await expect(c.page.get_by_role("alert")).to_contain_text(
            re.compile("セッションが終了しました"), timeout=15_000)
        await expect(c.page.get_by_label("職員トークン")).to_be_visible()
    await c.shot("revoked")
