"""The dispatcher processes of `alertd run --workers N`: started, restarted when one dies,
stopped with the daemon.

Each worker process is `alertd run --role worker --workers 1` with the parent's configuration
and environment: an ordinary dispatcher sharing the outbox through PostgreSQL (claims with
SKIP LOCKED and a lease, a session lock per dispatcher, peers reaping the dead: see
alertd.delivery.presence), so a process that dies loses nothing and the others, and its
replacement, send what it held at once. The parent speaks to a child through two pipes: the
child's stdin, whose end (the parent gone, even by SIGKILL) stops the child as SIGTERM does,
and the child's stdout, on which the child says it is ready and reports its delivery counts
and send latencies, so that the parent's /metrics counts every process's deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from alertd import backoff, errors, metrics

log = structlog.get_logger(__name__)

READY = "ready"  # the first line a worker process writes on stdout, once it sends
CONFIG_ERROR = 2  # the exit status of `alertd` for a configuration error
HEALTHY_S = 30.0  # a worker that ran this long before it died is restarted at once
RESTART_BASE_S = 0.5  # then the restarts of one that keeps dying back off up to
RESTART_MAX_S = 30.0
STOP_MARGIN_S = 15.0  # beyond the dispatcher's shutdown grace, before SIGKILL
REPORT_S = 1.0  # how often a worker reports its delivery counts


def worker_count(requested: int | None) -> int:
    """Dispatcher processes to run: as requested, else one per CPU core."""
    if requested is not None:
        return requested
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def worker_argv(config_files: Sequence[str], index: int) -> list[str]:
    """The command line of worker process `index`: the same configuration, the worker role
    alone, in-process."""
    configs = [arg for path in config_files for arg in ("--config", path)]
    return [sys.executable, "-m", "alertd.cli", *configs, "run", "--role", "worker",
            "--workers", "1", "--worker-index", str(index)]


@dataclass(slots=True)
class Exited:
    """How one run of a worker process ended."""

    code: int  # exit status; negative: killed by that signal
    ready: bool  # it said it was ready before it ended
    ran_s: float


def describe_exit(code: int) -> str:
    """An exit status as a log text: `exit status 1`, `killed by SIGKILL`."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def restart_delay(failures: int) -> float:
    """Seconds before restarting a worker after `failures` deaths in a row (0: at once)."""
    if failures <= 0:
        return 0.0
    return backoff.delay(failures, RESTART_BASE_S, RESTART_MAX_S)


class Supervisor:
    """Keeps `count` worker processes running until stopped."""

    def __init__(self, config_files: Sequence[str], count: int, grace_s: float) -> None:
        self.config_files = list(config_files)
        self.count = count
        self.stop_s = grace_s + STOP_MARGIN_S
        self.pids: dict[int, int] = {}  # index -> pid of the running process
        self.restarts = 0
        self.failure: errors.ConfigError | None = None  # a worker that cannot start at all
        self._stopping = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Run the workers until `stop` is set (or one cannot start: then `failure` is set,
        and so is `stop`), then stop them all and wait for them."""
        keepers = [asyncio.create_task(self._keep(i, stop)) for i in range(self.count)]
        try:
            await stop.wait()
        finally:
            self._stopping.set()
            await asyncio.gather(*keepers, return_exceptions=True)

    async def _keep(self, index: int, stop: asyncio.Event) -> None:
        failures = 0
        while not self._stopping.is_set():
            exited = await self._run_once(index)
            if exited is None:  # stopped
                return
            if exited.code == CONFIG_ERROR and not exited.ready:
                log.error("worker_cannot_start", worker=index, exit=describe_exit(exited.code))
                self.failure = errors.ConfigError(
                    f"dispatcher process {index} stopped at its start with a configuration "
                    "error (see its log line above)")
                stop.set()
                return
            failures = 0 if exited.ready and exited.ran_s >= HEALTHY_S else failures + 1
            delay = restart_delay(failures)
            log.warning("worker_exited", worker=index, exit=describe_exit(exited.code),
                        ran_s=round(exited.ran_s, 1), restart_in_s=round(delay, 2))
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self, index: int) -> Exited | None:
        """Start worker `index` and wait until it ends (an Exited) or the supervisor stops
        (None, once the process has ended)."""
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *worker_argv(self.config_files, index), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        self.pids[index] = proc.pid
        log.info("worker_started", worker=index, pid=proc.pid)
        ready = asyncio.Event()
        reader = asyncio.create_task(self._read(proc, ready))
        ended = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                await self._end(index, proc)
                return None
            await reader  # the pipe's end follows the process's
            return Exited(proc.returncode or 0, ready.is_set(), time.monotonic() - started)
        finally:
            stopping.cancel()
            reader.cancel()
            self.pids.pop(index, None)

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        """Follow a worker's stdout: its readiness, then its delivery counts."""
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").strip()
            if text == READY:
                ready.set()
            elif text:
                add_counts(text)

    async def _end(self, index: int, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM (the worker finishes or hands back what it holds), then SIGKILL when it
        outlasts its grace."""
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), self.stop_s)
        except TimeoutError:
            log.error("worker_killed", worker=index, pid=proc.pid,
                      reason=f"still running {self.stop_s:.0f} s after SIGTERM")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return
        if proc.returncode not in (0, -signal.SIGTERM):
            log.warning("worker_stopped", worker=index, exit=describe_exit(proc.returncode or 0))


def counts() -> dict[str, float]:
    """This process's delivery counts and send latency counts so far, by key:
    `deliveries/<service>/<outcome>`, `send_seconds/<service>/<bucket index>` and
    `send_seconds/<service>/sum`."""
    out: dict[str, float] = {}
    for family in metrics.DELIVERIES.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                out[f"deliveries/{labels['service']}/{labels['outcome']}"] = sample.value
    for service, child in metrics.SEND_LATENCY.children().items():
        for i, n in enumerate(child.counts):
            out[f"send_seconds/{service}/{i}"] = n
        out[f"send_seconds/{service}/sum"] = child.total
    return out


def counts_line(now: dict[str, float], sent: dict[str, float]) -> str:
    """The JSON line a worker writes: its counts that grew since `sent` (what it reported)."""
    return json.dumps({key: value - sent.get(key, 0.0) for key, value in now.items()
                       if value != sent.get(key, 0.0)})


def add_counts(line: str) -> None:
    """Add a worker's reported counts to this process's (a line that is not one is ignored:
    nothing a worker writes may stop its supervisor)."""
    try:
        grown = json.loads(line)
        for key, value in grown.items():
            what, service, which = key.split("/")
            if what == "deliveries":
                metrics.DELIVERIES.labels(service, which).inc(float(value))
            elif what == "send_seconds":
                child = metrics.SEND_LATENCY.labels(service)
                if which == "sum":
                    child.total += float(value)
                else:
                    child.counts[int(which)] += int(value)
    except (ValueError, AttributeError, TypeError, IndexError):
        log.warning("worker_line_ignored", line=line[:200])


class Reporter:
    """In a worker process: says it is ready, then writes its grown delivery counts on stdout
    for the supervisor, every REPORT_S and once more at the end."""

    def __init__(self) -> None:
        self._sent: dict[str, float] = {}

    def ready(self) -> None:
        """Tell the supervisor this worker sends."""
        self._write(READY)

    async def run(self) -> None:
        """Report every REPORT_S until cancelled."""
        while True:
            await asyncio.sleep(REPORT_S)
            self.flush()

    def flush(self) -> None:
        """Report the counts that grew since the last report."""
        now = counts()
        if now != self._sent:
            self._write(counts_line(now, self._sent))
            self._sent = now

    @staticmethod
    def _write(text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # the supervisor went away
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def watch_parent(stop: asyncio.Event) -> None:
    """In a worker process: stop (as on SIGTERM) when stdin ends, that is when the supervisor
    is gone, even killed without a chance to stop its workers."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            if not stop.is_set():
                log.warning("worker_orphaned", effect="stopping: the supervisor is gone")
            stop.set()

    loop.add_reader(fd, readable)
