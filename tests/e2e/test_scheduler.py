"""The scheduler role as real daemon processes: two nodes run each scheduled time once, the
standby takes over when the leader is killed, a downtime is caught up once; `alertd jobs`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.e2e.conftest import Client, Daemon, Sandbox, daemon_env, free_port_base, wait_for

pytestmark = pytest.mark.e2e

JOBS = ("weekly_tips", "expire_orders", "expire_cap_waiting", "drop_stale_locations",
        "erase_idle_devices", "purge")
WEEK_S = "604800"
ALERTD = Path(sys.executable).parent / "alertd"


def _env(db_url: str) -> dict[str, str]:
    # Every job weekly: none comes due again during the test by itself.
    every = {f"ALERTD_HOUSEKEEPING_{k}": WEEK_S for k in (
        "EXPIRE_ORDERS_EVERY_S", "CAP_WAITING_EVERY_S", "LOCATIONS_EVERY_S", "DEVICES_EVERY_S",
        "PURGE_EVERY_S")}
    return daemon_env(db_url, free_port_base(1), ALERTD_SCHEDULER_STANDBY_RETRY_S="0.1",
                      **every)


def _count(d: Daemon, event: str) -> int:
    return d.log.read_text(errors="replace").count(f'"{event}"')


async def _runs(conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    rows = await conn.fetch("SELECT name, runs, node FROM scheduled_jobs")
    return {r["name"]: (r["runs"], r["node"].rsplit(":", 1)[-1]) for r in rows}


async def test_two_schedulers_run_once_and_the_standby_takes_over(
        db_url: str, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """Of two scheduler nodes one runs every due job once; SIGKILLed, the other takes over and
    runs what was missed once; restarted after a downtime of three periods, one run each."""
    config = tmp_path / "empty.toml"
    config.write_text("")
    env = _env(db_url)
    a, b = (Daemon(port=0, env=env, config=config, log=tmp_path / f"{n}.log",
                   roles="scheduler") for n in "ab")
    a.start()
    b.start()
    await a.ready(http)
    await b.ready(http)

    async def leader() -> Daemon | None:
        done = [d for d in (a, b) if _count(d, "scheduler_caught_up")]
        return done[0] if done else None

    first = await wait_for(leader, "a node to lead and catch up")
    other = b if first is a else a
    assert first.proc is not None and other.proc is not None
    conn = await asyncpg.connect(db_url)
    try:
        assert await _runs(conn) == {j: (1, str(first.proc.pid)) for j in JOBS}
        assert _count(other, "scheduler_leading") == 0
        # purge's last three weeks are missed; then the leader dies without a word.
        await conn.execute("UPDATE scheduled_jobs SET slot = slot - interval '21 days'"
                           " WHERE name = 'purge'")
        first.kill(signal.SIGKILL)
        await wait_for(lambda: _async(_count(other, "scheduler_caught_up") == 1),
                       "the standby to take over and catch up")
        runs = await _runs(conn)
        assert runs.pop("purge") == (2, str(other.proc.pid))
        assert runs == {j: (1, str(first.proc.pid)) for j in JOBS if j != "purge"}
        # Everything down for three weeks of erase_idle_devices, then one node comes back.
        other.stop()
        await conn.execute("UPDATE scheduled_jobs SET slot = slot - interval '21 days'"
                           " WHERE name = 'erase_idle_devices'")
        other.start()
        await wait_for(lambda: _async(_count(other, "scheduler_caught_up") == 2),
                       "the restarted node to catch up")
        runs = await _runs(conn)
        assert runs["erase_idle_devices"] == (2, str(other.proc.pid))
        assert runs["purge"][0] == 2 and runs["expire_orders"][0] == 1
    finally:
        await conn.close()


async def _async(value: bool) -> bool:
    return value


async def test_two_schedulers_send_the_weekly_tip_once(
        db_url: str, sandbox: Sandbox, daemon: Daemon, tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    """With two scheduler nodes each phone with tips on gets this week's tip once, one with
    tips off none; the leader SIGKILLed, the standby runs the week again (rewound, as if
    missed) and nobody gets a second tip."""
    api = Client(http, daemon.url)
    phones = {f"weekly-{i}": await api.device("ios" if i % 2 else "android", f"weekly-{i}")
              for i in range(4)}
    status, _ = await api.call("PATCH", "/v1/me", phones["weekly-3"][1], {"tips": False})
    assert status == 200
    config = tmp_path / "empty.toml"
    config.write_text("")
    a, b = (Daemon(port=0, env=_env(db_url), config=config, log=tmp_path / f"{n}.log",
                   roles="scheduler") for n in "ab")
    a.start()
    b.start()

    async def tipped() -> dict[str, int] | None:
        got = [d["token"] for d in await sandbox.deliveries(http) if d["status"] == 200]
        counts = {t: got.count(t) for t in set(got)}
        return counts if len(counts) >= 3 else None

    assert await wait_for(tipped, "three tips") == {f"weekly-{i}": 1 for i in range(3)}
    first = a if _count(a, "scheduler_caught_up") else b
    other = b if first is a else a
    assert first.proc is not None and other.proc is not None
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE scheduled_jobs SET slot = slot - interval '7 days'"
                           " WHERE name = 'weekly_tips'")
        first.kill(signal.SIGKILL)
        await wait_for(lambda: _async(_count(other, "scheduler_caught_up") == 1),
                       "the standby to take over and catch up")
        row = await conn.fetchrow("SELECT runs, node, result FROM scheduled_jobs"
                                  " WHERE name = 'weekly_tips'")
        assert (row["runs"], row["node"].rsplit(":", 1)[-1], json.loads(row["result"])) == (
            2, str(other.proc.pid), {"tips_queued": 0})
        assert await conn.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'tip'") == 3
    finally:
        await conn.close()
    assert await tipped() == {f"weekly-{i}": 1 for i in range(3)}


def _jobs(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ALERTD), "jobs", *args], env=_env(db_url), capture_output=True,
                          text=True, timeout=120)


async def test_jobs_list_and_run(db_url: str) -> None:
    """`alertd jobs list` names each job with its schedule; `alertd jobs run NAME` runs it now
    and records the run (exit 0); an unknown name is refused with the names (exit 1)."""
    listed = _jobs("list", db_url=db_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(JOBS)
    assert "weekly on Monday at 10:00 Asia/Tokyo" in lines[0]
    assert all("every 7 d" in line for line in lines[1:])
    ran = _jobs("run", "purge", db_url=db_url)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("purge: ran in ") and "deliveries_purged 0" in ran.stdout
    again = _jobs("run", "purge", db_url=db_url)  # not due any more: run all the same
    assert again.returncode == 0, again.stderr
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT runs, node FROM scheduled_jobs WHERE name = 'purge'")
        assert row["runs"] == 2 and row["node"].startswith("cli:")
    finally:
        await conn.close()
    unknown = _jobs("run", "purge_everything", db_url=db_url)
    assert unknown.returncode == 1
    assert "no job named 'purge_everything'" in unknown.stderr and "purge" in unknown.stderr
