"""The scheduler on a real PostgreSQL: each scheduled time runs once, whoever runs it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from alertd import scheduler, settings
from tests.waiting import wait_for

HOURLY = scheduler.Every(3600)


class Counting:
    """A job's work that counts its runs (and can be told to fail, or to wait)."""

    def __init__(self) -> None:
        self.slots: list[datetime] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, ctx: scheduler.JobContext) -> Mapping[str, int]:
        """One run: waits at the gate if there is one, then counts."""
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("the job broke")
        self.slots.append(ctx.slot)
        return {"things": 2}


def _cfg(db_url: str, **env: str) -> settings.Settings:
    return settings.load(environ={"ALERTD_DATABASE_URL": db_url, **env})


async def test_a_time_runs_once_and_a_long_downtime_runs_once(pool: asyncpg.Pool,
                                                              db_url: str) -> None:
    """A job runs for its latest time once; weeks missed while down run once, not per week."""
    work = Counting()
    job = scheduler.Job("weekly", scheduler.Weekly(0, datetime.min.time(), "Asia/Tokyo"),
                        "test", work)
    cfg = _cfg(db_url)
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    first = await scheduler.run(pool, cfg, job, node="a", now=t0)
    assert first is not None and first.counts == {"things": 2}
    assert await scheduler.run(pool, cfg, job, node="b", now=t0 + timedelta(days=1)) is None
    later = t0 + timedelta(days=23)  # three Mondays went by with no node running
    assert await scheduler.run(pool, cfg, job, node="b", now=later) is not None
    assert await scheduler.run(pool, cfg, job, node="a", now=later) is None
    assert work.slots == [job.schedule.latest(t0), job.schedule.latest(later)]
    row = await pool.fetchrow("SELECT slot, node, runs, result FROM scheduled_jobs")
    assert (row["slot"], row["node"], row["runs"], row["result"]) == (
        job.schedule.latest(later), "b", 2, {"things": 2})


async def test_a_failed_run_is_not_recorded(pool: asyncpg.Pool, db_url: str) -> None:
    """A run that raises leaves its time due: the next attempt runs it."""
    work = Counting()
    work.fail = True
    job = scheduler.Job("flaky", HOURLY, "test", work)
    cfg = _cfg(db_url)
    with pytest.raises(RuntimeError):
        await scheduler.run(pool, cfg, job, node="a")
    assert await pool.fetchval("SELECT count(*) FROM scheduled_jobs") == 0
    work.fail = False
    assert await scheduler.run(pool, cfg, job, node="a") is not None
    assert len(work.slots) == 1


async def test_one_job_runs_in_one_place_at_a_time(pool: asyncpg.Pool, db_url: str) -> None:
    """While a job runs, another runner skips it; a forced run waits, then runs it again."""
    work = Counting()
    work.gate = asyncio.Event()
    job = scheduler.Job("slow", HOURLY, "test", work)
    cfg = _cfg(db_url)
    running = asyncio.create_task(scheduler.run(pool, cfg, job, node="a"))
    await wait_for(lambda: pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
        " AND classid = $1::int4::oid", scheduler.JOB_LOCKS), "the job's lock to be taken")
    assert await scheduler.run(pool, cfg, job, node="b") is None
    forced = asyncio.create_task(scheduler.run(pool, cfg, job, node="cli", force=True))
    work.gate.set()
    assert await running is not None
    assert await forced is not None
    assert len(work.slots) == 2
    assert await pool.fetchval("SELECT runs FROM scheduled_jobs") == 2


async def test_one_of_two_schedulers_leads_and_the_other_takes_over(
        pool: asyncpg.Pool, db_url: str) -> None:
    """Two schedulers: one leads and catches up once; when it stops the other leads, and runs
    only what is due (a time rewound as if missed), once."""
    work = Counting()
    job = scheduler.Job("hourly", HOURLY, "test", work)
    cfg = _cfg(db_url, ALERTD_SCHEDULER_STANDBY_RETRY_S="0.05")
    a = scheduler.Scheduler(pool, cfg, [job])
    b = scheduler.Scheduler(pool, cfg, [job])
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.run(stop_a))
    task_b: asyncio.Task[None] | None = None
    try:
        await wait_for(lambda: _now(a.caught_up.is_set()), "the first leader's catch-up")
        assert len(work.slots) == 1
        task_b = asyncio.create_task(b.run(stop_b))
        assert a.leading.is_set()
        assert not b.leading.is_set()
        await pool.execute("UPDATE scheduled_jobs SET slot = slot - interval '3 hours'")
        stop_a.set()
        await task_a
        await wait_for(lambda: _now(b.caught_up.is_set()), "b's catch-up")
        assert len(work.slots) == 2
        assert work.slots[0] == work.slots[1]  # the same latest time, run again once
        assert await pool.fetchval("SELECT runs FROM scheduled_jobs") == 2
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(task_a, *([task_b] if task_b else []))


async def _now(value: bool) -> bool:
    return value
