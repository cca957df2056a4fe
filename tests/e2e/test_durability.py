"""Crash safety and scale-out of the outbox: SIGKILL mid-fan-out, two dispatcher processes."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from alertd import db
from tests.e2e import repeats
from tests.e2e.conftest import (
    Client,
    Daemon,
    Sandbox,
    daemon_env,
    free_port_base,
    staff_token,
    wait_for,
)

pytestmark = pytest.mark.e2e

FUKUSHIMA_CITY = {"area_codes": ["072010"]}
HEADLINE = {"ja": "避難指示", "en": "Evacuate"}
APNS_CONCURRENCY = 50
FCM_CONCURRENCY = 50


async def _seed_devices(db_url: str, n: int) -> None:
    """Register n devices inside Fukushima City straight in the database (fast set-up)."""
    conn = await db.connect_one(db_url)
    try:
        rows = [(uuid.uuid4(), "ios" if i % 2 else "android", f"crash-{i}",
                 uuid.uuid4().bytes + uuid.uuid4().bytes) for i in range(n)]
        await conn.copy_records_to_table("devices", records=rows,
                                         columns=("id", "platform", "push_token", "secret_hash"))
        await conn.execute(
            "INSERT INTO device_points (device_id, device_seq, slot, lon, lat)"
            " SELECT id, seq, 0, 140.47 + (seq % 100) * 0.0001, 37.76 FROM devices"
        )
    finally:
        await conn.close()


async def _states(db_url: str, order_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM deliveries WHERE order_id = $1"
                                " GROUP BY state", uuid.UUID(order_id))
        workers = await conn.fetchval(
            "SELECT count(DISTINCT claimed_by) FROM deliveries WHERE order_id = $1",
            uuid.UUID(order_id))
    finally:
        await conn.close()
    return {"states": {r["state"]: r["n"] for r in rows}, "workers": workers}


async def _repeats(db_url: str, order_id: str, got: list[dict[str, Any]],
                   nodes: list[Daemon], n: int) -> Counter[str]:
    """Every seeded device received the order; the repeats (sends beyond the first and beyond
    the retries the nodes logged: see tests.e2e.repeats) per service."""
    repeated = await repeats.count(db_url, order_id, got, {node.log for node in nodes})
    assert set(repeated) == {f"crash-{i}" for i in range(n)}
    service_of = {d["token"]: d["service"] for d in got}
    by_service = Counter({"apns": 0, "fcm": 0})
    for device, times in repeated.items():
        assert times <= 1, (device, times)
        by_service[service_of[device]] += times
    return by_service


async def _started(db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession,
                   n: int, workers: int = 0, **env: str) -> tuple[Daemon, list[Daemon], str]:
    """Seed n devices, start a ready daemon (and `workers` worker-only nodes) with `env`, then
    issue an order reaching all the devices; the daemon, the worker nodes and the order id."""
    await _seed_devices(db_url, n)
    port = free_port_base(1)
    daemon = Daemon(port=port, env=daemon_env(db_url, port, **env), config=sandbox.config,
                    log=tmp_path / "daemon.log", extra=["--migrate"])
    daemon.start()
    await daemon.ready(http)
    nodes = []
    for i in range(workers):
        node = _second(daemon, tmp_path, "worker", f"worker-{i}")
        node.start()
        await node.ready(http)
        nodes.append(node)
    api = Client(http, daemon.url)
    status, created = await api.call("POST", "/v1/staff/orders", staff_token(db_url, "operator"),
                                     {"level": 4, "hazard": "flood", "area": FUKUSHIMA_CITY,
                                      "headline": HEADLINE})
    assert status == 201 and created["devices"] == n
    return daemon, nodes, str(created["id"])


async def _all_sent(db_url: str, order_id: str, n: int) -> dict[str, Any]:
    """Wait until every delivery of the order is sent; the final delivery states."""
    async def settled() -> dict[str, Any] | None:
        s = await _states(db_url, order_id)
        return s if s["states"].get("sent", 0) == n else None
    result: dict[str, Any] = await wait_for(settled, "every delivery sent", deadline=90)
    return result


async def _under_way(sandbox: Sandbox, http: aiohttp.ClientSession, at_least: int) -> None:
    async def check() -> bool:
        return len(await sandbox.deliveries(http)) >= at_least
    await wait_for(check, "the fan-out to be under way")


def _second(daemon: Daemon, tmp_path: Path, roles: str, name: str) -> Daemon:
    port = free_port_base(1)
    env = dict(daemon.env)
    env["ALERTD_HTTP_PORT"] = str(port)
    return Daemon(port=port, env=env, config=daemon.config, roles=roles,
                  log=tmp_path / f"{name}.log")


async def test_sigkill_mid_fanout_loses_nothing(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """Killing the daemon with SIGKILL mid-fan-out and restarting delivers the order to every
    device and nothing else; at most `concurrency` pushes per service repeat (sends whose outcome
    was not committed at the kill), each with the apns-id and collapse id of the first."""
    n = 3000
    daemon, _, order_id = await _started(db_url, sandbox, tmp_path, http, n,
                                         ALERTD_APNS_CONCURRENCY=str(APNS_CONCURRENCY),
                                         ALERTD_FCM_CONCURRENCY=str(FCM_CONCURRENCY),
                                         ALERTD_DISPATCH_LEASE_S="3")
    await _under_way(sandbox, http, n // 5)
    daemon.kill(signal.SIGKILL)
    before = len(await sandbox.deliveries(http))
    assert before < n, "the fan-out finished before the kill; raise n"

    daemon.start()
    await daemon.ready(http)
    await _all_sent(db_url, order_id, n)
    got = await sandbox.deliveries(http)
    # At-least-once across a crash: a repeat is a send whose outcome was not yet committed when
    # the process died. A send slot is held until its outcome is committed, so at most
    # `concurrency` sends per service can repeat (README "A crash at any point loses nothing").
    repeated = await _repeats(db_url, order_id, got, [daemon], n)
    assert repeated["apns"] <= APNS_CONCURRENCY and repeated["fcm"] <= FCM_CONCURRENCY, repeated
    # A repeat carries the same apns-id and collapse id, so the phone shows one notification.
    apns_ids = {(d["token"], d["headers"]["apns-id"], d["headers"]["apns-collapse-id"])
                for d in got if d["service"] == "apns"}
    assert len(apns_ids) == n // 2
    daemon.kill(signal.SIGTERM)


async def test_two_dispatchers_share_the_outbox(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """Two dispatcher processes on one outbox both work, and the sandbox receives the order
    once per device (and again only for a retry a node logged, e.g. after a time-out)."""
    n = 2000
    # Small batches and concurrency so that both processes get a share of the work.
    api_node, workers, order_id = await _started(db_url, sandbox, tmp_path, http, n, workers=1,
                                           ALERTD_APNS_CONCURRENCY="20",
                                           ALERTD_FCM_CONCURRENCY="20",
                                           ALERTD_DISPATCH_BATCH_SIZE="20",
                                           ALERTD_DISPATCH_POLL_S="0.05")
    final = await _all_sent(db_url, order_id, n)
    got = await sandbox.deliveries(http)
    assert await _repeats(db_url, order_id, got, [api_node, *workers], n) == {"apns": 0, "fcm": 0}
    assert final["workers"] == 2
    for node in (api_node, *workers):
        assert node.kill(signal.SIGTERM) == 0


async def test_sigterm_finishes_or_releases_inflight(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """SIGTERM stops the daemon cleanly (exit 0) and leaves no delivery leased to it; after the
    restart the sandbox has received the order once per device (and again only for a retry the
    daemon logged)."""
    n = 1500
    daemon, _, order_id = await _started(db_url, sandbox, tmp_path, http, n,
                                         ALERTD_APNS_CONCURRENCY="20", ALERTD_FCM_CONCURRENCY="20",
                                         ALERTD_DISPATCH_LEASE_S="60")
    await _under_way(sandbox, http, n // 10)
    assert daemon.kill(signal.SIGTERM) == 0
    s = await _states(db_url, order_id)
    assert s["states"].get("sending", 0) == 0
    daemon.start()  # the lease was 60 s: only released rows can be sent this soon
    await daemon.ready(http)
    await _all_sent(db_url, order_id, n)
    got = await sandbox.deliveries(http)
    assert await _repeats(db_url, order_id, got, [daemon], n) == {"apns": 0, "fcm": 0}
    daemon.kill(signal.SIGTERM)


async def _fanout_left(db_url: str, order_id: str) -> int | None:
    """Device seqs of the order's streamed fan-out not written yet (None: no fan-out left)."""
    conn = await asyncpg.connect(db_url)
    try:
        left: int | None = await conn.fetchval(
            "SELECT cardinality(seqs) - done FROM fanouts WHERE order_id = $1",
            uuid.UUID(order_id))
    finally:
        await conn.close()
    return left


async def test_a_streamed_fan_out_survives_a_kill_mid_stream(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """An order over more devices than orders.fanout_chunk answers at once with all of them and
    its first pushes go out while the rest is written; killed with SIGKILL mid-stream, the
    restarted daemon takes the fan-out over once its lease has passed, and every device gets the
    order exactly once (nothing was sent twice: the kill came while the rows were written)."""
    n = 3000
    daemon, _, order_id = await _started(db_url, sandbox, tmp_path, http, n,
                                         ALERTD_APNS_CONCURRENCY=str(APNS_CONCURRENCY),
                                         ALERTD_FCM_CONCURRENCY=str(FCM_CONCURRENCY),
                                         ALERTD_ORDERS_FANOUT_CHUNK="2",
                                         ALERTD_ORDERS_FANOUT_LEASE_S="2",
                                         ALERTD_DISPATCH_LEASE_S="3")
    await _under_way(sandbox, http, 2)
    daemon.kill(signal.SIGKILL)
    left = await _fanout_left(db_url, order_id)
    assert left, "the fan-out was written whole before the kill; raise n"

    daemon.start()
    await daemon.ready(http)
    await _all_sent(db_url, order_id, n)
    assert await _fanout_left(db_url, order_id) is None
    got = await sandbox.deliveries(http)
    repeated = await _repeats(db_url, order_id, got, [daemon], n)
    assert repeated["apns"] <= APNS_CONCURRENCY and repeated["fcm"] <= FCM_CONCURRENCY, repeated
