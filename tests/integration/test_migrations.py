"""Migrations on a real PostgreSQL."""

from __future__ import annotations

import asyncio

from alertd import db


async def test_migrate_twice_applies_once(empty_db_url: str) -> None:
    """A second `migrate` finds nothing to do and the schema is current."""
    conn = await db.connect_one(empty_db_url)
    try:
        first = await db.migrate(conn)
        second = await db.migrate(conn)
        assert first == [v for v, _ in db.migration_files()]
        assert second == []
        assert await db.pending_migrations(conn) == []
    finally:
        await conn.close()


async def test_concurrent_migrations_do_not_collide(empty_db_url: str) -> None:
    """Two processes migrating at once apply each version exactly once (advisory lock)."""
    conns = [await db.connect_one(empty_db_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(db.migrate(c) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == [v for v, _ in db.migration_files()]
        rows = await conns[0].fetch("SELECT version FROM schema_migrations")
        assert len(rows) == len(db.migration_files())
    finally:
        for c in conns:
            await c.close()


async def test_pending_reported_on_empty_database(empty_db_url: str) -> None:
    """An unmigrated database reports every shipped migration as pending."""
    conn = await db.connect_one(empty_db_url)
    try:
        assert await db.pending_migrations(conn) == [v for v, _ in db.migration_files()]
    finally:
        await conn.close()
