"""Connections to PostgreSQL and the plain-SQL migrations."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from typing import Any

import asyncpg
import structlog

from alertd import errors, logs, settings

log = structlog.get_logger(__name__)

# Arbitrary constant: the advisory lock that serialises migrations across processes.
_MIGRATION_LOCK = 0x616C6572  # "aler"

Pool = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# Driver errors that mean "the database is unavailable now; retry shortly" (HTTP 503): lost or
# refused connections, a wait that timed out (TimeoutError is an OSError), a statement the
# server cancelled (statement_timeout) or a server shutting down or full.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
)


# How long closing a connection waits for the server's goodbye before dropping the connection:
# a hung server never answers, and asyncpg's close would wait for it for ever.
CLOSE_TIMEOUT_S = 3.0


class BoundedConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg has no hints
    """A connection whose close is bounded; pooled, it also knows how long an order's fan-out
    statements may take."""

    __slots__ = ("bulk_timeout_s",)

    async def close(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Close, waiting at most `timeout` (CLOSE_TIMEOUT_S) for the server; the connection is
        dropped then and TimeoutError raised."""
        await super().close(timeout=CLOSE_TIMEOUT_S if timeout is None else timeout)

    @contextlib.contextmanager
    def command_timeout(self, seconds: float) -> Iterator[None]:
        """Statements inside wait up to `seconds` instead of the connection's command_timeout.

        asyncpg reads `_config.command_timeout` at each statement and offers no public way to
        change it; tests/integration/test_hung_database.py pins that this works.
        """
        before: Any = self._config  # type: ignore[has-type]
        self._config = before._replace(command_timeout=seconds)  # type: ignore[misc]
        try:
            yield
        finally:
            self._config = before


@contextlib.asynccontextmanager
async def bulk(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Inside a transaction: an order's fan-out, whose statements (matching devices, writing
    their deliveries) may take up to database.bulk_timeout_s each, server- and client-side,
    instead of database.statement_timeout_s. No change on a connection without bounds."""
    seconds = getattr(conn, "bulk_timeout_s", None)  # through a pool's proxy too
    if seconds is None:
        yield
        return
    ms = _ms(seconds)
    await conn.execute(f"SET LOCAL statement_timeout = {ms};"
                       f" SET LOCAL idle_in_transaction_session_timeout = {ms}")
    with conn.command_timeout(seconds):
        yield


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type hints
    """A pool whose `acquire` waits at most `acquire_timeout_s` (None: for ever) by default.

    asyncpg applies the acquire timeout to handing the connection back as well (after a
    statement that timed out, waiting for its cancellation and the reset), so neither wait can
    outlast it; the pool's shortcuts (`pool.fetch`, `pool.execute`, ...) go through `acquire`.
    """

    __slots__ = ("__weakref__", "_acquire_timeout_s")  # weakref: per-pool caches (sync)

    def __init__(self, *args: Any, acquire_timeout_s: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        """A connection, waiting at most `timeout` (default: the pool's acquire timeout)."""
        return super().acquire(
            timeout=self._acquire_timeout_s if timeout is None else timeout)


async def connect(url: str, *, min_size: int = 2, max_size: int = 10,
                  bounds: settings.Database | None = None,
                  session_state: bool = True) -> asyncpg.Pool:
    """Open a connection pool with JSON codecs installed, every wait bounded by `bounds`.

    Without `bounds` (tools and tests) statements may run for a minute and acquiring waits.
    `session_state=False` promises that no user of the pool leaves anything in the session
    (no SET, LISTEN, session advisory lock or open cursor): a connection handed back then skips
    the reset query, one round trip and a statement less per acquire (an open transaction is
    still rolled back).
    """
    options: dict[str, Any] = {"command_timeout": 60}
    acquire_timeout_s: float | None = None
    init = _init_connection
    if bounds is not None:
        acquire_timeout_s = bounds.acquire_timeout_s
        init = functools.partial(_init_bounded, bulk_timeout_s=bounds.bulk_timeout_s)
        options = {
            "timeout": bounds.connect_timeout_s,
            "command_timeout": bounds.statement_timeout_s,
            # The server ends what the client gave up on even if the cancel request is lost,
            # and a transaction left open by a stuck client releases its locks.
            "server_settings": {
                "statement_timeout": str(_ms(bounds.statement_timeout_s)),
                "idle_in_transaction_session_timeout": str(_ms(bounds.idle_in_transaction_s)),
            },
        }
    if not session_state:
        options["reset"] = _keep_session
    try:
        pool = await BoundedPool(
            url, min_size=min_size, max_size=max_size, init=init,
            max_queries=50000, max_inactive_connection_lifetime=300.0, loop=None,
            connection_class=BoundedConnection, record_class=asyncpg.Record,
            acquire_timeout_s=acquire_timeout_s, **options,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise _cannot_connect(exc) from exc
    assert pool is not None
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pool's reset that runs no query (see connect's session_state)."""


async def _init_bounded(conn: BoundedConnection, *, bulk_timeout_s: float) -> None:
    await _init_connection(conn)
    conn.bulk_timeout_s = bulk_timeout_s


def _cannot_connect(exc: BaseException) -> errors.DatabaseUnavailable:
    """The error for a failed connect: in the server's words when it gave any (the CLI prints
    them), else by the exception's type (a time-out has no message)."""
    return errors.DatabaseUnavailable(
        f"cannot connect to the database: {str(exc) or logs.describe(exc)}")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


async def connect_one(url: str) -> asyncpg.Connection:
    """Open a single connection with JSON codecs installed (statements unbounded: migrations,
    imports, LISTEN; closing bounded)."""
    try:
        conn = await asyncpg.connect(url, connection_class=BoundedConnection)
    except (OSError, asyncpg.PostgresError) as exc:
        raise _cannot_connect(exc) from exc
    await _init_connection(conn)
    return conn


def migration_files() -> list[tuple[str, str]]:
    """The packaged migrations as (version, sql), in order."""
    root = resources.files("alertd.migrations")
    found = sorted(p.name for p in root.iterdir() if p.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), root.joinpath(name).read_text("utf-8")) for name in found]


def iso_sql(column: str) -> str:
    """SQL: a timestamptz column as text exactly as Python's isoformat() writes the datetime
    asyncpg reads from it (UTC, microseconds only when there are any), or NULL."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (f"CASE WHEN {column} IS NULL THEN NULL"
            f" WHEN extract(microseconds FROM {utc})::bigint % 1000000 = 0"
            f" THEN to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"
            f" ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') END")


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

