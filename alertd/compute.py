"""CPU-heavy request steps (area geometry, CAP parsing) run off the event loop, with a time limit.

One request must not stall everyone: while a handler computes, the asyncio loop answers nobody,
`/healthz` included. So the steps whose cost grows with the input run in worker processes
(``compute.workers``). Each worker is a ``ProcessPoolExecutor`` of one process, so that a job
over its time limit (``compute.timeout_s``) is stopped by killing exactly the process running
it; a fresh process replaces it in the background and the request gets
:class:`~alertd.errors.TooComplex` (422). A request that finds every worker busy for
``compute.wait_s`` gets :class:`~alertd.errors.Overloaded` (503).

Small inputs run inline (the caller says which: ``inline=True``): parsing a 5-vertex polygon
takes microseconds, a process hop about a millisecond, and an evacuation order with a simple
area must never queue behind a viewer's tangled preview. With ``compute.workers = 0`` every job
runs inline (tests, tiny deployments).

A job is a module-level function ``job(table, arg)``. Inline it gets the caller's table; a
worker loads its own from the same file at start, so only ``arg`` and the result cross the
process boundary (both are pickled).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from alertd import errors, logs, metrics, settings
from geo import municipalities

log = structlog.get_logger(__name__)

A = TypeVar("A")
T = TypeVar("T")
Job = Callable[[municipalities.Table, A], T]

# Workers yield the CPU to the event loop (and to PostgreSQL) when both want it.
_NICE = 10
# Imported once by the fork server, so that a replacement worker starts in milliseconds.
_PRELOAD = ["alertd.compute", "alertd.orders", "alertd.ingest.cap_mapping"]

_table: municipalities.Table | None = None  # a worker process's own table


def _start_worker(areas_file: str) -> None:
    """Worker process start: lower its priority, load its municipality table."""
    global _table
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    _table = municipalities.Table.load(areas_file)


def _run_in_worker(job: Job[A, T], arg: A) -> T:
    """Run one job in a worker process, with the worker's table."""
    assert _table is not None, "worker started without its table"
    return job(_table, arg)


@dataclass(slots=True, eq=False)
class _Worker:
    """One worker process and its executor."""

    executor: ProcessPoolExecutor
    pid: int
    busy: bool = False
    killed: bool = False


class Compute:
    """Runs jobs inline or in worker processes with a time limit (see the module docstring)."""

    def __init__(self, cfg: settings.Compute, areas_file: Path | None = None) -> None:
        if cfg.workers and areas_file is None:
            raise ValueError("worker processes need the areas file to load their table")
        self._cfg = cfg
        self._areas_file = str(areas_file)
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False
        self.finished = 0  # jobs a worker finished (with a result or an error it raised)
        self.replaced = 0  # workers killed or lost, and replaced

    @classmethod
    def inline(cls) -> Compute:
        """A Compute that runs every job in the calling process."""
        # With no workers the other keys are never read.
        return cls(settings.Compute(workers=0, timeout_s=0.0, wait_s=0.0, inline_max_positions=0,
                                    inline_max_bytes=0))

    @property
    def busy(self) -> int:
        """How many workers are running a job."""
        return sum(w.busy for w in self._workers)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return sorted(w.pid for w in self._workers if not w.killed)

    async def start(self) -> None:
        """Start the worker processes and wait until each has loaded its table."""
        if self._cfg.workers:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            await asyncio.gather(*(self._spawn() for _ in range(self._cfg.workers)))
            log.info("compute_started", workers=self._cfg.workers, pids=self.pids)

    async def _spawn(self) -> None:
        executor = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("forkserver"),
            initializer=_start_worker, initargs=(self._areas_file,))
        try:
            pid = await asyncio.wrap_future(executor.submit(os.getpid))
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        if self._closed:
            executor.shutdown(wait=False)
            return
        worker = _Worker(executor, pid)
        self._workers.add(worker)
        self._idle.put_nowait(worker)

    async def run(self, job: Job[A, T], table: municipalities.Table, arg: A, *,
                  inline: bool = False, what: str = "the request") -> T:
        """``job(table, arg)``, inline or in a worker (whose table is loaded from the same
        file); errors come back as they were raised. ``what`` names the input in refusals."""
        if inline or not self._cfg.workers:
            metrics.COMPUTE_JOBS.labels("inline").inc()
            return job(table, arg)
        worker = await self._take()
        loop = asyncio.get_running_loop()
        future: Future[T] = worker.executor.submit(_run_in_worker, job, arg)
        future.add_done_callback(lambda f: _call_soon(loop, self._finished, worker, f))
        answer = asyncio.wrap_future(future)
        try:
            done, _ = await asyncio.wait({answer}, timeout=self._cfg.timeout_s)
        except asyncio.CancelledError:
            self._abandon(worker, answer)  # nobody waits for the answer: stop burning CPU
            raise
        if not done:
            metrics.COMPUTE_JOBS.labels("timeout").inc()
            self._abandon(worker, answer)
            log.warning("compute_job_timeout", job=job.__name__, timeout_s=self._cfg.timeout_s)
            raise errors.TooComplex(
                f"processing {what} took longer than {self._cfg.timeout_s:g} s, the limit for "
                "one request; simplify it (fewer vertices, fewer shapes)")
        if isinstance(answer.exception(), BrokenProcessPool):
            metrics.COMPUTE_JOBS.labels("lost").inc()
            if self._closed:
                raise errors.NotReady("the daemon is stopping; retry shortly")
            log.error("compute_worker_lost", job=job.__name__, pid=worker.pid)
            raise errors.TooComplex(f"the worker process handling {what} failed (out of "
                                    "memory?); simplify it")
        metrics.COMPUTE_JOBS.labels("done").inc()
        self.finished += 1
        return answer.result()

    async def _take(self) -> _Worker:
        """An idle worker, now marked busy (Overloaded when none frees up within wait_s)."""
        if self._closed:
            raise errors.NotReady("the daemon is stopping; retry shortly")
        try:
            async with asyncio.timeout(self._cfg.wait_s):
                worker = await self._idle.get()
        except TimeoutError:
            metrics.COMPUTE_JOBS.labels("overloaded").inc()
            raise errors.Overloaded(
                f"all {self._cfg.workers} workers for heavy requests stayed busy for "
                f"{self._cfg.wait_s:g} s; retry in a few seconds") from None
        worker.busy = True
        return worker

    def _abandon(self, worker: _Worker, answer: asyncio.Future[T]) -> None:
        """Kill the worker running a job whose answer nobody will read."""
        answer.add_done_callback(_read)  # its BrokenProcessPool is expected, not news
        self._kill(worker)

    def _kill(self, worker: _Worker) -> None:
        if not worker.killed:
            worker.killed = True
            self.replaced += not self._closed
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)

    def _finished(self, worker: _Worker, future: Future[Any]) -> None:
        """A job ended: the worker is idle again, or (killed, lost) replaced."""
        lost = worker.killed or (not future.cancelled()
                                 and isinstance(future.exception(), BrokenProcessPool))
        worker.busy = False
        if not lost:
            self._idle.put_nowait(worker)
            return
        if not worker.killed:  # it died on its own (out of memory, a crash in GEOS)
            worker.killed = True
            self.replaced += not self._closed
        self._workers.discard(worker)
        worker.executor.shutdown(wait=False, cancel_futures=True)
        if not self._closed:
            task = asyncio.create_task(self._spawn())
            self._starting.add(task)
            task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("compute_worker_start_failed", error=logs.describe(exc))

    async def close(self) -> None:
        """Stop every worker (a running job is killed) and wait for the processes to end."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        workers, self._workers = list(self._workers), set()
        for worker in workers:
            if worker.busy:
                self._kill(worker)
        for worker in workers:
            await asyncio.to_thread(worker.executor.shutdown, wait=True, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[_Worker, Future[Any]], None],
               worker: _Worker, future: Future[Any]) -> None:
    """Hand a finished job back to the loop (done callbacks run in the executor's thread)."""
    with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to do
        loop.call_soon_threadsafe(callback, worker, future)


def _read(answer: asyncio.Future[T]) -> None:
    """Retrieve an abandoned answer's outcome, so that asyncio does not report it as lost."""
    if not answer.cancelled():
        answer.exception()
