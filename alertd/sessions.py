"""Sessions of the staff console (SQL): signed in with a staff token, carried by a cookie.

The cookie holds a random 256-bit value stored only as its digest. A session is as good as
the token it was opened with: authentication joins staff_tokens, so a revoked or expired token
ends its sessions at once. A session also ends at its lifetime (`console.session_ttl_s`), after
`console.idle_timeout_s` without a request, and at logout (the row is deleted).

The CSRF token of a session is derived from the cookie's value (a keyed digest): the console
reads it from the sign-in answer, never from the HttpOnly cookie, and sends it back in the
`X-CSRF-Token` header of every unsafe request; a page of another site can neither read nor
compute it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from alertd import credentials, staff

COOKIE = "alertd_session"
CSRF_HEADER = "X-CSRF-Token"
PREFIX = "cs_"
# last_seen_at is written at most this often: the idle timeout is exact to within it.
SEEN_EVERY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Session:
    """A live console session and the staff identity behind it."""

    id: uuid.UUID
    who: staff.Staff
    expires_at: datetime


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds `secret`."""
    mac = hmac.new(b"alertd console csrf", secret.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_matches(secret: str, presented: str | None) -> bool:
    """Whether a presented CSRF header belongs to the session of `secret`."""
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(secret).encode(), presented.encode("utf-8",
                                                                             "surrogatepass"))


async def open_session(pool: asyncpg.Pool, token: str, ttl: timedelta,
                       ) -> tuple[str, Session] | None:
    """Open a session for a valid staff token: (the cookie's secret, the session), or None when
    the token is unknown, expired or revoked. The session never outlives its token's expiry.
    Sessions of every token past their expiry are cleared on the way (bounded, indexed)."""
    who = await staff.authenticate(pool, token)
    if who is None:
        return None
    secret = credentials.new_secret(PREFIX)
    row = await pool.fetchrow(
        "WITH gone AS (DELETE FROM console_sessions WHERE id IN (SELECT id FROM console_sessions"
        "   WHERE expires_at <= now() LIMIT 100))"
        " INSERT INTO console_sessions (id, token_hash, staff_token_id, expires_at)"
        " SELECT $1, $2, t.id, least(now() + $4::interval, coalesce(t.expires_at, 'infinity'))"
        " FROM staff_tokens t WHERE t.id = $3"
        " RETURNING id, expires_at",
        uuid.uuid4(), credentials.digest(secret), who.id, ttl)
    if row is None:  # the token was deleted between the two statements
        return None
    return secret, Session(id=row["id"], who=who, expires_at=row["expires_at"])


async def authenticate(pool: asyncpg.Pool, secret: str, idle: timedelta) -> Session | None:
    """The live session of a cookie's secret, or None: unknown, past its lifetime, idle too
    long, or its staff token revoked or expired. Notes the use (at most once per SEEN_EVERY,
    in the same statement)."""
    row = await pool.fetchrow(
        "WITH found AS (SELECT s.id, s.expires_at, s.last_seen_at, t.id AS staff_id, t.role,"
        "   t.label FROM console_sessions s JOIN staff_tokens t ON t.id = s.staff_token_id"
        "   WHERE s.token_hash = $1 AND s.expires_at > now()"
        "   AND s.last_seen_at > now() - $2::interval"
        "   AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())),"
        " seen AS (UPDATE console_sessions s SET last_seen_at = now() FROM found"
        "   WHERE s.id = found.id AND found.last_seen_at <= now() - $3::interval)"
        " SELECT id, expires_at, staff_id, role, label FROM found",
        credentials.digest(secret), idle, SEEN_EVERY)
    if row is None:
        return None
    who = staff.Staff(row["staff_id"], row["role"], row["label"])
    return Session(id=row["id"], who=who, expires_at=row["expires_at"])


async def end(pool: asyncpg.Pool, secret: str) -> uuid.UUID | None:
    """End the session of a cookie's secret (logout): the staff token it belonged to, or None
    when there was no such session."""
    found: uuid.UUID | None = await pool.fetchval(
        "DELETE FROM console_sessions WHERE token_hash = $1 RETURNING staff_token_id",
        credentials.digest(secret))
    return found


def cookie_secret(value: str | None) -> str | None:
    """The secret of a session cookie's value, or None when it cannot be one."""
    if not value or not value.startswith(PREFIX) or len(value) > 100:
        return None
    return credentials.bearer(f"Bearer {value}")
