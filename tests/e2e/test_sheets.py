"""My Evacuation Sheets end to end: the real daemon processes, the phone's view of offline-first
sync (retried writes, stale copies, tombstones, paging) and cursors that outlive the process
and cross to a second node."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import DEADLINE, Client, Daemon, Sandbox, daemon_env, free_port_base

pytestmark = pytest.mark.e2e

HOME = {"kind": "home", "lat": 37.75, "lon": 140.47, "floors": 2, "floor": 1}


def sheet(name: str = "わが家") -> dict[str, Any]:
    """A small valid sheet."""
    return {"name": name, "places": [HOME], "triggers": {"flood": 3}}


def _path(sid: uuid.UUID) -> str:
    return f"/v1/me/sheets/{sid}"


async def _sync_all(api: Client, secret: str, cursor: str | None = None,
                    limit: int = 100) -> tuple[list[dict[str, Any]], str, int]:
    """Every sheet change after `cursor`, page by page; (changes, last cursor, pages)."""
    changes: list[dict[str, Any]] = []
    pages = 0
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, page = await api.call("GET", "/v1/me/sync" + query, secret)
        assert status == 200, page
        pages += 1
        changes += page["sheets"]
        cursor = page["cursor"]
        if not page["more"]:
            assert cursor is not None
            return changes, cursor, pages
        assert pages < 50, "sync never ended"


async def test_two_phones_edit_one_household_offline_and_sync(
        daemon: Daemon, http: aiohttp.ClientSession) -> None:
    """A create retried with its Idempotency-Key makes one version; the other phone's stale edit
    is 412 with the server's copy; a delete reaches the other phone as a tombstone; small pages
    bring each change once."""
    api = Client(http, daemon.url)
    _, secret = await api.device("ios", "sheet-phone")
    sid = uuid.uuid4()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    # The answer to the first try was lost on a weak signal: the phone sends it again.
    first = await api.call("PUT", _path(sid), secret, sheet(), headers=key)
    again = await api.call("PUT", _path(sid), secret, sheet(), headers=key)
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert first[1]["version"] == 1 and first[1]["advice"], first
    # Phone B synced version 1; phone A writes version 2 meanwhile.
    b_changes, b_cursor, _ = await _sync_all(api, secret)
    assert [(c["id"], c["version"]) for c in b_changes] == [(str(sid), 1)]
    status, body = await api.call("PUT", _path(sid), secret, sheet("二階へ"),
                                  headers={"If-Match": '"1"'})
    assert status == 200 and body["version"] == 2
    status, body = await api.call("PUT", _path(sid), secret, sheet("古い"),
                                  headers={"If-Match": '"1"'})
    assert status == 412
    assert body["current"]["version"] == 2 and body["current"]["sheet"]["name"] == "二階へ"
    status, body = await api.call("PUT", _path(sid), secret, sheet("古い"))
    assert status == 428, body
    # Phone A deletes it; phone B learns of it as a tombstone, once.
    status, _ = await api.call("DELETE", _path(sid), secret, headers={"If-Match": '"2"'})
    assert status == 204
    assert (await api.call("GET", _path(sid), secret))[0] == 404
    changes, b_cursor, _ = await _sync_all(api, secret, b_cursor)
    assert changes == [{"id": str(sid), "version": 3, "deleted": True}]
    assert (await _sync_all(api, secret, b_cursor))[0] == []
    # Seven more sheets, synced two at a time from the start: each change exactly once.
    sids = [uuid.uuid4() for _ in range(7)]
    for s in sids:
        assert (await api.call("PUT", _path(s), secret, sheet()))[0] == 201
    changes, _, pages = await _sync_all(api, secret, limit=2)
    assert [c["id"] for c in changes] == [str(sid)] + [str(s) for s in sids]
    assert pages == 4


async def test_a_cursor_survives_a_restart_and_works_on_a_second_node(
        daemon: Daemon, sandbox: Sandbox, db_url: str, tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    """A cursor from one daemon process, after that process restarts, and on another node
    serving the same database, brings exactly the changes made after it; a forged one is 410."""
    api = Client(http, daemon.url)
    _, secret = await api.device("android", "sheet-nodes")
    older = uuid.uuid4()
    assert (await api.call("PUT", _path(older), secret, sheet()))[0] == 201
    _, cursor, _ = await _sync_all(api, secret)
    newer = uuid.uuid4()
    assert (await api.call("PUT", _path(newer), secret, sheet()))[0] == 201
    daemon.stop()
    daemon.start()
    await daemon.ready(http, DEADLINE)
    changes, _, _ = await _sync_all(api, secret, cursor)
    assert [c["id"] for c in changes] == [str(newer)]
    port = free_port_base(1)
    second = Daemon(port=port, env=daemon_env(db_url, port), config=sandbox.config,
                    log=tmp_path / "second.log", extra=["--role", "api"])
    second.start()
    try:
        await second.ready(http, DEADLINE)
        other = Client(http, second.url)
        changes, _, _ = await _sync_all(other, secret, cursor)
        assert [c["id"] for c in changes] == [str(newer)]
        forged = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
        status, body = await other.call("GET", f"/v1/me/sync?cursor={forged}", secret)
        assert status == 410 and body["error"], body
    finally:
        second.stop()
