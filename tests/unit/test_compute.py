"""Tests for alertd.compute: jobs inline or in worker processes, with a time limit."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from alertd import compute, errors, settings
from geo import municipalities
from tests.waiting import POLL_S, wait_for

AREAS = Path(__file__).resolve().parents[2] / "config" / "areas" / "fukushima_areas.geojson"
TABLE = municipalities.load(AREAS)


def where(table: municipalities.Table, _arg: None) -> tuple[int, int]:
    """A job: the process it runs in, and how many municipalities its table has."""
    return os.getpid(), len(table.codes6())


def refuse(_table: municipalities.Table, reason: str) -> None:
    """A job that refuses its input."""
    raise errors.InvalidInput(reason)


def spin(_table: municipalities.Table, seconds: float) -> str:
    """A job that burns CPU for a while."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def hold(_table: municipalities.Table, gate: str) -> str:
    """A job that keeps its worker until the file `gate` exists."""
    while not os.path.exists(gate):
        time.sleep(POLL_S)  # re-checking the gate, as wait_for does
    return "released"


def _config(**changes: float) -> settings.Compute:
    """The default compute settings with some changed."""
    return dataclasses.replace(settings.load(environ={}).compute, **changes)


async def _started(cfg: settings.Compute) -> compute.Compute:
    jobs = compute.Compute(cfg, AREAS)
    await jobs.start()
    return jobs


@pytest.fixture
async def pool() -> AsyncIterator[compute.Compute]:
    """Two workers, a 1-second limit per job."""
    jobs = await _started(_config(workers=2, timeout_s=1.0, wait_s=30.0))
    yield jobs
    await jobs.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_inline_jobs_run_in_this_process(pool: compute.Compute) -> None:
    """inline=True, or no workers at all, runs the job here with the caller's table."""
    count = len(TABLE.codes6())
    assert await pool.run(where, TABLE, None, inline=True) == (os.getpid(), count)
    assert await compute.Compute.inline().run(where, TABLE, None) == (os.getpid(), count)


async def test_jobs_run_in_a_worker_with_its_own_table(pool: compute.Compute) -> None:
    """A job runs in one of the worker processes, with a table loaded from the same file."""
    pid, count = await pool.run(where, TABLE, None)
    assert pid in pool.pids and pid != os.getpid()
    assert count == len(TABLE.codes6())
    assert len(pool.pids) == 2


async def test_errors_come_back_as_raised(pool: compute.Compute) -> None:
    """An error raised in the worker is raised to the caller with its type and reason."""
    with pytest.raises(errors.InvalidInput) as caught:
        await pool.run(refuse, TABLE, "no such place")
    assert type(caught.value) is errors.InvalidInput
    assert caught.value.reason == "no such place"


async def test_job_over_the_limit_is_killed_and_replaced(pool: compute.Compute) -> None:
    """A job over the time limit answers TooComplex (422); its process is killed, a new one
    takes its place and the next jobs run."""
    before = pool.pids
    with pytest.raises(errors.TooComplex) as caught:
        await pool.run(spin, TABLE, 60.0, what="the area")
    assert caught.value.reason == (
        "processing the area took longer than 1 s, the limit for one request; simplify it "
        "(fewer vertices, fewer shapes)")
    killed = [pid for pid in before if pid not in pool.pids]
    assert len(killed) == 1 and pool.replaced == 1
    await wait_for(_until(lambda: not _alive(killed[0])), "the killed worker to be gone")
    await wait_for(_until(lambda: len(pool.pids) == 2), "a replacement worker")
    assert await pool.run(spin, TABLE, 0.01) == "done"
    assert await pool.run(spin, TABLE, 0.01) == "done"


async def test_all_workers_busy_is_overloaded(tmp_path: Path) -> None:
    """A job that finds every worker busy for wait_s gets Overloaded (503); the busy job still
    finishes."""
    jobs = await _started(_config(workers=1, timeout_s=60.0, wait_s=0.2))
    try:
        gate = tmp_path / "gate"
        first = asyncio.create_task(jobs.run(hold, TABLE, str(gate)))
        await wait_for(_until(lambda: jobs.busy == 1), "the first job to take the worker")
        with pytest.raises(errors.Overloaded) as caught:
            await jobs.run(spin, TABLE, 0.0)
        assert caught.value.reason == (
            "all 1 workers for heavy requests stayed busy for 0.2 s; retry in a few seconds")
        gate.touch()
        assert await first == "released"
    finally:
        await jobs.close()


async def test_close_stops_a_running_job(tmp_path: Path) -> None:
    """Closing kills the worker of a job still running; its caller gets NotReady (503)."""
    jobs = await _started(_config(workers=1, timeout_s=60.0, wait_s=1.0))
    running = asyncio.create_task(jobs.run(hold, TABLE, str(tmp_path / "never")))
    await wait_for(_until(lambda: jobs.busy == 1), "the job to start")
    pid = jobs.pids[0]
    await jobs.close()
    with pytest.raises(errors.NotReady):
        await running
    await wait_for(_until(lambda: not _alive(pid)), "the worker to be gone")


def _until(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A check for wait_for from a plain predicate."""
    async def check() -> bool:
        return predicate()
    return check
