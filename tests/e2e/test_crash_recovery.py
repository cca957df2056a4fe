"""A crash delays nobody's order: the rows a killed dispatcher leased go out at once, not when
their lease ends, after a restart or through another worker node."""

from __future__ import annotations

import json
import signal
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

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

LEASE_S = 30  # as in production: before the reaper, a crash made a third of an order wait this
APNS_CONCURRENCY = 400  # the shipped defaults: about 1,000 rows are leased at any moment
FCM_CONCURRENCY = 200
N = 6000  # devices, half iOS, half Android: a fan-out long enough to be killed in the middle
FUKUSHIMA_CITY = {"area_codes": ["072010"]}


@dataclass(frozen=True)
class Leases:
    """The lease ends of the rows a node held just before it was killed."""

    ends: dict[int, datetime]
    at: datetime  # the database's clock when they were read

    def end_of(self, delivery: int) -> datetime:
        """When the lease on a row ended at the earliest: read, or taken after the reading
        (a claim that began up to a second before the reading and committed after it)."""
        return self.ends.get(delivery, self.at + timedelta(seconds=LEASE_S - 1))


async def _seed_devices(db_url: str, n: int) -> None:
    """n devices inside Fukushima City written straight into the database (fast set-up)."""
    conn = await db.connect_one(db_url)
    try:
        rows = [(uuid.uuid4(), "ios" if i % 2 else "android", f"crash-{i}",
                 uuid.uuid4().bytes + uuid.uuid4().bytes) for i in range(n)]
        await conn.copy_records_to_table("devices", records=rows,
                                         columns=("id", "platform", "push_token", "secret_hash"))
        await conn.execute(
            "INSERT INTO device_points (device_id, device_seq, slot, lon, lat)"
            " SELECT id, seq, 0, 140.47 + (seq % 100) * 0.0001, 37.76 FROM devices")
    finally:
        await conn.close()


def _env(db_url: str, port: int) -> dict[str, str]:
    return daemon_env(db_url, port, ALERTD_DISPATCH_LEASE_S=str(LEASE_S),
                      ALERTD_APNS_CONCURRENCY=str(APNS_CONCURRENCY),
                      ALERTD_FCM_CONCURRENCY=str(FCM_CONCURRENCY))


async def _order(db_url: str, http: aiohttp.ClientSession, daemon: Daemon) -> str:
    """Issue an order reaching every seeded device; its id."""
    status, created = await Client(http, daemon.url).call(
        "POST", "/v1/staff/orders", staff_token(db_url, "operator"),
        {"level": 4, "hazard": "flood", "area": FUKUSHIMA_CITY,
         "headline": {"ja": "避難指示", "en": "Evacuate"}})
    assert status == 201 and created["devices"] == N, created
    return str(created["id"])


async def _under_way(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    async def check() -> bool:
        return len(await sandbox.deliveries(http)) >= N // 5
    await wait_for(check, "the fan-out to be under way")


async def _leases(db_url: str, pid: int) -> Leases:
    """The rows leased to the dispatcher of process `pid` (identity host:pid:random)."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT id, due_at FROM deliveries WHERE state = 'sending' AND due_at > now()"
            " AND split_part(claimed_by, ':', 2) = $1", str(pid))
        at = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    return Leases({r["id"]: r["due_at"] for r in rows}, at)


async def _now(db_url: str) -> datetime:
    conn = await asyncpg.connect(db_url)
    try:
        now: datetime = await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
    return now


async def _all_sent(db_url: str) -> list[asyncpg.Record]:
    """Wait (past the lease, so that a late send is seen as late, not as a time-out) until
    every delivery is sent; each row's id, attempts and when its outcome was recorded."""
    async def settled() -> list[asyncpg.Record] | None:
        conn = await asyncpg.connect(db_url)
        try:
            rows = await conn.fetch(
                "SELECT id, attempts, done_at FROM deliveries WHERE state = 'sent'")
        finally:
            await conn.close()
        return rows if len(rows) == N else None
    result: list[asyncpg.Record] = await wait_for(settled, "every delivery sent",
                                                  deadline=3 * LEASE_S)
    return result


def _check_recovery(leases: Leases, since: datetime, sent: list[asyncpg.Record],
                    what: str, logs: list[Path], event: str) -> None:
    """Every row the killed node held (claimed twice: by it, then again after its death) was
    sent before its lease would have ended. A row with a retry logged (a send that timed out
    under load) is left out: its last send is the retry's, not the reclaim's. Printed for the
    record: how long after `since` the recovering dispatcher (the last log) logged `event`, and
    the first and the last of those rows were sent."""
    retried = repeats.retries(logs)
    reclaimed: dict[int, datetime] = {r["id"]: r["done_at"] for r in sent
                                      if r["attempts"] == 2 and not retried[r["id"]]}
    assert reclaimed, "nothing was leased at the kill"
    late = [i for i, done in reclaimed.items() if done >= leases.end_of(i)]
    assert late == [], f"{len(late)} of {len(reclaimed)} leased rows waited for their lease"
    seen = [datetime.fromisoformat(json.loads(line)["timestamp"])
            for line in logs[-1].read_text().splitlines() if f'"{event}"' in line]
    print(f"\n{what}: {len(reclaimed)} rows held by the killed node;"
          f" {event} after {(seen[-1] - since).total_seconds():.2f} s, first sent after"
          f" {(min(reclaimed.values()) - since).total_seconds():.2f} s, last after"
          f" {(max(reclaimed.values()) - since).total_seconds():.2f} s")


async def _check_repeats(db_url: str, sandbox: Sandbox, http: aiohttp.ClientSession,
                         order_id: str, logs: list[Path]) -> int:
    """Every device received the order; beyond the retries its dispatchers logged (a send that
    timed out may have arrived too), none received it more than twice, and the repeats stay
    within the send slots (the sends whose outcome was not committed at the kill); how many
    repeated."""
    got = await sandbox.deliveries(http)
    repeated = await repeats.count(db_url, order_id, got, logs)
    assert set(repeated) == {f"crash-{i}" for i in range(N)}
    assert set(repeated.values()) <= {0, 1}, {t: n for t, n in repeated.items() if n not in (0, 1)}
    service = {d["token"]: d["service"] for d in got}
    per_service = {s: sum(n for t, n in repeated.items() if service[t] == s)
                   for s in ("apns", "fcm")}
    assert per_service["apns"] <= APNS_CONCURRENCY and per_service["fcm"] <= FCM_CONCURRENCY, \
        per_service
    print(f"repeats: {per_service}, retries: {len(got) - N - sum(per_service.values())}")
    return sum(per_service.values())


async def test_a_restarted_daemon_sends_the_rows_it_held_at_once(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """After a SIGKILL mid-fan-out and a restart, the rows the dead process had leased are sent
    before their 30 s lease would have ended (its dead registration is found at the start);
    every device gets the order, at most the in-flight sends repeat."""
    await _seed_devices(db_url, N)
    port = free_port_base(1)
    daemon = Daemon(port=port, env=_env(db_url, port), config=sandbox.config,
                    log=tmp_path / "daemon.log", extra=["--migrate"])
    daemon.start()
    await daemon.ready(http)
    order_id = await _order(db_url, http, daemon)
    await _under_way(sandbox, http)
    assert daemon.proc is not None
    leases = await _leases(db_url, daemon.proc.pid)
    daemon.kill(signal.SIGKILL)
    assert len(await sandbox.deliveries(http)) < N, "the fan-out ended before the kill; raise N"

    restart = await _now(db_url)
    daemon.start()
    _check_recovery(leases, restart, await _all_sent(db_url), "restart", [daemon.log],
                    "dispatcher_holding")
    await _check_repeats(db_url, sandbox, http, order_id, [daemon.log])


async def test_a_second_worker_sends_the_rows_of_a_killed_node_at_once(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """With a second `--role worker` node running, the rows a node killed mid-fan-out had
    leased are sent by the other node before their 30 s lease would have ended; every device
    gets the order, at most the killed node's in-flight sends repeat."""
    await _seed_devices(db_url, N)
    port = free_port_base(1)
    daemon = Daemon(port=port, env=_env(db_url, port), config=sandbox.config,
                    log=tmp_path / "daemon.log", extra=["--migrate"])
    daemon.start()
    await daemon.ready(http)
    worker_port = free_port_base(1)
    worker = Daemon(port=worker_port, env=_env(db_url, worker_port), config=sandbox.config,
                    log=tmp_path / "worker.log", roles="worker")
    worker.start()
    await worker.ready(http)
    order_id = await _order(db_url, http, daemon)
    await _under_way(sandbox, http)
    assert daemon.proc is not None
    leases = await _leases(db_url, daemon.proc.pid)
    daemon.kill(signal.SIGKILL)
    killed = await _now(db_url)
    assert len(await sandbox.deliveries(http)) < N, "the fan-out ended before the kill; raise N"

    logs = [daemon.log, worker.log]
    _check_recovery(leases, killed, await _all_sent(db_url), "second worker", logs,
                    "dispatchers_reaped")
    await _check_repeats(db_url, sandbox, http, order_id, logs)
