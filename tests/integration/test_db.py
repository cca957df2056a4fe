"""The bounded pool: one statement's bound server- and client-side, and the longer bound of an
order's fan-out inside db.bulk."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from alertd import db, settings


@pytest.fixture
async def bounded(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool bounding statements to 0.5 s, fan-out statements to 30 s."""
    cfg = settings.load(environ={"ALERTD_DATABASE_URL": db_url,
                                 "ALERTD_DATABASE_STATEMENT_TIMEOUT_S": "0.5",
                                 "ALERTD_DATABASE_BULK_TIMEOUT_S": "30",
                                 "ALERTD_DATABASE_IDLE_IN_TRANSACTION_S": "20"})
    pool = await db.connect(db_url, min_size=1, max_size=2, bounds=cfg.database)
    yield pool
    await pool.close()


async def test_a_statement_is_bounded_on_both_sides(bounded: asyncpg.Pool) -> None:
    """The server's statement_timeout is the statement bound, and a statement over it fails
    with an error the API answers 503."""
    async with bounded.acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "500ms"
        assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "20s"
        with pytest.raises(db.UNAVAILABLE):
            await conn.execute("SELECT pg_sleep(2)")


async def test_fan_out_statements_get_the_bulk_bound_only_inside_bulk(
        bounded: asyncpg.Pool) -> None:
    """Inside db.bulk a statement may outlast the statement bound (server- and client-side);
    after it, the connection is bounded as before."""
    async with bounded.acquire() as conn:
        async with conn.transaction(), db.bulk(conn):
            assert await conn.fetchval("SHOW statement_timeout") == "30s"
            assert await conn.fetchval("SELECT pg_sleep(1.5)::text") == ""
        assert await conn.fetchval("SHOW statement_timeout") == "500ms"
        with pytest.raises(db.UNAVAILABLE):
            await conn.execute("SELECT pg_sleep(2)")


async def test_bulk_changes_nothing_without_bounds(pool: asyncpg.Pool) -> None:
    """On a pool opened without bounds (tools, tests) db.bulk sets nothing."""
    async with pool.acquire() as conn, conn.transaction(), db.bulk(conn):
        assert await conn.fetchval("SHOW statement_timeout") == "0"


@pytest.mark.parametrize(("session_state", "seen"), [(True, ""), (False, "kept")])
async def test_only_a_pool_with_session_state_resets_a_connection_handed_back(
        db_url: str, session_state: bool, seen: str) -> None:
    """A pool whose users keep session state resets each connection handed back (RESET ALL:
    a setting is gone); one promised to keep none (the dispatcher's) skips that round trip,
    so the setting is still there."""
    pool = await db.connect(db_url, min_size=1, max_size=1, session_state=session_state)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'kept'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == seen
    finally:
        await pool.close()
