"""End-to-end harness: the sandbox and the daemon as real processes on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertd.sandbox.handle import DaemonProcess, clean_env, free_port_base, staff_token
from alertd.sandbox.handle import SandboxProcess as Sandbox
from tests.waiting import DEADLINE, wait_for

__all__ = ["Client", "Daemon", "Sandbox", "daemon_env", "free_port_base", "issued",
           "post_cap", "push_kind", "received", "staff_token", "wait_for"]

_STARTED: list[DaemonProcess] = []


@dataclass
class Daemon(DaemonProcess):
    """A daemon process that the test's clean-up stops even when the test failed midway."""

    def start(self) -> None:
        """Start the process and register it for the clean-up."""
        super().start()
        _STARTED.append(self)


def _stop_started() -> None:
    while _STARTED:
        _STARTED.pop().stop()


@pytest.fixture(autouse=True)
def no_stray_daemons() -> Iterator[None]:
    """Every daemon a test started is stopped after it, even when the test failed midway."""
    yield
    _stop_started()


# The daemons a test started are stopped before what they use goes away (their database is
# dropped, the sandbox stopped), not after: else they log lost connections at every test's end.
# These fixtures are set up before the daemons start, so they are torn down after the test and
# before the autouse no_stray_daemons.
@pytest.fixture
async def db_url(db_url: str) -> AsyncIterator[str]:
    """This test's migrated database (tests/conftest.py); its daemons stop before the drop."""
    yield db_url
    _stop_started()


@pytest.fixture
async def empty_db_url(empty_db_url: str) -> AsyncIterator[str]:
    """A database with no schema (tests/conftest.py); its daemons stop before the drop."""
    yield empty_db_url
    _stop_started()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """A sandbox process on free ports, stopped afterwards (after the daemons using it)."""
    sb = await Sandbox.launch(tmp_path / "sandbox", tmp_path / "sandbox.log", deadline_s=DEADLINE)
    try:
        yield sb
    finally:
        _stop_started()
        sb.stop()


def daemon_env(db_url: str, port: int, **extra: str) -> dict[str, str]:
    """Environment of a daemon process for tests: fast retries, JSON logs."""
    return clean_env(**{
        "ALERTD_DATABASE_URL": db_url,
        "ALERTD_HTTP_PORT": str(port),
        "ALERTD_LOG_FORMAT": "json",
        "ALERTD_DISPATCH_BACKOFF_BASE_S": "0.2",
        "ALERTD_DISPATCH_BACKOFF_MAX_S": "2",
        "ALERTD_DISPATCH_LEASE_S": "5",
        "ALERTD_DISPATCH_POLL_S": "0.2",
        # Previews show exact counts: the spine tests count a handful of devices.
        "ALERTD_ORDERS_PREVIEW_MIN_COUNT": "1",
        **extra,
    })


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


@pytest.fixture
async def daemon(db_url: str, sandbox: Sandbox, tmp_path: Path,
                 http: aiohttp.ClientSession) -> AsyncIterator[Daemon]:
    """The daemon (api + worker) against the sandbox, ready."""
    port = free_port_base(1)
    d = Daemon(port=port, env=daemon_env(db_url, port), config=sandbox.config,
               log=tmp_path / "daemon.log", extra=["--migrate"])
    d.start()
    await d.ready(http, DEADLINE)
    yield d
    d.stop()


class Client:
    """Small JSON helper over the daemon's API."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def call(self, method: str, path: str, token: str | None = None, json: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One request; returns (status, parsed JSON or None)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.base + path, json=json, headers=h) as r:
            body = await r.read()
            try:
                import json as _json

                return r.status, _json.loads(body) if body else None
            except ValueError:
                return r.status, body.decode(errors="replace")

    async def device(self, platform: str, token: str, lat: float | None = None,
                     lon: float | None = None, locale: str = "ja") -> tuple[str, str]:
        """Register a device (optionally with a location); returns (device_id, secret)."""
        status, body = await self.call("POST", "/v1/devices", json={
            "platform": platform, "push_token": token, "locale": locale})
        assert status == 201, body
        if lat is not None and lon is not None:
            s, b = await self.call("PUT", "/v1/me/location", body["device_secret"],
                                   {"lat": lat, "lon": lon})
            assert s == 204, b
        return body["device_id"], body["device_secret"]


async def issued(api: Client, token: str, body: Any, approver: str) -> Any:
    """Issue an order and return the issue's answer ({id, version, devices}); one held for a
    second operator's approval (202: level 5 with the shipped settings) is approved with the
    `approver` token (another operator's) first, as four-eyes asks."""
    status, answer = await api.call("POST", "/v1/staff/orders", token, body)
    if status == 202:
        status, answer = await api.call(
            "POST", f"/v1/staff/orders/{answer['id']}/approve", approver)
        assert status == 200, answer
        return answer
    assert status == 201, answer
    return answer


async def post_cap(http: aiohttp.ClientSession, daemon: Daemon, token: str,
                   body: bytes) -> tuple[int, Any]:
    """POST a CAP document to the staff endpoint; (status, JSON answer)."""
    async with http.post(f"{daemon.url}/v1/staff/cap", data=body, headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/cap+xml"}) as r:
        return r.status, await r.json()


def push_kind(d: dict[str, Any]) -> str:
    """The alert kind of a sandbox delivery, APNs or FCM."""
    payload = d["payload"]
    return str(payload["kind"] if "kind" in payload else payload["message"]["data"]["kind"])


async def received(sandbox: Sandbox, http: aiohttp.ClientSession,
                   n: int) -> list[tuple[str, str]]:
    """Wait for n accepted pushes; (token, kind) of each, in arrival order."""
    async def check() -> list[tuple[str, str]] | None:
        got = [(d["token"], push_kind(d)) for d in await sandbox.deliveries(http)
               if d["status"] == 200]
        return got if len(got) >= n else None
    result: list[tuple[str, str]] = await wait_for(check, f"{n} pushes")
    return result
