"""The scheduler: jobs on schedules, run by one node at a time, each scheduled time once.

APScheduler fires the jobs at their times; PostgreSQL decides whether a firing runs. The last
scheduled time each job ran for is kept in `scheduled_jobs` (written only once a run ended
well), so a job runs when its latest scheduled time is newer than that: a week missed while
every node was down runs once when a node comes back (not once per missed week), a run cut
short runs again, and APScheduler's own memory of misfires counts for nothing. One node leads
(a session advisory lock on a connection of its own); others stand by, trying the lock every
`scheduler.standby_retry_s`, and take over when the leader's session ends. A job also holds a
lock of its own while it runs, so `alertd jobs run` and a leader never run one job at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from alertd import backoff, db, logs, metrics, settings

log = structlog.get_logger(__name__)

# pg_advisory_lock(SCHEDULER_LOCK): the leader. pg_advisory_lock(JOB_LOCKS, hashtext(name)):
# one job running (two-key locks show in pg_locks with objsubid 2, apart from one-key ones).
SCHEDULER_LOCK = 0x616C7363  # "alsc"
JOB_LOCKS = 0x616C6A62  # "aljb"
LOCK_CHECK_S = 10.0  # a lock connection that answers no query for this long counts as lost
RETRY_BASE_S = 5.0  # a failed run is tried again after this, doubling ...
RETRY_MAX_S = 600.0  # ... up to this, for as long as it stays due
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Same keepalive as a dispatcher's lock session (alertd.delivery.outbox): a vanished host frees
# the leadership in about 11 s.
_KEEPALIVE = "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;" \
             " SET tcp_keepalives_count = 3"

logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per firing is noise


@dataclass(frozen=True, slots=True)
class Weekly:
    """Once a week, on `day` (0 = Monday) at `at`, local time in `tz`."""

    day: int
    at: clock
    tz: str

    def latest(self, now: datetime) -> datetime:
        """The last scheduled time at or before `now`."""
        local = now.astimezone(ZoneInfo(self.tz))
        date = local.date() - timedelta(days=(local.weekday() - self.day) % 7)
        slot = datetime.combine(date, self.at, tzinfo=ZoneInfo(self.tz))
        if slot > local:
            slot = datetime.combine(date - timedelta(days=7), self.at, tzinfo=ZoneInfo(self.tz))
        return slot.astimezone(UTC)

    def trigger(self) -> BaseTrigger:
        """APScheduler's trigger for the same times."""
        return CronTrigger(day_of_week=DAYS[self.day], hour=self.at.hour,
                           minute=self.at.minute, timezone=ZoneInfo(self.tz))

    def describe(self) -> str:
        """The schedule in words."""
        return f"weekly on {_DAY_NAMES[self.day]} at {self.at:%H:%M} {self.tz}"


@dataclass(frozen=True, slots=True)
class Every:
    """Every `seconds`, at whole multiples of it since the Unix epoch."""

    seconds: float

    def latest(self, now: datetime) -> datetime:
        """The last scheduled time at or before `now`."""
        n = math.floor((now - _EPOCH).total_seconds() / self.seconds)
        return _EPOCH + timedelta(seconds=n * self.seconds)

    def trigger(self) -> BaseTrigger:
        """APScheduler's trigger for the same times."""
        return IntervalTrigger(seconds=self.seconds, start_date=_EPOCH, timezone=UTC)

    def describe(self) -> str:
        """The schedule in words."""
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if self.seconds >= size and self.seconds % size == 0:
                return f"every {int(self.seconds // size)} {unit}"
        return f"every {self.seconds:g} s"


Schedule = Weekly | Every


def weekly(cfg: settings.Scheduler, day: str, at: str) -> Weekly:
    """A weekly schedule from configuration (`mon`, `10:00`, in scheduler.timezone)."""
    hour, minute = at.split(":")
    return Weekly(DAYS.index(day), clock(int(hour), int(minute)), cfg.timezone)


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job runs with: the scheduled time it runs for, and the time it started."""

    pool: asyncpg.Pool
    cfg: settings.Settings
    slot: datetime
    now: datetime
    node: str


# A job's work: returns counts of what it did (rows purged, tips sent, ...), by name.
JobFn = Callable[[JobContext], Awaitable[Mapping[str, int]]]


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled job."""

    name: str
    schedule: Schedule
    what: str
    work: JobFn


@dataclass(frozen=True, slots=True)
class Ran:
    """One run of a job."""

    job: str
    slot: datetime
    counts: dict[str, int]
    seconds: float


def node_name() -> str:
    """This process, as scheduled_jobs.node records it (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def last_slots(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, asyncpg.Record]:
    """The last recorded run of every job that ran, by job name."""
    rows = await conn.fetch("SELECT name, slot, started_at, finished_at, node, runs, result"
                            " FROM scheduled_jobs")
    return {r["name"]: r for r in rows}


async def run(pool: asyncpg.Pool, cfg: settings.Settings, job: Job, *, node: str,
              force: bool = False, now: datetime | None = None) -> Ran | None:
    """Run `job` for its latest scheduled time if that has not run yet (`force`: whether or
    not), then record it. None when it was not due, or (unless `force`, which waits) when it
    is running elsewhere. A failing job raises and records nothing: it is still due."""
    async with pool.acquire() as lock_conn:
        if force:
            await lock_conn.execute("SELECT pg_advisory_lock($1, hashtext($2))",
                                    JOB_LOCKS, job.name)
        elif not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))",
                                          JOB_LOCKS, job.name):
            return None
        try:
            return await _run_locked(pool, cfg, job, node, force, now)
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))",
                                    JOB_LOCKS, job.name)


async def _run_locked(pool: asyncpg.Pool, cfg: settings.Settings, job: Job, node: str,
                      force: bool, now: datetime | None) -> Ran | None:
    started = now or datetime.now(UTC)
    slot = job.schedule.latest(started)
    last = await pool.fetchval("SELECT slot FROM scheduled_jobs WHERE name = $1", job.name)
    if not force and last is not None and last >= slot:
        return None
    t0 = time.monotonic()
    try:
        counts = dict(await job.work(JobContext(pool, cfg, slot, started, node)))
    except Exception:
        metrics.JOB_RUNS.labels(job.name, "error").inc()
        raise
    seconds = time.monotonic() - t0
    await pool.execute(
        "INSERT INTO scheduled_jobs (name, slot, started_at, finished_at, node, result)"
        " VALUES ($1, $2, $3, now(), $4, $5) ON CONFLICT (name) DO UPDATE SET"
        " slot = greatest(scheduled_jobs.slot, EXCLUDED.slot), started_at = EXCLUDED.started_at,"
        " finished_at = now(), node = EXCLUDED.node, runs = scheduled_jobs.runs + 1,"
        " result = EXCLUDED.result", job.name, slot, started, node, counts)
    metrics.JOB_RUNS.labels(job.name, "ok").inc()
    metrics.JOB_LAST_SUCCESS.labels(job.name).set(time.time())
    for what, n in counts.items():
        metrics.JOB_ITEMS.labels(job.name, what).inc(n)
    log.info("job_ran", job=job.name, slot=slot.isoformat(), seconds=round(seconds, 3), **counts)
    return Ran(job.name, slot, counts, seconds)


class Scheduler:
    """The scheduler role: leads when it holds the lock, else stands by."""

    def __init__(self, pool: asyncpg.Pool, cfg: settings.Settings, jobs: Sequence[Job]) -> None:
        self.pool = pool
        self.cfg = cfg
        self.jobs = {j.name: j for j in jobs}
        self.node = node_name()
        self.leading = asyncio.Event()
        self.caught_up = asyncio.Event()  # set once a new leader ran what was due
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Lead or stand by until `stop`; a lost connection sends it back to standing by."""
        poll = self.cfg.scheduler.standby_retry_s
        while not stop.is_set():
            try:
                conn = await db.connect_one(self.cfg.database.url)
            except Exception as exc:
                log.warning("scheduler_connect_failed", error=logs.describe(exc))
                await backoff.pause(stop, poll)
                continue
            try:
                await conn.execute(_KEEPALIVE)
                while not stop.is_set():
                    if await asyncio.wait_for(
                            conn.fetchval("SELECT pg_try_advisory_lock($1)", SCHEDULER_LOCK),
                            LOCK_CHECK_S):
                        await self._lead(conn, stop)
                        break
                    await backoff.pause(stop, poll)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("scheduler_lock_lost", node=self.node, error=logs.describe(exc))
            finally:
                await self._step_down()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1.0)
                if not conn.is_closed():
                    conn.terminate()
            await backoff.pause(stop, poll)

    async def _lead(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        aps = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        for job in self.jobs.values():
            aps.add_job(self._fire, job.schedule.trigger(), args=[job.name], id=job.name,
                        name=job.name)
        aps.start()
        self.leading.set()
        metrics.SCHEDULER_LEADER.set(1)
        log.info("scheduler_leading", node=self.node, jobs=list(self.jobs))
        catching_up = asyncio.create_task(self._catch_up())
        try:
            while not stop.is_set() and not conn.is_closed():
                await backoff.pause(stop, self.cfg.scheduler.standby_retry_s)
                await asyncio.wait_for(conn.fetchval("SELECT 1"), LOCK_CHECK_S)
        finally:
            aps.shutdown(wait=False)
            catching_up.cancel()

    async def _catch_up(self) -> None:
        """On taking over: run once each job whose latest scheduled time has not run (missed
        while no node led, or cut short by a crash), however many times it was missed."""
        for name in self.jobs:
            self._start(name)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self.caught_up.set()
        log.info("scheduler_caught_up", node=self.node)

    async def _step_down(self) -> None:
        """Stop leading: jobs under way are cancelled (unrecorded, they run again)."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        self.caught_up.clear()
        metrics.SCHEDULER_LEADER.set(0)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("scheduler_standing_down", node=self.node)

    async def _fire(self, name: str) -> None:
        """APScheduler's callback: start the job unless it is running here already."""
        self._start(name)

    def _start(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None and not task.done():
            return  # it looks again for a newer scheduled time when it ends
        self._tasks[name] = asyncio.create_task(self._until_done(self.jobs[name]))

    async def _until_done(self, job: Job) -> None:
        """Run the job while it is due (a time that passed during a run is run next); a
        failure is tried again after a back-off."""
        failures = 0
        while self.leading.is_set():
            try:
                ran = await run(self.pool, self.cfg, job, node=self.node)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                wait = backoff.delay(failures, RETRY_BASE_S, RETRY_MAX_S)
                log.error("job_failed", job=job.name, error=logs.describe(exc),
                          retry_in_s=round(wait, 1), exc_info=exc)
                await asyncio.sleep(wait)
                continue
            if ran is None:
                return
            failures = 0


def describe(jobs: Sequence[Job]) -> list[str]:
    """`alertd jobs list`: one line per job, its name, schedule and what it does."""
    width = max((len(j.name) for j in jobs), default=0)
    swidth = max((len(j.schedule.describe()) for j in jobs), default=0)
    return [f"{j.name.ljust(width)}  {j.schedule.describe().ljust(swidth)}  {j.what}"
            for j in jobs]
