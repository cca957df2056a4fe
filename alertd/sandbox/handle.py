"""Launching and handling `alertd sandbox` and `alertd run` as processes.

Tests, benchmarks and drills start the sandbox and the daemon through this one module: free
ports, start-up, readiness, stopping, and reading what the sandbox recorded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

READY_S = 30.0  # default bound on a process's start-up
_LOWEST_PORT = 10000  # free_port_base stays above the ports services usually take
_ATTEMPTS = 5  # sandbox starts tried when its ports were taken meanwhile
_POLL_S = 0.02  # how often readiness is re-checked while waiting
_STOP_S = 30.0  # how long a SIGTERM gets before SIGKILL


def _lowest_ephemeral_port() -> int:
    """Where the range the kernel picks outgoing connections' local ports from begins."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port_base(count: int = 3) -> int:
    """A port N such that N .. N+count-1 are free right now.

    Chosen below the ephemeral range, so that no outgoing connection (a database client, an
    HTTP client) takes one of them between this check and the server binding it."""
    low = _lowest_ephemeral_port()
    top = low - count if low - count > _LOWEST_PORT else 65536 - count
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(_LOWEST_PORT, top)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError("no free port range found")


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any ALERTD_ variable, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTD_")}
    env.update(settings)
    return env


def _alertd(*args: str) -> list[str]:
    return [sys.executable, "-m", "alertd.cli", *args]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_S)


def _size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def _since(log: Path, offset: int) -> str:
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


@dataclass
class SandboxProcess:
    """A running `alertd sandbox --port-base base --dir directory`."""

    proc: subprocess.Popen[bytes]
    directory: Path
    base: int
    log: Path | None = None

    @classmethod
    def start(cls, directory: Path, log: Path, env: dict[str, str] | None = None,
              ) -> SandboxProcess:
        """Start the sandbox on free ports, its output going to `log`; see `ready`."""
        base = free_port_base()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                _alertd("sandbox", "--port-base", str(base), "--dir", str(directory)),
                stdout=out, stderr=subprocess.STDOUT, env=env if env is not None else clean_env(),
            )
        return cls(proc, directory, base, log)

    @classmethod
    async def launch(cls, directory: Path, log: Path, env: dict[str, str] | None = None,
                     deadline_s: float = READY_S) -> SandboxProcess:
        """Start the sandbox and wait until it serves; on ports taken in between (another
        program bound one after free_port_base looked), try again on other ports."""
        for attempt in range(1, _ATTEMPTS + 1):
            seen = _size(log)
            sb = cls.start(directory, log, env)
            try:
                await sb.ready(deadline_s)
                return sb
            except RuntimeError:
                sb.stop()
                if attempt == _ATTEMPTS or "address already in use" not in _since(log, seen):
                    raise
        raise AssertionError("unreachable")

    async def ready(self, deadline_s: float = READY_S) -> None:
        """Wait until it serves (it has written sandbox.toml); fail if it exits or is late."""
        until = time.monotonic() + deadline_s
        while not self.config.exists():
            if self.proc.poll() is not None or time.monotonic() > until:
                raise RuntimeError(f"the sandbox did not start: {_tail(self.log or Path())}")
            await asyncio.sleep(_POLL_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end in time."""
        _stop(self.proc)

    @property
    def config(self) -> Path:
        """The sandbox.toml it wrote (its existence means the sandbox is serving)."""
        return self.directory / "sandbox.toml"

    @property
    def inspect_url(self) -> str:
        """Base URL of the inspection endpoint."""
        return f"http://127.0.0.1:{self.base + 2}"

    async def deliveries(self, http: aiohttp.ClientSession,
                         since: int = 0) -> list[dict[str, Any]]:
        """Requests the fakes received, from index `since` on."""
        async with http.get(f"{self.inspect_url}/deliveries", params={"since": since}) as r:
            r.raise_for_status()
            body: list[dict[str, Any]] = await r.json()
            return body

    async def clear(self, http: aiohttp.ClientSession) -> None:
        """Forget recorded requests and the failure counters."""
        async with http.delete(f"{self.inspect_url}/deliveries") as r:
            r.raise_for_status()

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """Counters: recorded deliveries and requests received per service."""
        async with http.get(f"{self.inspect_url}/stats") as r:
            r.raise_for_status()
            body: dict[str, Any] = await r.json()
            return body


@dataclass
class DaemonProcess:
    """An `alertd --config config run --role roles --workers workers` process; `start` may be
    called again after it ended (a restart on the same port, environment and log)."""

    port: int
    env: dict[str, str]
    config: Path
    log: Path
    roles: str = "api,worker,feeds"
    extra: list[str] = field(default_factory=list)
    # Dispatcher processes (`--workers`): in-process unless asked for; None: the default.
    workers: int | None = 1
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process, its output appended to the log; see `ready`."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                _alertd("--config", str(self.config), "run", "--role", self.roles,
                        *(("--workers", str(self.workers)) if self.workers is not None else ()),
                        *self.extra),
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )

    async def ready(self, http: aiohttp.ClientSession, deadline_s: float = READY_S) -> None:
        """Wait until /readyz answers 200 (a node without the api role: until it logs its
        start); fail with the log's tail if it exits or is late."""
        assert self.proc is not None
        until = time.monotonic() + deadline_s
        while not await self._is_ready(http):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {_tail(self.log)}")
            if time.monotonic() > until:
                raise RuntimeError(f"the daemon was not ready in {deadline_s} s: {_tail(self.log)}")
            await asyncio.sleep(_POLL_S)

    async def _is_ready(self, http: aiohttp.ClientSession) -> bool:
        if "api" not in self.roles.split(","):
            return '"alertd_started"' in self.log.read_text(errors="replace")
        try:
            async with http.get(f"{self.url}/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send a signal and wait for the process to end; its exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def stop(self) -> None:
        """SIGTERM if it is running, then SIGKILL if it does not end in time."""
        if self.proc is not None:
            _stop(self.proc)


def staff_token(db_url: str, role: str = "operator") -> str:
    """A staff token made with the real CLI (the last line it prints)."""
    out = subprocess.run(_alertd("staff-token", "create", "--role", role),
                         env=clean_env(ALERTD_DATABASE_URL=db_url), capture_output=True,
                         check=True)
    return out.stdout.decode().strip().splitlines()[-1]
