"""Idempotency keys on a real PostgreSQL: first answer replayed, other bodies refused."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from alertd import errors, idempotency


async def test_a_retry_gets_the_first_answer_and_another_body_is_refused(
        pool: asyncpg.Pool) -> None:
    """A new key is claimed (None), its recorded answer is replayed to the same body (keys in
    any order), another body with it is InvalidInput, and another owner's key is its own."""
    owner, other = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        assert await idempotency.claim(conn, owner, "k1", {"a": 1, "b": [2]}) is None
        await idempotency.record(conn, owner, "k1", idempotency.Answer(201, {"id": "x"}))
    async with pool.acquire() as conn, conn.transaction():
        replay = await idempotency.claim(conn, owner, "k1", {"b": [2], "a": 1})
    assert replay == idempotency.Answer(201, {"id": "x"})
    async with pool.acquire() as conn:
        with pytest.raises(errors.InvalidInput, match="different request"):
            await idempotency.claim(conn, owner, "k1", {"a": 2})
        assert await idempotency.claim(conn, other, "k1", {"a": 2}) is None


def test_keys_must_be_1_to_200_characters() -> None:
    """An absent key is None, a key of 1 or 200 characters is kept, "" or 201 are refused."""
    assert idempotency.check_key(None) is None
    assert idempotency.check_key("k") == "k"
    assert idempotency.check_key("k" * 200) == "k" * 200
    for bad in ("", "k" * 201):
        with pytest.raises(errors.InvalidInput, match="1 to 200 characters"):
            idempotency.check_key(bad)
