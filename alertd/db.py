"""Connections to PostgreSQL and the plain-SQL migrations."""

from __future__ import annotations

import json
from importlib import resources

import asyncpg
import structlog

from alertd import errors

log = structlog.get_logger(__name__)

# Arbitrary constant: the advisory lock that serialises migrations across processes.
_MIGRATION_LOCK = 0x616C6572  # "aler"

Pool = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """Open a connection pool with JSON codecs installed."""
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection,
            command_timeout=60,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise errors.DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
    assert pool is not None
    return pool


async def connect_one(url: str) -> asyncpg.Connection:
    """Open a single connection with JSON codecs installed."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise errors.DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
    await _init_connection(conn)
    return conn


def migration_files() -> list[tuple[str, str]]:
    """The packaged migrations as (version, sql), in order."""
    root = resources.files("alertd.migrations")
    found = sorted(p.name for p in root.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), root.joinpath(name).read_text("utf-8")) for name in found]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet recorded; safe to run twice and concurrently."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
            log.info("migration_applied", version=version)
    return applied


async def pending_migrations(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """Versions shipped but not yet applied (empty when the schema is current)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done: set[str] = set()
    if exists:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [v for v, _ in migration_files() if v not in done]

