"""End-to-end harness: the sandbox and the daemon as real processes on a fresh database."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertd.sandbox.handle import SandboxProcess as Sandbox
from tests.waiting import DEADLINE, POLL_S, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(n: int = 3) -> int:
    """A base port with n consecutive free ports."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        if all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free ports")


@dataclass
class Daemon:
    """A running `alertd run` process."""

    port: int
    env: dict[str, str]
    config: Path
    roles: str = "api,worker,feeds"
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra: list[str] = field(default_factory=list)
    others: list[Daemon] = field(default_factory=list)  # further nodes started with this one

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (its output goes to a log file)."""
        assert self.log is not None
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alertd.cli", "--config", str(self.config), "run",
             "--role", self.roles, *self.extra],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        _STARTED.append(self.proc)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send a signal and wait for the process to end."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    async def ready(self, http: aiohttp.ClientSession) -> None:
        """Wait until /readyz answers 200 (a node without the api role: until it logs its start)."""
        async def check() -> bool:
            assert self.proc is not None and self.log is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-3000:]}")
            if "api" not in self.roles.split(","):
                return '"alertd_started"' in self.log.read_text()
            try:
                async with http.get(f"{self.url}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False
        await wait_for(check, "daemon /readyz")


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def no_stray_daemons() -> Iterator[None]:
    """Every daemon a test started is stopped after it, even when the test failed midway."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox process on free ports, stopped afterwards."""
    base = free_port_base()
    directory = tmp_path / "sandbox"
    proc = subprocess.Popen(
        [sys.executable, "-m", "alertd.cli", "sandbox", "--port-base", str(base),
         "--dir", str(directory)],
        stdout=(tmp_path / "sandbox.log").open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
    )
    sb = Sandbox(proc, directory, base)
    end = time.monotonic() + DEADLINE
    while not sb.config.exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError((tmp_path / "sandbox.log").read_text())
        time.sleep(POLL_S)
    yield sb
    proc.terminate()
    proc.wait(timeout=30)


def daemon_env(db_url: str, port: int, **extra: str) -> dict[str, str]:
    """Environment of a daemon process for tests: fast retries, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTD_")}
    env.update({
        "ALERTD_DATABASE_URL": db_url,
        "ALERTD_HTTP_PORT": str(port),
        "ALERTD_LOG_FORMAT": "json",
        "ALERTD_DISPATCH_BACKOFF_BASE_S": "0.2",
        "ALERTD_DISPATCH_BACKOFF_MAX_S": "2",
        "ALERTD_DISPATCH_LEASE_S": "5",
        "ALERTD_DISPATCH_POLL_S": "0.2",
    })
    env.update(extra)
    return env


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
    await d.ready(http)
    yield d
    if d.proc and d.proc.poll() is None:
        d.kill(signal.SIGTERM)


def staff_token(db_url: str, role: str) -> str:
    """A staff token made with the real CLI (its last output line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTD_")}
    env["ALERTD_DATABASE_URL"] = db_url
    out = subprocess.run([sys.executable, "-m", "alertd.cli", "staff-token", "create",
                          "--role", role], env=env, cwd=ROOT, capture_output=True, check=True)
    return out.stdout.decode().strip().splitlines()[-1]


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
