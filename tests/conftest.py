"""Shared fixtures: a migrated template database cloned for every test that needs one."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from alertd import db, points, settings
from alertd.context import Context
from geo import municipalities
from tests.waiting import DEADLINE

ROOT = Path(__file__).resolve().parent.parent
AREAS = ROOT / "config" / "areas" / "fukushima_areas.geojson"
DEFAULTS = settings.load(environ={})


def server_url() -> str:
    """The PostgreSQL server the tests use (scripts/test sets it; default: local 5432)."""
    return os.environ.get("ALERTD_TEST_DATABASE_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")


def db_url_for(name: str) -> str:
    """The URL of database `name` on the test server."""
    return urlunsplit(urlsplit(server_url())._replace(path="/" + name))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(db_url_for("postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_db() -> AsyncIterator[str]:
    """A database with every migration applied, used as the template of test databases."""
    name = f"alertd_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await _admin(f'CREATE DATABASE "{name}"')
    conn = await db.connect_one(db_url_for(name))
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    yield name
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_url(template_db: str) -> AsyncIterator[str]:
    """A fresh migrated database of this test's own, dropped afterwards."""
    name = f"alertd_t_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield db_url_for(name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_db_url() -> AsyncIterator[str]:
    """A fresh database with no schema at all."""
    name = f"alertd_e_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    yield db_url_for(name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on this test's database."""
    p = await db.connect(db_url, min_size=1, max_size=5)
    yield p
    await p.close()


@pytest.fixture(scope="session")
def areas_path() -> Iterator[Path]:
    """The municipal areas file shipped in config/."""
    yield AREAS


@pytest.fixture(scope="session")
def table() -> municipalities.Table:
    """The Fukushima municipality table shipped in config/ (read-only, loaded once)."""
    return municipalities.load(AREAS)


@pytest.fixture
async def live(db_url: str, table: municipalities.Table) -> AsyncIterator[points.Points]:
    """A point index following this test's database, as the daemon's location follower runs."""
    pts = points.Points(index=points.new_index(DEFAULTS), table=table)
    stop = asyncio.Event()
    task = asyncio.create_task(points.follow(db_url, pts, stop))
    try:
        await asyncio.wait_for(pts.ready.wait(), DEADLINE)
        yield pts
    finally:
        stop.set()
        await task


@pytest.fixture
async def context(pool: asyncpg.Pool, db_url: str, live: points.Points) -> Context:
    """The daemon's request context on this test's database, its point index following it."""
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": db_url})
    return Context(cfg=cfg, pool=pool, points=live, table=live.table)


@pytest.fixture
async def stalled_context(context: Context) -> Context:
    """The context with a loaded point index whose follower is not running: no catch-up is
    ever confirmed (it gives up after 0.2 s)."""
    pts = points.Points(index=points.new_index(context.cfg),
                        table=context.table, catch_up_s=0.2)
    async with context.pool.acquire() as conn:
        await points.load(conn, pts)
    return dataclasses.replace(context, points=pts)
