"""A handle on a running `alertd sandbox` process: where it is and what it recorded.

Tests, benchmarks and drills start the sandbox as a process and read its inspection endpoint
through this one class."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp


@dataclass
class SandboxProcess:
    """A running `alertd sandbox --port-base base --dir directory`."""

    proc: subprocess.Popen[bytes]
    directory: Path
    base: int

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
