"""The HTTP application: health, readiness and metrics, and every API route."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from alertd import db, logs, metrics
from alertd.api import (
    auditing,
    connections,
    console,
    mobile,
    openapi,
    plumbing,
    sheets,
    staff_approvals,
    staff_feeds,
    staff_orders,
    staff_shelters,
    staff_tips,
    throttle,
)
from alertd.context import Context
from alertd.delivery import outbox

health = web.RouteTableDef()


@health.get("/healthz")
async def _healthz(_request: web.Request) -> web.Response:
    return plumbing.json_response({"status": "ok"})


# Readiness checks still running after /readyz answered (a hung database): kept referenced
# until they end, which the pool's own bounds guarantee.
_LATE_CHECKS: set[asyncio.Task[list[str]]] = set()


@health.get("/readyz")
async def _readyz(request: web.Request) -> web.Response:
    c = plumbing.ctx(request)
    wait_s = c.cfg.database.ready_timeout_s
    # A task, not a timeout around the await: cancelling a statement waits for the database
    # to take the cancellation, and /readyz must answer on time even when it never does.
    check = asyncio.ensure_future(db.pending_migrations(c.pool))
    done, _ = await asyncio.wait({check}, timeout=wait_s)
    if not done:
        _LATE_CHECKS.add(check)
        check.add_done_callback(_forget_check)
        return plumbing.problem(503, f"database did not answer within {wait_s:g} s")
    try:
        pending = check.result()
    except Exception as exc:
        return plumbing.problem(503, f"database unreachable: {logs.describe(exc)}")
    if pending:
        return plumbing.problem(503, f"migrations not applied: {', '.join(pending)}")
    if not c.points.ready.is_set():
        return plumbing.problem(503, "point index still loading")
    return plumbing.json_response({"status": "ready", "points": len(c.points.index)})


def _forget_check(check: asyncio.Task[list[str]]) -> None:
    _LATE_CHECKS.discard(check)
    if not check.cancelled():
        check.exception()  # retrieved: a late failure is no news


@health.get("/metrics")
async def _metrics(request: web.Request) -> web.Response:
    c = plumbing.ctx(request)
    with contextlib.suppress(Exception):
        depth = await outbox.depth(c.pool)
        for service in ("apns", "fcm"):
            metrics.OUTBOX_DEPTH.labels(service).set(depth.get(service, 0))
    metrics.INDEX_POINTS.set(len(c.points.index))
    return web.Response(body=metrics.render(), content_type="text/plain")


def build_app(context: Context, clock: throttle.Clock = time.monotonic) -> web.Application:
    """The aiohttp application with every route (`clock` drives the rate limits)."""
    app = web.Application(middlewares=[plumbing.error_middleware, throttle.rate_limits,
                                       connections.body_deadline, plumbing.args_middleware],
                          client_max_size=context.cfg.http.max_body_bytes,
                          handler_args=plumbing.HANDLER_ARGS)
    app[plumbing.CONTEXT] = context
    app[throttle.THROTTLE] = throttle.Throttle(context.cfg, clock)
    plumbing.add_routes(app, health, mobile.routes, sheets.routes, staff_orders.routes,
                        staff_approvals.routes, staff_feeds.routes, staff_shelters.routes,
                        staff_tips.routes, auditing.routes, console.routes, openapi.routes)
    return app
