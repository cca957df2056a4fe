"""`alertd sandbox`: fake APNs on N, fake FCM + OAuth on N+1, inspection on N+2."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from alertd.sandbox import material as mat
from alertd.sandbox.fake_apns import FakeApns
from alertd.sandbox.fake_fcm import FakeFcm
from alertd.sandbox.recorder import InspectionHooks, Recorder, inspection_app

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class Sandbox:
    """The three fake services sharing one recorder, started and stopped together."""

    def __init__(
        self,
        directory: Path,
        port_base: int,
        host: str = "127.0.0.1",
        fcm_token_ttl_s: int = 3600,
    ) -> None:
        self.directory = directory.resolve()
        self.host = host
        self.apns_port = port_base
        self.fcm_port = port_base + 1
        self.inspect_port = port_base + 2
        self.fcm_token_ttl_s = fcm_token_ttl_s
        self.recorder = Recorder()
        self.apns: FakeApns | None = None
        self.fcm: FakeFcm | None = None
        self._runners: list[web.AppRunner] = []

    @property
    def config_path(self) -> Path:
        """Where sandbox.toml is written once the fakes serve."""
        return self.directory / mat.CONFIG

    @property
    def client_host(self) -> str:
        """The address clients should dial (the bind address unless it is a wildcard)."""
        return "127.0.0.1" if self.host in _WILDCARDS else self.host

    @property
    def inspect_url(self) -> str:
        """Base URL of the inspection endpoint."""
        return f"http://{self.client_host}:{self.inspect_port}"

    async def start(self) -> None:
        """Write keys and certificates, listen on the three ports, then write sandbox.toml."""
        hosts = (self.client_host,) if self.client_host != "127.0.0.1" else ()
        material = await asyncio.to_thread(mat.prepare, self.directory, hosts, self.fcm_port)
        self.apns = FakeApns(self.recorder, material)
        self.fcm = FakeFcm(self.recorder, material, self.fcm_token_ttl_s)
        hooks = InspectionHooks(stats=self._stats, revoke_fcm_tokens=self.fcm.revoke)
        try:
            await self.apns.start(self.host, self.apns_port)
            await self.fcm.start(self.host, self.fcm_port)
            await self._serve(inspection_app(self.recorder, hooks), self.inspect_port)
        except BaseException:
            await self.close()
            raise
        text = mat.config_text(material, self.client_host, self.apns_port, self.fcm_port)
        mat.write_config(material, text)

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.host, port, backlog=1024, reuse_address=True)
        await site.start()

    def _stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.apns is not None:
            out.update(self.apns.stats())
        if self.fcm is not None:
            out.update(self.fcm.stats())
        return out

    async def close(self) -> None:
        """Stop serving; sandbox.toml is removed so nobody mistakes it for a live sandbox."""
        self.config_path.unlink(missing_ok=True)
        if self.apns is not None:
            await self.apns.close()
        if self.fcm is not None:
            await self.fcm.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `alertd sandbox`."""
    parser = argparse.ArgumentParser(
        prog="alertd sandbox", description="Local fake APNs and FCM for alertd."
    )
    parser.add_argument("--port-base", type=int, default=9500,
                        help="APNs on N, FCM and its token endpoint on N+1, inspection on N+2")
    parser.add_argument("--dir", type=Path, default=Path("./.local/sandbox"),
                        help="where the CA, keys, service account and sandbox.toml are written")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--fcm-token-ttl", type=int, default=3600,
                        help="lifetime of the OAuth access tokens the fake FCM issues, in seconds")
    args = parser.parse_args(argv)
    if not 0 < args.port_base < 65534:
        parser.error("--port-base must be between 1 and 65533")
    if args.fcm_token_ttl <= 0:
        parser.error("--fcm-token-ttl must be greater than 0")
    return args


async def serve(args: argparse.Namespace) -> int:
    """Run the sandbox until SIGTERM or SIGINT."""
    sandbox = Sandbox(args.dir, args.port_base, args.host, args.fcm_token_ttl)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sandbox.start()
    except OSError as exc:
        print(f"alertd sandbox: cannot listen: {exc}", file=sys.stderr)
        return 1
    host = sandbox.client_host
    print(
        f"sandbox ready apns=https://{host}:{sandbox.apns_port} "
        f"fcm=http://{host}:{sandbox.fcm_port} inspect={sandbox.inspect_url} "
        f"config={sandbox.config_path}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await sandbox.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `alertd sandbox` (and `python -m alertd.sandbox.server`)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
