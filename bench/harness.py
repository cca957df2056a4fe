"""Shared set-up of the end-to-end benchmarks: a throw-away database, the sandbox and the daemon
as real processes, a staff token from the real CLI, and bulk seeding of devices with COPY.

Used by bench_fanout.py and bench_latency.py; not part of the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from alertd import db, logs
from alertd.sandbox.handle import SandboxProcess as Sandbox

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from raw_push_loop import free_port_base  # noqa: E402 - bench/ is not a package

SERVER_URL = os.environ.get(
    "ALERTD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DEADLINE_S = 120.0

logs.configure("console", "warning")  # the benchmark's own output only


def url_for(name: str) -> str:
    """The URL of database `name` on the benchmark's PostgreSQL server."""
    return urlunsplit(urlsplit(SERVER_URL)._replace(path="/" + name))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def database(prefix: str) -> AsyncIterator[str]:
    """A fresh, migrated database of a unique name, dropped when the block ends."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        conn = await db.connect_one(url_for(name))
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        yield url_for(name)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ALERTD_")}


@contextlib.asynccontextmanager
async def sandbox(directory: Path) -> AsyncIterator[Sandbox]:
    """`alertd sandbox` on free ports until the block ends."""
    base = free_port_base()
    log = (directory.parent / "sandbox.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [
            sys.executable,
            "-m",
            "alertd.cli",
            "sandbox",
            "--port-base",
            str(base),
            "--dir",
            str(directory),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=_clean_env(),
    )
    sb = Sandbox(proc, directory, base)
    try:
        until = time.monotonic() + DEADLINE_S
        while not sb.config.exists():
            if proc.poll() is not None or time.monotonic() > until:
                raise RuntimeError("the sandbox did not start; see sandbox.log")
            await asyncio.sleep(0.05)
        yield sb
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Daemon:
    """A running `alertd run` process (api + worker) and how long it took to be ready."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float = 0.0

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def daemon(
    db_url: str, config: Path, log: Path, http: aiohttp.ClientSession, **settings: str
) -> AsyncIterator[Daemon]:
    """`python -m alertd.cli --config <sandbox.toml> run`, ready (/readyz 200) on entry."""
    port = free_port_base(1)
    env = _clean_env()
    env.update(
        {"ALERTD_DATABASE_URL": db_url, "ALERTD_HTTP_PORT": str(port), "ALERTD_LOG_FORMAT": "json"}
    )
    env.update({f"ALERTD_{k.upper()}": v for k, v in settings.items()})
    out = log.open("ab")
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: ASYNC220 - the start-up itself is what is timed
        [sys.executable, "-m", "alertd.cli", "--config", str(config), "run"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    d = Daemon(proc, port, log)
    try:
        until = time.monotonic() + DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited; see {log}")
            if time.monotonic() > until:
                raise RuntimeError("the daemon did not become ready")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{d.url}/readyz") as r:
                    if r.status == 200:
                        break
            await asyncio.sleep(0.02)
        d.ready_s = time.perf_counter() - started
        yield d
    finally:
        _stop(proc)
        out.close()


def staff_token(db_url: str, role: str = "operator") -> str:
    """A staff token made with the real CLI (the last line it prints)."""
    env = _clean_env()
    env["ALERTD_DATABASE_URL"] = db_url
    out = subprocess.run(
        [sys.executable, "-m", "alertd.cli", "staff-token", "create", "--role", role],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().strip().splitlines()[-1]


async def seed(
    db_url: str,
    platforms: Sequence[str],
    tokens: Sequence[str],
    lon: Sequence[float],
    lat: Sequence[float],
) -> None:
    """Register devices with a current location straight in the database, with COPY.

    The device_points NOTIFY trigger is disabled during the load (one NOTIFY per row would
    be pointless: the daemon starts afterwards and loads its index from the table)."""
    conn = await db.connect_one(db_url)
    try:
        ids = [uuid.uuid4() for _ in tokens]
        secrets = [os.urandom(32) for _ in tokens]
        async with conn.transaction():
            await conn.copy_records_to_table(
                "devices",
                records=zip(ids, platforms, tokens, secrets, strict=True),
                columns=("id", "platform", "push_token", "secret_hash"),
            )
            await conn.execute(
                "CREATE TEMP TABLE seed_points (device_id uuid, lon float8,"
                " lat float8) ON COMMIT DROP"
            )
            await conn.copy_records_to_table(
                "seed_points",
                records=zip(ids, lon, lat, strict=True),
                columns=("device_id", "lon", "lat"),
            )
            await conn.execute("ALTER TABLE device_points DISABLE TRIGGER USER")
            await conn.execute(
                "INSERT INTO device_points (device_id, device_seq, slot, lon, lat)"
                " SELECT d.id, d.seq, 0, s.lon, s.lat FROM seed_points s"
                " JOIN devices d ON d.id = s.device_id"
            )
            await conn.execute("ALTER TABLE device_points ENABLE TRIGGER USER")
        await conn.execute("ANALYZE devices")
        await conn.execute("ANALYZE device_points")
    finally:
        await conn.close()


async def post_order(
    http: aiohttp.ClientSession, daemon_url: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST /v1/staff/orders; the 201 body."""
    async with http.post(
        f"{daemon_url}/v1/staff/orders", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        answer: dict[str, Any] = await r.json()
        if r.status != 201:
            raise RuntimeError(f"order refused: {r.status} {answer}")
        return answer
