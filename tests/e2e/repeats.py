"""Telling a crash's repeats from retries in what the sandbox received.

At-least-once has two sources of extra sends, and only one of them is bounded by a crash:
- a retry: a send whose outcome the dispatcher decided was "try again" (a time-out, 429, 5xx).
  A timed-out request may still have reached the service (under load the sandbox records it as
  200 after the daemon gave up), so the sandbox can hold both the send and its retry. Every
  such outcome is logged (`delivery_outcome`, state `pending`) before it is committed.
- a repeat: a send whose outcome was never committed because its process died; the row is sent
  again once reclaimed. After a crash a delivery repeats at most once, and at most the send
  slots (apns.concurrency + fcm.concurrency) repeat.
So per delivery: sends received <= 1 + retries logged + repeat (0 or 1); less when a send that
timed out never arrived (the client dropped the connection before the service read it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg


def alert_of(d: dict[str, Any]) -> str:
    """The alert id a push recorded by the sandbox carries (APNs payload or FCM data)."""
    payload = d["payload"]
    return str(payload["alert_id"] if d["service"] == "apns"
               else payload["message"]["data"]["alert_id"])


def retries(logs: Iterable[Path]) -> Counter[int]:
    """Per delivery id, the sends its dispatchers logged as to be tried again (in these daemon
    logs, JSON lines): each is followed by one more send that is not a repeat."""
    retried: Counter[int] = Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if '"delivery_outcome"' not in line:
                continue
            event = json.loads(line)
            if event.get("event") == "delivery_outcome" and event.get("state") == "pending":
                retried[int(event["delivery_id"])] += 1
    return retried


async def deliveries_of(db_url: str, order_id: str) -> dict[str, int]:
    """Push token -> id of the order's delivery row to that device (one version)."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT v.push_token, d.id FROM deliveries d JOIN devices v ON v.id = d.device_id"
            " WHERE d.order_id = $1::uuid", order_id)
    finally:
        await conn.close()
    ids = {r["push_token"]: int(r["id"]) for r in rows}
    assert len(ids) == len(rows), "one delivery per device expected"
    return ids


async def count(db_url: str, order_id: str, got: list[dict[str, Any]],
                logs: Iterable[Path]) -> dict[str, int]:
    """Per push token, the sends of the order the sandbox received beyond the first and beyond
    the retries its dispatchers logged (0 when fewer arrived): the repeats, which one crash
    makes 0 or 1, and no crash 0."""
    assert {alert_of(d) for d in got} == {order_id}
    delivery = await deliveries_of(db_url, order_id)
    retried = retries(logs)
    received = Counter(d["token"] for d in got)
    assert set(received) == set(delivery), "every device received the order, nobody else"
    return {token: max(0, n - 1 - retried[delivery[token]]) for token, n in received.items()}
