"""The staff feed routes in-process on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from alertd import staff
from alertd.context import Context
from tests import capgen


async def test_posted_cap_sent_in_the_far_future_is_400(api: TestClient,
                                                         context: Context) -> None:
    """A posted CAP Alert sent in 9999 answers 400 with the reason and is quarantined."""
    operator = await staff.create(context.pool, "operator")
    raw = capgen.message("late", sent=datetime(9999, 12, 31, tzinfo=UTC))
    r = await api.post("/v1/staff/cap", data=raw, headers={
        "Authorization": f"Bearer {operator}", "Content-Type": "application/cap+xml"})
    answer = await r.json()
    assert r.status == 400
    assert answer["error"].startswith(
        "sent 9999-12-31T00:00:00+00:00 is more than 300 s in the future (now ")
    assert answer["quarantine_id"] == await context.pool.fetchval("SELECT id FROM quarantine")
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0
