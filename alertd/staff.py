"""Staff tokens and roles (SQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from alertd import credentials, errors

ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True, slots=True)
class Staff:
    id: uuid.UUID
    role: str
    label: str

    def require(self, role: str) -> None:
        """Raise Forbidden unless this token's role is at least `role`."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise errors.Forbidden(f"this action needs the {role} role; the token is {self.role}")


async def create(pool: asyncpg.Pool | asyncpg.Connection, role: str, label: str = "") -> str:
    """Create a staff token with the given role and return it (stored only hashed)."""
    if role not in ROLES:
        raise errors.InvalidInput(f"role must be one of {', '.join(ROLES)}")
    token = credentials.new_secret("st_")
    await pool.execute(
        "INSERT INTO staff_tokens (id, token_hash, role, label) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(), credentials.digest(token), role, label,
    )
    return token


async def authenticate(pool: asyncpg.Pool, token: str) -> Staff | None:
    """The staff identity of a token, or None when unknown or revoked."""
    row = await pool.fetchrow(
        "SELECT id, role, label FROM staff_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        credentials.digest(token),
    )
    return Staff(row["id"], row["role"], row["label"]) if row else None
