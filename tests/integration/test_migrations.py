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


async def test_tokens_shared_before_0011_keep_their_newest_holder(empty_db_url: str) -> None:
    """Migration 0011 leaves, of the devices sharing an active push token on one platform,
    the one changed last holding it and disables the others; other tokens, other platforms
    and disabled devices are left as they were."""
    conn = await db.connect_one(empty_db_url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY,"
                           " applied_at timestamptz NOT NULL DEFAULT now())")
        for version, sql in db.migration_files():
            if version >= "0011":
                break
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
        rows = [("a", "ios", "dup", "active", "2024-01-01"), ("b", "ios", "dup", "active",
                "2024-06-01"), ("c", "ios", "dup", "active", "2024-03-01"),
                ("d", "ios", "dup", "invalid", "2024-09-01"),
                ("e", "android", "dup", "active", "2024-01-01"),
                ("f", "ios", "lone", "active", "2024-01-01")]
        for name, platform, token, state, at in rows:
            await conn.execute(
                "INSERT INTO devices (id, platform, push_token, token_state, secret_hash,"
                " updated_at) VALUES (md5($1)::uuid, $2, $3, $4, decode(md5($1), 'hex'),"
                " $5::text::timestamptz)", name, platform, token, state, at)
        assert "0011_push_token_owner" in await db.migrate(conn)
        states = await conn.fetch(
            "SELECT token_state FROM devices ORDER BY array_position($1::uuid[], id)",
            [await conn.fetchval("SELECT md5($1)::uuid", n) for n, *_ in rows])
        assert [r["token_state"] for r in states] == [
            "invalid", "active", "invalid", "invalid", "active", "active"]
    finally:
        await conn.close()
