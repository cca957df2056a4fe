"""The HTTP application: health, readiness and metrics, and every API route."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from alertd import db, metrics
from alertd.api import connections, mobile, plumbing, staff_feeds, staff_orders, throttle
from alertd.context import Context
from alertd.delivery import outbox

health = web.RouteTableDef()


@health.get("/healthz")
async def _healthz(_request: web.Request) -> web.Response:
    return plumbing.json_response({"status": "ok"})


@health.get("/readyz")
async def _readyz(request: web.Request) -> web.Response:
    c = plumbing.ctx(request)
    try:
        async with asyncio.timeout(2):
            pending = await db.pending_migrations(c.pool)
    except Exception as exc:
        return plumbing.problem(503, f"database unreachable: {type(exc).__name__}")
    if pending:
        return plumbing.problem(503, f"migrations not applied: {', '.join(pending)}")
    if not c.points.ready.is_set():
        return plumbing.problem(503, "point index still loading")
    return plumbing.json_response({"status": "ready", "points": len(c.points.index)})


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
    plumbing.add_routes(app, health, mobile.routes, staff_orders.routes, staff_feeds.routes)
    return app
