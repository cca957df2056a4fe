"""Staff tokens and roles (SQL)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from alertd import credentials, errors

ROLES = ("viewer", "operator", "admin")
# last_used_at is as fresh as this: a token's use writes it at most once per period.
LAST_USED_EVERY = timedelta(minutes=1)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Staff:
    id: uuid.UUID
    role: str
    label: str

    def require(self, role: str) -> None:
        """Raise Forbidden unless this token's role is at least `role`."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise errors.Forbidden(f"this action needs the {role} role; the token is {self.role}")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A staff token as listed: everything stored about it but its digest."""

    id: uuid.UUID
    role: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> TokenInfo:
        """Build from a staff_tokens row."""
        return cls(id=row["id"], role=row["role"], label=row["label"],
                   created_at=row["created_at"], expires_at=row["expires_at"],
                   last_used_at=row["last_used_at"], revoked_at=row["revoked_at"])

    def state(self, now: datetime) -> str:
        """`revoked`, `expired` or `active`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The token as `alertd staff-token list --json` prints it."""
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None
        return {"id": str(self.id), "role": self.role, "label": self.label,
                "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "last_used_at": iso(self.last_used_at), "revoked_at": iso(self.revoked_at),
                "state": self.state(now)}


def parse_duration(text: str) -> timedelta:
    """A lifetime such as `90m`, `12h`, `30d` or `2w` (a number and one unit: s m h d w)."""
    found = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text)
    if found is None or int(found[1]) == 0:
        raise errors.InvalidInput(
            f"{text!r} is not a lifetime: give a positive number and a unit, e.g. 30d, 12h, 90m")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


def parse_instant(text: str, now: datetime) -> datetime:
    """A future ISO 8601 time with its UTC offset, e.g. 2026-03-31T17:00:00+09:00."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise errors.InvalidInput(f"{text!r} is not an ISO 8601 time") from exc
    if when.tzinfo is None:
        raise errors.InvalidInput(f"{text!r} needs its UTC offset, e.g. +09:00 or Z")
    if when <= now:
        raise errors.InvalidInput(f"{text!r} is in the past")
    return when


async def create(pool: asyncpg.Pool | asyncpg.Connection, role: str, label: str = "", *,
                 expires_at: datetime | None = None,
                 expires_in: timedelta | None = None) -> str:
    """Create a staff token with the given role (and an expiry: a time, or a lifetime from
    now) and return it; it is stored only hashed."""
    if role not in ROLES:
        raise errors.InvalidInput(f"role must be one of {', '.join(ROLES)}")
    token = credentials.new_secret("st_")
    await pool.execute(
        "INSERT INTO staff_tokens (id, token_hash, role, label, expires_at)"
        " VALUES ($1, $2, $3, $4, coalesce($5, now() + $6::interval))",
        uuid.uuid4(), credentials.digest(token), role, label, expires_at, expires_in,
    )
    return token


async def tokens(conn: asyncpg.Pool | asyncpg.Connection) -> list[TokenInfo]:
    """Every staff token, oldest first."""
    rows = await conn.fetch(
        "SELECT id, role, label, created_at, expires_at, last_used_at, revoked_at"
        " FROM staff_tokens ORDER BY created_at, id")
    return [TokenInfo.from_row(r) for r in rows]


async def info(conn: asyncpg.Pool | asyncpg.Connection, token: str) -> TokenInfo:
    """What is stored about a token (NotFound when it is unknown)."""
    row = await conn.fetchrow(
        "SELECT id, role, label, created_at, expires_at, last_used_at, revoked_at"
        " FROM staff_tokens WHERE token_hash = $1", credentials.digest(token))
    if row is None:
        raise errors.NotFound("no such staff token")
    return TokenInfo.from_row(row)


async def revoke(conn: asyncpg.Pool | asyncpg.Connection, token_id: str) -> tuple[TokenInfo, bool]:
    """Revoke a token by its id: the token as it now is, and whether this call revoked it
    (False: it was revoked already)."""
    try:
        key = uuid.UUID(token_id)
    except ValueError as exc:
        raise errors.NotFound(f"no staff token {token_id}") from exc
    row = await conn.fetchrow(
        "WITH revoked AS (UPDATE staff_tokens SET revoked_at = now()"
        "   WHERE id = $1 AND revoked_at IS NULL RETURNING *)"
        " SELECT *, true AS now_revoked FROM revoked"
        " UNION ALL SELECT *, false FROM staff_tokens WHERE id = $1 AND revoked_at IS NOT NULL",
        key,
    )
    if row is None:
        raise errors.NotFound(f"no staff token {token_id}")
    return TokenInfo.from_row(row), bool(row["now_revoked"])


async def authenticate(pool: asyncpg.Pool, token: str) -> Staff | None:
    """The staff identity of a token, or None when unknown, expired or revoked; notes the use
    (at most once per LAST_USED_EVERY, in the same statement)."""
    row = await pool.fetchrow(
        "WITH found AS (SELECT id, role, label, last_used_at FROM staff_tokens"
        "   WHERE token_hash = $1 AND revoked_at IS NULL"
        "   AND (expires_at IS NULL OR expires_at > now())),"
        " used AS (UPDATE staff_tokens t SET last_used_at = now() FROM found"
        "   WHERE t.id = found.id"
        "   AND (found.last_used_at IS NULL OR found.last_used_at <= now() - $2::interval))"
        " SELECT id, role, label FROM found",
        credentials.digest(token), LAST_USED_EVERY,
    )
    return Staff(row["id"], row["role"], row["label"]) if row else None
