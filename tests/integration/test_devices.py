"""Device storage on a real PostgreSQL: settings changes name only known columns; a push
token belongs to one device."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from alertd import devices, errors, orders, pipeline, points, settings


@pytest.mark.parametrize("changes", [
    {"token_state": "invalid"},
    {"locale = 'en', tips": False},
    {"locale": "en", "secret_hash": b"x"},
])
async def test_unknown_setting_is_refused_before_sql(pool: asyncpg.Pool,
                                                     changes: dict[str, Any]) -> None:
    """A settings key outside the fixed list raises and changes nothing, even next to a
    known one: keys never become SQL column names unchecked."""
    device_id, _ = await devices.register(pool, "ios", "tok", "ja")
    before = await pool.fetchrow("SELECT * FROM devices WHERE id = $1", device_id)
    with pytest.raises(errors.InvalidInput, match="unknown device settings"):
        await devices.update(pool, device_id, changes)
    assert await pool.fetchrow("SELECT * FROM devices WHERE id = $1", device_id) == before


async def test_known_settings_are_applied(pool: asyncpg.Pool) -> None:
    """Every setting in the fixed list can be changed."""
    device_id, _ = await devices.register(pool, "ios", "tok", "ja")
    await devices.update(pool, device_id, {"locale": "en", "tips": False, "drill": True,
                                           "push_token": "tok-2", "quiet_start": None,
                                           "quiet_end": None})
    dev = await devices.get(pool, device_id)
    assert dev is not None
    assert (dev.locale, dev.tips, dev.drill, dev.push_token) == ("en", False, True, "tok-2")


async def _token_states(pool: asyncpg.Pool, *device_ids: uuid.UUID) -> list[str]:
    """The token state of each device, in the order given."""
    rows = await pool.fetch("SELECT id, token_state FROM devices WHERE id = ANY($1::uuid[])",
                            list(device_ids))
    state = {r["id"]: r["token_state"] for r in rows}
    return [state[d] for d in device_ids]


async def test_registering_a_token_again_takes_it_from_the_older_device(
        pool: asyncpg.Pool) -> None:
    """A second registration with the same push token (the app reinstalled) disables the
    older device's token; the same string on the other platform's push service is left."""
    old, _ = await devices.register(pool, "ios", "same", "ja")
    android, _ = await devices.register(pool, "android", "same", "ja")
    new, _ = await devices.register(pool, "ios", "same", "ja")
    assert await _token_states(pool, old, android, new) == ["invalid", "active", "active"]


async def test_patching_a_token_another_device_holds_takes_it(pool: asyncpg.Pool) -> None:
    """Setting a push token another device holds takes it from that device; setting it back
    on the first device takes it back."""
    a, _ = await devices.register(pool, "ios", "tok-a", "ja")
    b, _ = await devices.register(pool, "ios", "tok-b", "ja")
    await devices.update(pool, b, {"push_token": "tok-a"})
    assert await _token_states(pool, a, b) == ["invalid", "active"]
    await devices.update(pool, a, {"push_token": "tok-a", "locale": "en"})
    assert await _token_states(pool, a, b) == ["active", "invalid"]


async def test_concurrent_claims_of_one_token_leave_one_holder(pool: asyncpg.Pool) -> None:
    """Ten registrations and five token changes to one token at once all succeed and leave
    exactly one device holding it."""
    others = [(await devices.register(pool, "android", f"other-{i}", "ja"))[0]
              for i in range(5)]
    await asyncio.gather(
        *(devices.register(pool, "android", "race", "ja") for _ in range(10)),
        *(devices.update(pool, d, {"push_token": "race"}) for d in others))
    counts = await pool.fetchrow(
        "SELECT count(*) AS holders, count(*) FILTER (WHERE token_state = 'active') AS active"
        " FROM devices WHERE push_token = 'race'")
    assert (counts["holders"], counts["active"]) == (15, 1)


async def test_the_database_refuses_two_active_holders(pool: asyncpg.Pool) -> None:
    """Written around devices.register, a second active holder of a token is still refused
    by the database (migration 0011's unique index)."""
    await devices.register(pool, "ios", "held", "ja")
    other, _ = await devices.register(pool, "ios", "free", "ja")
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute("UPDATE devices SET push_token = 'held' WHERE id = $1", other)


async def test_one_delivery_per_push_token(pool: asyncpg.Pool, live: points.Points) -> None:
    """Two registrations with one push token (the app reinstalled), both located in an
    order's area: the outbox gets one delivery for that token, to the newer device."""
    located = []
    for _ in range(2):
        device_id, _ = await devices.register(pool, "ios", "reinstalled", "ja")
        dev = await devices.get(pool, device_id)
        assert dev is not None
        await devices.set_location(pool, dev, 37.75, 140.45, None)
        located.append(device_id)
    await points.catch_up(live)
    spec = orders.parse_spec(
        {"level": 4, "hazard": "flood", "headline": {"ja": "避難"},
         "area": {"circle": {"lat": 37.75, "lon": 140.45, "radius_m": 500}}},
        live.table, settings.load(environ={}).orders, datetime.now(UTC))
    async with pool.acquire() as conn:
        accepted = await pipeline.accept(conn, live, spec)
    rows = await pool.fetch(
        "SELECT d.device_id, v.push_token FROM deliveries d JOIN devices v"
        " ON v.id = d.device_id WHERE d.order_id = $1", accepted.order_id)
    assert [(r["device_id"], r["push_token"]) for r in rows] == [(located[1], "reinstalled")]
    assert accepted.devices == 1
