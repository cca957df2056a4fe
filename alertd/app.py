"""The daemon: runs the roles (api, worker, feeds) until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from alertd import (
    db,
    errors,
    fanout,
    housekeeping,
    logs,
    points,
    render,
    scheduler,
    settings,
    supervisor,
    tips,
)
from alertd.api import connections, routes
from alertd.compute import Compute
from alertd.context import Context
from alertd.delivery import services
from alertd.delivery.dispatcher import Dispatcher, Sender
from alertd.ingest import cap_trust
from geo import municipalities

log = structlog.get_logger(__name__)

ROLES = ("api", "worker", "feeds", "scheduler")


def areas_path(cfg: settings.Settings) -> Path:
    """The municipal areas file: configured, else the one shipped in the package."""
    if cfg.geo.areas_file:
        return Path(cfg.geo.areas_file)
    return settings.defaults_path().parent / "areas" / "fukushima_areas.geojson"


def parse_roles(text: str) -> tuple[str, ...]:
    """Roles from a comma list, checked."""
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise SystemExit(f"--role must be a comma list of {', '.join(ROLES)}; got {text!r}")
    return roles


def _sender(cfg: settings.Settings, service: str) -> tuple[Sender, int]:
    if service == "apns":
        from alertd.delivery.apns import ApnsSender

        return ApnsSender(cfg.apns), cfg.apns.concurrency
    from alertd.delivery.fcm import FcmSender

    return FcmSender(cfg.fcm), cfg.fcm.concurrency


async def _weekly_tips(ctx: scheduler.JobContext) -> dict[str, int]:
    return {"tips_queued": await tips.send_weekly(ctx.pool, ctx.cfg, ctx.now)}


def scheduled_jobs(cfg: settings.Settings) -> list[scheduler.Job]:
    """The jobs of the scheduler role (and of `alertd jobs`), with their configured schedules."""
    from alertd.ingest import cap_intake

    hk = cfg.housekeeping
    every = scheduler.Every
    return [
        scheduler.Job("weekly_tips",
                      scheduler.weekly(cfg.scheduler, cfg.scheduler.tips_day,
                                       cfg.scheduler.tips_time),
                      "each device with tips on gets this week's tip (once a week, whoever "
                      "runs it)", _weekly_tips),
        scheduler.Job("expire_orders", every(hk.expire_orders_every_s),
                      "orders past their expiry become expired; their unsent pushes are "
                      "cancelled", housekeeping.expire_orders),
        scheduler.Job("expire_cap_waiting", every(hk.cap_waiting_every_s),
                      "CAP messages kept waiting too long for their reference are quarantined",
                      cap_intake.expire_waiting_job),
        scheduler.Job("drop_stale_locations", every(hk.locations_every_s),
                      "current locations not refreshed in time are dropped",
                      housekeeping.drop_stale_locations),
        scheduler.Job("erase_idle_devices", every(hk.devices_every_s),
                      "devices unseen for too long are erased with all they own",
                      housekeeping.erase_idle_devices),
        scheduler.Job("purge", every(hk.purge_every_s),
                      "finished deliveries, idempotency keys and quarantined items past their "
                      "retention are deleted", housekeeping.purge),
    ]


async def start_senders(cfg: settings.Settings, quiet: bool = False,
                        ) -> dict[str, tuple[Sender, int]]:
    """Start the push services that are configured and log once, with why, each one that is
    off (unless `quiet`: a worker process, whose supervisor said it). An enabled service that
    is configured only in part stops the start with one error naming every problem of every
    service (missing settings, unreadable credentials)."""
    chosen = services.plan(cfg)
    for service, why in chosen.off if not quiet else ():
        log.warning("push_service_off", service=service, reason=why,
                    effect=f"{service} deliveries wait in the outbox for a node that sends them")
    problems = list(chosen.missing)
    started: dict[str, tuple[Sender, int]] = {}
    for service in chosen.on:
        sender, concurrency = _sender(cfg, service)
        try:
            await sender.start()
        except errors.ConfigError as exc:
            problems.append(exc.reason)
            await sender.close()
            continue
        started[service] = (sender, concurrency)
    if problems:
        for sender, _ in started.values():
            await sender.close()
        raise errors.ConfigError(services.problems_text(problems))
    return started


async def _listen(runner: web.AppRunner, http: settings.Http) -> None:
    try:
        await connections.GuardedSite(runner, http).start()
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else logs.describe(exc)
        raise errors.CannotListen(
            f"cannot listen on {http.host}:{http.port}: {why}; choose another "
            "port with http.port in a --config file or ALERTD_HTTP_PORT") from exc


@dataclass(frozen=True, slots=True)
class Processes:
    """How the worker role runs: `workers` dispatcher processes (1: in this process), and,
    in such a worker process, its index under the supervisor."""

    workers: int = 1
    config_files: tuple[str, ...] = ()  # passed on to the worker processes
    worker_index: int | None = None  # set in a worker process that a supervisor started


async def _check_senders(cfg: settings.Settings) -> None:
    """Start and close the senders once, so that a push configuration the worker processes
    would refuse stops the daemon's start with the one error (and the off services are logged
    once, here, not by every worker)."""
    for sender, _ in (await start_senders(cfg)).values():
        with contextlib.suppress(Exception):
            await sender.close()


async def serve(cfg: settings.Settings, roles: tuple[str, ...],
                procs: Processes = Processes()) -> None:
    """Run the daemon until SIGTERM/SIGINT (a worker process: also until its supervisor is
    gone), then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reporter: supervisor.Reporter | None = None
    if procs.worker_index is not None:
        structlog.contextvars.bind_contextvars(worker=procs.worker_index)
        supervisor.watch_parent(stop)
        reporter = supervisor.Reporter()
    pool = await db.connect(cfg.database.url, min_size=cfg.database.pool_min,
                            max_size=cfg.database.pool_max, bounds=cfg.database)
    async with pool.acquire() as conn:
        pending = await db.pending_migrations(conn)
    if pending:
        log.warning("migrations_pending", versions=pending, hint="run `alertd migrate`")
    table = municipalities.Table.load(areas_path(cfg))
    if "api" in roles or "feeds" in roles:
        cap_trust.check(cfg)  # an unreadable trust anchor stops the start, not every message
    render.catalogue()  # broken push texts stop the start, not the first order
    tips.catalogue(cfg)  # so does a broken tips catalogue, not the first weekly send
    pts = points.Points(index=points.new_index(cfg), table=table)
    # Requests and feeds run their CPU-heavy steps (area geometry, CAP parsing) in workers.
    heavy = "api" in roles or "feeds" in roles
    jobs = Compute(cfg.compute, areas_path(cfg)) if heavy else Compute.inline()
    context = Context(cfg=cfg, pool=pool, points=pts, table=table, compute=jobs)
    tasks: list[asyncio.Task[Any]] = []
    runner: web.AppRunner | None = None
    dispatcher: Dispatcher | None = None
    workers: supervisor.Supervisor | None = None
    reporting: asyncio.Task[None] | None = None
    outbox_pool: Any = None
    senders: dict[str, tuple[Sender, int]] = {}
    try:
        await jobs.start()
        if "api" in roles or "feeds" in roles:
            tasks.append(asyncio.create_task(points.follow(cfg.database.url, pts, stop)))
            # The processes that accept orders write the rest of their large fan-outs.
            tasks.append(asyncio.create_task(fanout.Runner(context).run(stop)))
        if "feeds" in roles:
            from alertd.ingest import pollers

            tasks.append(asyncio.create_task(pollers.run_all(context, stop)))
        if "api" in roles:
            runner = web.AppRunner(routes.build_app(context), access_log=None)
            await runner.setup()
            await _listen(runner, cfg.http)
        if "worker" in roles and procs.workers > 1:
            await _check_senders(cfg)
            workers = supervisor.Supervisor(procs.config_files, procs.workers,
                                            cfg.dispatch.shutdown_grace_s)
            tasks.append(asyncio.create_task(workers.run(stop)))
        elif "worker" in roles:
            senders = await start_senders(cfg, quiet=reporter is not None)
            # Claims, outcomes and releases leave nothing in the session: a pool of their own
            # skips the reset query on every hand-back.
            outbox_pool = await db.connect(cfg.database.url, min_size=2, max_size=4,
                                           bounds=cfg.database, session_state=False)
            dispatcher = Dispatcher(outbox_pool, cfg, senders)
            tasks.append(asyncio.create_task(dispatcher.run()))
            if reporter is not None:
                reporter.ready()
                reporting = asyncio.create_task(reporter.run())
        if "scheduler" in roles:
            sched = scheduler.Scheduler(pool, cfg, scheduled_jobs(cfg))
            tasks.append(asyncio.create_task(sched.run(stop)))
        log.info("alertd_started", roles=list(roles), port=cfg.http.port if runner else None,
                 worker_processes=workers.count if workers else None)
        await stop.wait()
        log.info("alertd_stopping")
    finally:
        if runner is not None:
            await runner.cleanup()
        if dispatcher is not None:
            dispatcher.stop()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if reporting is not None and reporter is not None:  # the last report, after the last send
            reporting.cancel()
            reporter.flush()
        await jobs.close()
        for sender, _ in senders.values():
            with contextlib.suppress(Exception):
                await sender.close()
        for opened in (outbox_pool, pool) if outbox_pool is not None else (pool,):
            try:
                await opened.close()
            except db.UNAVAILABLE as exc:  # a hung database: its connections are dropped
                log.warning("database_close_failed", error=logs.describe(exc))
        log.info("alertd_stopped")
    if workers is not None and workers.failure is not None:
        raise workers.failure
