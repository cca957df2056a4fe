"""Device storage on a real PostgreSQL: settings changes name only known columns."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from alertd import devices, errors


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
