"""scripts/run: a taken port stops it before anything starts, naming the port and a way out."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertd.sandbox.handle import clean_env, free_port_base

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _hold(port: int, sockets: list[socket.socket]) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    sockets.append(s)


def _run(http_port: int, base: int) -> subprocess.CompletedProcess[str]:
    env = clean_env(ALERTD_HTTP_PORT=str(http_port), SANDBOX_PORT_BASE=str(base))
    return subprocess.run([str(ROOT / "scripts" / "run")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Listening sockets closed after the test."""
    held: list[socket.socket] = []
    yield held
    for s in held:
        s.close()


def test_taken_http_port_is_named_before_anything_starts(sockets: list[socket.socket]) -> None:
    """With the HTTP port taken, scripts/run says so and how to choose another, and mints no
    token, starts no sandbox and touches no database."""
    base = free_port_base(8)
    http_port = base + 6
    _hold(http_port, sockets)
    out = _run(http_port, base)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"scripts/run: port {http_port} (HTTP API) is taken; choose another: "
        f"ALERTD_HTTP_PORT={http_port + 1} scripts/run"]


def test_taken_sandbox_ports_are_named_with_the_base_variable(
        sockets: list[socket.socket]) -> None:
    """With a sandbox port taken, scripts/run names it and SANDBOX_PORT_BASE with a free base."""
    base = free_port_base(7)
    _hold(base + 1, sockets)
    _hold(base + 2, sockets)
    out = _run(base + 6, base)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"scripts/run: ports {base + 1} (sandbox FCM), {base + 2} (sandbox inspection) are "
        "taken; the sandbox uses SANDBOX_PORT_BASE and the two ports after it; choose another "
        f"base: SANDBOX_PORT_BASE={base + 3} scripts/run"]
