"""Idempotency keys: a retried write gets its first answer; the key with another body is refused
(SQL)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from alertd import errors

MAX_KEY = 200  # characters of an Idempotency-Key
# Who a key belongs to: a staff token (the default) or a device (sheet writes).
OwnerColumn = Literal["staff_id", "device_id"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer a write gave: its HTTP status and JSON body, replayed to a retry."""

    status: int
    body: Any


def check_key(key: str | None) -> str | None:
    """The Idempotency-Key as given (None when absent); InvalidInput when empty, too long or
    beyond printable ASCII (header bytes beyond it arrive as surrogate escapes: unstorable)."""
    if key is not None and not (1 <= len(key) <= MAX_KEY and key.isascii()
                                and key.isprintable()):
        raise errors.InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY} characters of "
                                  "printable ASCII")
    return key


def request_hash(raw: Any) -> bytes:
    """A digest of a JSON request body that does not depend on the order of its keys."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).digest()


async def claim(conn: asyncpg.Connection, owner: uuid.UUID, key: str, raw: Any,
                column: OwnerColumn = "staff_id") -> Answer | None:
    """Take `key` for this request, inside the caller's transaction.

    None: the key is new and now held until the transaction ends (a concurrent retry waits for
    it); the caller does the work and records its answer. An Answer: the same request came
    with this key before, and this was its answer. InvalidInput: another request used the key.
    `owner` is who the key belongs to: a staff token's id, or a device's (column device_id)."""
    assert column in ("staff_id", "device_id")
    digest = request_hash(raw)
    first = await conn.fetchval(
        f"INSERT INTO idempotency_keys ({column}, key, request_hash, status, response)"
        " VALUES ($1, $2, $3, 0, '{}') ON CONFLICT DO NOTHING RETURNING true",
        owner, key, digest,
    )
    if first:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys"
        f" WHERE {column} = $1 AND key = $2", owner, key,
    )
    if bytes(row["request_hash"]) != digest:
        raise errors.InvalidInput("Idempotency-Key was used for a different request")
    return Answer(row["status"], row["response"])


async def record(conn: asyncpg.Connection, owner: uuid.UUID, key: str, answer: Answer,
                 column: OwnerColumn = "staff_id") -> None:
    """Keep the answer of the request that claimed `key`, for its retries."""
    assert column in ("staff_id", "device_id")
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, response = $4"
        f" WHERE {column} = $1 AND key = $2", owner, key, answer.status, answer.body,
    )
