"""`alertd run --workers N`: N dispatcher processes share a fan-out under one supervisor, which
restarts a worker that dies, stops them all on SIGTERM (exit status 0, nothing lost, nothing
sent twice) and whose workers stop on their own when it is killed."""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from alertd import db
from tests.e2e import repeats
from tests.e2e.conftest import Client, Daemon, Sandbox, daemon_env, free_port_base, staff_token
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

N = 6000  # devices, half iOS, half Android: long enough a fan-out to act in the middle of
CONCURRENCY = 200  # per service and per worker process
FUKUSHIMA_CITY = {"area_codes": ["072010"]}


async def _seed(db_url: str) -> None:
    """N devices inside Fukushima City, written straight into the database."""
    conn = await db.connect_one(db_url)
    try:
        rows = [(uuid.uuid4(), "ios" if i % 2 else "android", f"w-{i}",
                 uuid.uuid4().bytes + uuid.uuid4().bytes) for i in range(N)]
        await conn.copy_records_to_table("devices", records=rows,
                                         columns=("id", "platform", "push_token", "secret_hash"))
        await conn.execute(
            "INSERT INTO device_points (device_id, device_seq, slot, lon, lat)"
            " SELECT id, seq, 0, 140.47 + (seq % 100) * 0.0001, 37.76 FROM devices")
    finally:
        await conn.close()


def _daemon(db_url: str, sandbox: Sandbox, log: Path, workers: int) -> Daemon:
    port = free_port_base(1)
    env = daemon_env(db_url, port, ALERTD_APNS_CONCURRENCY=str(CONCURRENCY),
                     ALERTD_FCM_CONCURRENCY=str(CONCURRENCY))
    return Daemon(port=port, env=env, config=sandbox.config, log=log, workers=workers)


def _events(log: Path, event: str) -> list[dict[str, object]]:
    return [e for e in (json.loads(line) for line in log.read_text().splitlines()
                        if f'"{event}"' in line) if e.get("event") == event]


async def _workers(log: Path, count: int) -> dict[int, int]:
    """Wait until `count` worker processes hold their dispatcher lock; index -> pid."""
    async def holding() -> dict[int, int] | None:
        pids = {int(str(e["worker"])): int(str(e["pid"]))
                for e in _events(log, "worker_started")}
        held = {int(str(e["worker"]).split(":")[1]) for e in _events(log, "dispatcher_holding")}
        return pids if len(pids) == count and set(pids.values()) <= held else None
    found: dict[int, int] = await wait_for(holding, f"{count} workers holding their lock")
    return found


async def _order(db_url: str, http: aiohttp.ClientSession, daemon: Daemon) -> str:
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


async def _fetch(db_url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db_url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _sent(db_url: str) -> int:
    rows = await _fetch(db_url, "SELECT count(*) AS n FROM deliveries WHERE state = 'sent'")
    return int(rows[0]["n"])


async def _all_sent(db_url: str) -> None:
    async def done() -> bool:
        return await _sent(db_url) == N
    await wait_for(done, "every delivery sent", deadline=120)


def _gone(pid: int) -> bool:
    """The process ended (a zombie waiting for its reaper counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


async def _sent_metric(http: aiohttp.ClientSession, daemon: Daemon) -> float:
    async with http.get(f"{daemon.url}/metrics") as r:
        text = await r.text()
    return sum(float(m.group(1)) for m in re.finditer(
        r'^alertd_deliveries_total\{outcome="sent",service="\w+"\} (\S+)$', text, re.M))


async def test_a_killed_worker_is_restarted_and_every_device_gets_the_order(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """`alertd run --workers 2`: both workers send; one killed with SIGKILL mid-fan-out is
    restarted (logged with how it ended) and sends again; every device gets the order, one
    delivery row each, and only sends whose outcome the killed worker had not written repeat."""
    await _seed(db_url)
    daemon = _daemon(db_url, sandbox, tmp_path / "daemon.log", workers=2)
    daemon.start()
    await daemon.ready(http)
    pids = await _workers(daemon.log, 2)
    order_id = await _order(db_url, http, daemon)
    await _under_way(sandbox, http)
    claimers = {int(r["pid"]) for r in await _fetch(
        db_url, "SELECT DISTINCT split_part(claimed_by, ':', 2) AS pid FROM deliveries"
                " WHERE claimed_by IS NOT NULL")}
    assert claimers == set(pids.values()), "both worker processes claim from the outbox"
    victim = 0
    os.kill(pids[victim], signal.SIGKILL)
    assert len(await sandbox.deliveries(http)) < N, "the fan-out ended before the kill; raise N"

    async def restarted() -> bool:
        return len([e for e in _events(daemon.log, "worker_started")
                    if e["worker"] == victim]) == 2
    await wait_for(restarted, "the killed worker restarted")
    exited = _events(daemon.log, "worker_exited")
    assert [(e["worker"], e["exit"]) for e in exited] == [(victim, "killed by SIGKILL")]
    replacement = await _workers(daemon.log, 2)
    assert replacement[victim] != pids[victim] and replacement[1 - victim] == pids[1 - victim]
    await _all_sent(db_url)

    got = await sandbox.deliveries(http)
    repeated = await repeats.count(db_url, order_id, got, [daemon.log])
    assert set(repeated.values()) <= {0, 1}
    assert sum(repeated.values()) <= 2 * CONCURRENCY, "only the killed worker's sends repeat"
    assert daemon.proc is not None and daemon.proc.poll() is None


async def test_sigterm_stops_every_worker_cleanly_and_nothing_is_sent_twice(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """SIGTERM mid-fan-out stops the supervisor and both workers with exit status 0, leaving no
    delivery leased; a restarted daemon sends the rest, and the sandbox holds exactly one
    request per device; /metrics of the restarted daemon counts its workers' sends."""
    await _seed(db_url)
    daemon = _daemon(db_url, sandbox, tmp_path / "daemon.log", workers=2)
    daemon.start()
    await daemon.ready(http)
    pids = await _workers(daemon.log, 2)
    await _order(db_url, http, daemon)
    await _under_way(sandbox, http)
    assert daemon.kill(signal.SIGTERM) == 0
    assert all(_gone(pid) for pid in pids.values())
    assert len(await sandbox.deliveries(http)) < N, "the fan-out ended before the stop; raise N"
    leased = await _fetch(db_url, "SELECT count(*) AS n FROM deliveries WHERE state = 'sending'")
    assert leased[0]["n"] == 0, "in-flight deliveries were finished or handed back"
    stopped = [e["worker"] for e in _events(daemon.log, "alertd_stopped") if "worker" in e]
    assert sorted(stopped) == [0, 1]

    before = await _sent(db_url)
    daemon.start()
    await daemon.ready(http)
    await _all_sent(db_url)
    per_token = Counter(d["token"] for d in await sandbox.deliveries(http))
    assert per_token == Counter({f"w-{i}": 1 for i in range(N)})

    async def counted() -> bool:
        return await _sent_metric(http, daemon) == N - before
    await wait_for(counted, "the workers' sends counted in the supervisor's /metrics")


async def test_workers_stop_when_their_supervisor_is_killed(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """A supervisor killed with SIGKILL leaves no worker behind: each one sees its supervisor
    gone, says so, and stops."""
    daemon = _daemon(db_url, sandbox, tmp_path / "daemon.log", workers=2)
    daemon.start()
    await daemon.ready(http)
    pids = await _workers(daemon.log, 2)
    daemon.kill(signal.SIGKILL)

    async def all_gone() -> bool:
        return all(_gone(pid) for pid in pids.values())
    await wait_for(all_gone, "the orphaned workers to stop")
    assert sorted(e["worker"] for e in _events(daemon.log, "worker_orphaned")) == [0, 1]
