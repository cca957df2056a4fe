"""Browser harness: the real daemon and sandbox (the e2e fixtures) driven through the staff
console by Playwright in Debian's headless Chromium (never a browser Playwright downloads).

Every page a test opens fails the test on any console error, uncaught exception, failed
request or answer >= 400 that the test did not announce with `Console.expect(...)`, and
screenshots go to test-artifacts/screenshots/ (`Console.shot`, and one at every test's end).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Playwright, Request, Response, async_playwright

from tests.e2e import conftest as e2e
from tests.e2e.conftest import Daemon

# The e2e harness's fixtures, here too: the real daemon and sandbox on a fresh database.
daemon, db_url, http, sandbox = e2e.daemon, e2e.db_url, e2e.http, e2e.sandbox
no_stray_daemons = e2e.no_stray_daemons

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def chromium_path() -> str | None:
    """Debian's Chromium (or $ALERTD_TEST_CHROMIUM), if installed."""
    for candidate in (os.environ.get("ALERTD_TEST_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    """The Playwright driver (no browser of its own)."""
    async with async_playwright() as p:
        yield p


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    """Headless Chromium from the machine: skipped without it, except in CI where it fails."""
    path = chromium_path()
    if path is None:
        reason = ("Chromium is not installed (apt-get install chromium; scripts/test does it "
                  "when run as root)")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)  # this run's screenshots only
    b = await playwright.chromium.launch(executable_path=path,
                                         args=["--no-sandbox", "--disable-gpu"])
    yield b
    await b.close()


@dataclass
class Console:
    """One browser page on the console, recording everything that went wrong in it."""

    page: Page
    base: str
    name: str
    problems: list[str] = field(default_factory=list)
    expected: list[tuple[str, int]] = field(default_factory=list)  # (path regex, status)
    shots: int = 0

    def watch(self) -> None:
        """Record console errors, page errors, failed requests and answers >= 400."""
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "assert"):
            text = msg.text
            # Chromium logs every answer >= 400 as a console error too: announced ones are fine
            if text.startswith("Failed to load resource") and self._announced_text(msg):
                return
            self.problems.append(f"console {msg.type}: {text} at {msg.location}")

    def _announced_text(self, msg: Any) -> bool:
        url = str(msg.location.get("url", ""))
        status = re.search(r"status of (\d{3})", msg.text)
        return bool(status) and self._announced(url, int(status.group(1)))  # type: ignore[union-attr]

    def _failed(self, request: Request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure and request.resource_type in ("fetch", "xhr"):
            return  # a page left while its poll was in flight
        self.problems.append(f"request failed: {request.method} {request.url} {failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and not self._announced(response.url, response.status):
            self.problems.append(f"answer {response.status}: {response.request.method} "
                                 f"{response.url}")

    def _announced(self, url: str, status: int) -> bool:
        return any(re.search(p, url) and s == status for p, s in self.expected)

    @contextmanager
    def expect(self, path_regex: str, status: int) -> Iterator[None]:
        """Within the block, answers `status` to URLs matching `path_regex` are expected."""
        entry = (path_regex, status)
        self.expected.append(entry)
        try:
            yield
        finally:
            pass  # kept: Chromium's console line for it may arrive after the block

    async def shot(self, label: str) -> Path:
        """A full-page screenshot into test-artifacts/screenshots/."""
        self.shots += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{self.shots:02d}-{label}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def open(self, fragment: str = "") -> None:
        """Load the console (at `#/fragment`)."""
        await self.page.goto(f"{self.base}/console{'#/' + fragment if fragment else ''}")

    async def sign_in(self, token: str) -> None:
        """Sign in through the form and wait for the navigation to appear."""
        await self.open()
        await self.page.get_by_label(re.compile("職員トークン|Staff token")).fill(token)
        await self.page.get_by_role("button", name=re.compile("^(ログイン|Sign in)$")).click()
        await self.page.locator("header nav").wait_for(state="visible")


@pytest.fixture
async def console_page(request: pytest.FixtureRequest, browser: Browser,
                       daemon: Daemon) -> AsyncIterator[Any]:
    """A function making pages on the daemon's console (each in its own browser context:
    its own cookies), checked for problems at the test's end."""
    made: list[Console] = []
    contexts = []

    async def make(viewport: dict[str, int] | None = None) -> Console:
        ctx = await browser.new_context(viewport=viewport or {"width": 1366, "height": 900},
                                        locale="ja-JP", timezone_id="Asia/Tokyo")
        contexts.append(ctx)
        page = await ctx.new_page()
        page.set_default_timeout(15_000)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        c = Console(page=page, base=daemon.url, name=f"{name}-{len(made)}")
        c.watch()
        made.append(c)
        return c

    yield make
    for c in made:
        if not c.page.is_closed():
            await c.shot("end")
    for ctx in contexts:
        await ctx.close()
    problems = [p for c in made for p in c.problems]
    assert problems == [], "the console page had problems:\n" + "\n".join(problems)
