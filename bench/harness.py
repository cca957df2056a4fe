"""Shared set-up of the end-to-end benchmarks: a throw-away database, the sandbox and the daemon
as real processes, a staff token from the real CLI, and bulk seeding of devices with COPY.

Used by bench_fanout.py and bench_latency.py; not part of the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
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
from alertd.sandbox.handle import DaemonProcess, clean_env, free_port_base, staff_token
from alertd.sandbox.handle import SandboxProcess as Sandbox

__all__ = ["Daemon", "Sandbox", "daemon", "database", "post_order", "sandbox", "seed",
           "staff_token"]

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


@contextlib.asynccontextmanager
async def sandbox(directory: Path) -> AsyncIterator[Sandbox]:
    """`alertd sandbox` on free ports until the block ends."""
    sb = await Sandbox.launch(directory, directory.parent / "sandbox.log", deadline_s=DEADLINE_S)
    try:
        yield sb
    finally:
        sb.stop()


@dataclass
class Daemon:
    """A running `alertd run` process (api + worker) and how long it took to be ready."""

    process: DaemonProcess
    ready_s: float

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return self.process.url

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The process."""
        assert self.process.proc is not None
        return self.process.proc


@contextlib.asynccontextmanager
async def daemon(
    db_url: str, config: Path, log: Path, http: aiohttp.ClientSession, workers: int = 1,
    **settings: str
) -> AsyncIterator[Daemon]:
    """`python -m alertd.cli --config <sandbox.toml> run --workers N`, ready (/readyz 200 and,
    with worker processes, each of them holding its lock) on entry."""
    port = free_port_base(1)
    env = clean_env(
        ALERTD_DATABASE_URL=db_url, ALERTD_HTTP_PORT=str(port), ALERTD_LOG_FORMAT="json",
        # The benchmarks time sending: an order over 100,000 devices (--devices) must not
        # wait for a second operator (four-eyes) unless a benchmark asks for it.
        **{"ALERTD_ORDERS_APPROVAL_OVER_DEVICES": "0",
           **{f"ALERTD_{k.upper()}": v for k, v in settings.items()}},
    )
    process = DaemonProcess(port=port, env=env, config=config, log=log, workers=workers)
    started = time.perf_counter()  # the start-up itself is what is timed
    process.start()
    try:
        await process.ready(http, DEADLINE_S)
        await _holding(log, workers if workers > 1 else 1)
        yield Daemon(process, time.perf_counter() - started)
    finally:
        process.stop()


def _count(log: Path, text: str) -> int:
    return log.read_text(errors="replace").count(text)


async def _holding(log: Path, dispatchers: int) -> None:
    """Wait until `dispatchers` dispatchers of this daemon log that they hold their lock."""
    until = time.monotonic() + DEADLINE_S
    while _count(log, '"dispatcher_holding"') < dispatchers:
        if time.monotonic() > until:
            raise RuntimeError(f"{dispatchers} dispatchers did not start in {DEADLINE_S} s")
        await asyncio.sleep(0.05)


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
        if r.status != 201:  # 202: held for approval (four-eyes), nothing sent
            raise RuntimeError(f"order not issued: {r.status} {answer}")
        return answer
