"""Staff routes of four-eyes: approve or reject an order (or a change of one) held for a
second operator (alertd.approvals)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import shapely
from aiohttp import web

from alertd import approvals, devices, errors, metrics, orders, pipeline, points, staff, validate
from alertd.api import auditing, plumbing
from alertd.context import Context

routes = web.RouteTableDef()


def order_id(request: web.Request) -> uuid.UUID:
    """The order id of the path (404 when it is not a UUID)."""
    try:
        return uuid.UUID(request.match_info["order_id"])
    except ValueError as exc:
        raise errors.NotFound("no such order") from exc


@dataclass(frozen=True, slots=True)
class Reach:
    """What an order (version) would reach, and why that is held for approval."""

    devices: int
    by_area: dict[str, int]
    reasons: list[str]


async def _count(c: Context, spec: orders.OrderSpec) -> int:
    match = c.points.match(spec.area.geometry, spec.area.area_codes)
    return await devices.count_reachable(c.pool, match.seqs.tolist())


async def held(c: Context, spec: orders.OrderSpec,
               before: orders.OrderSpec | None = None) -> Reach | None:
    """The reach of an order (or of a change of one, given the version `before` it) when it
    must wait for a second operator; None when it may go at once. The caller caught up with
    the point index."""
    cfg = c.cfg.orders
    by_level = approvals.hold_reasons(cfg, spec.level, 0, before_level=(
        before.level if before else None))
    if not by_level and cfg.approval_over_devices == 0:
        return None
    count = await _count(c, spec)
    before_count = None
    if before is not None and count > cfg.approval_over_devices > 0:
        before_count = await _count(c, before)
    reasons = approvals.hold_reasons(cfg, spec.level, count, before_level=(
        before.level if before else None), before_devices=before_count)
    if not reasons:
        return None
    parts = await c.compute.run(orders.split_job, c.table,
                                (spec.area.geometry, spec.area.area_codes),
                                inline=spec.area.kind == "codes" or shapely.get_num_coordinates(
                                    spec.area.geometry) <= c.cfg.compute.inline_max_positions,
                                what="the area")
    return Reach(count, c.points.by_area(parts), reasons)


async def hold(conn: asyncpg.Connection, request: web.Request, who: staff.Staff, kind: str,
               held_id: uuid.UUID, raw: Any, spec: orders.OrderSpec, reach: Reach,
               order: orders.Order | None = None) -> dict[str, Any]:
    """Keep the request for approval, and its audit entry, in the caller's transaction; the
    202 answer."""
    kept = await approvals.hold(conn, held_id, kind, raw, order.version if order else None,
                                who, spec, reach.devices, reach.by_area, reach.reasons)
    action = "order.issue" if kind == "issue" else "order.amend"
    before = orders.audit_view(order.spec, version=order.version, state=order.state) \
        if order else None
    await auditing.record(conn, request, who, action, target=str(held_id), status=202,
                          before=before, after={**orders.audit_view(spec),
                                                **kept.audit_view()})
    floor = plumbing.ctx(request).cfg.orders.preview_min_count
    return {"id": str(held_id), "state": approvals.PENDING,
            **({"version": order.version} if order else {}),
            **kept.preview(floor), "reasons": reach.reasons}


@routes.post("/v1/staff/orders/{order_id}/approve")
@auditing.audited("order.approve", "order_id")
async def approve(request: web.Request) -> web.Response:
    """Apply a held order or change, as a second operator: 200 with the answer the request
    would have had (validated again now: 422 when it no longer holds, nothing sent)."""
    who = await plumbing.staff_member(request, "operator")
    c = plumbing.ctx(request)
    held = await approvals.waiting(c.pool, order_id(request))
    if held.requested_by == who.id:
        raise errors.Forbidden("four-eyes: the staff token that asked for it cannot approve it; "
                               "another operator must")
    if held.kind == "issue":
        return await _approve_issue(request, c, who, held)
    return await _approve_amend(request, c, who, held)


async def _approve_issue(request: web.Request, c: Context, who: staff.Staff,
                         held: approvals.Request) -> web.Response:
    spec = await c.compute.run(orders.spec_job, c.table, (held.body, c.cfg.orders,
                                                          datetime.now(UTC)),
                               inline=orders.small(held.body, c.cfg.compute), what="the area")
    await points.catch_up(c.points)  # before taking a connection: none is held while waiting
    async with c.pool.acquire() as conn, conn.transaction():
        decided = await approvals.decide(conn, held, "approved", who)
        accepted = await pipeline.accept(conn, c.points, spec, created_by=held.requested_by,
                                         order_id=held.order_id,
                                         chunk=c.cfg.orders.fanout_chunk)
        await auditing.record(conn, request, who, "order.approve", target=str(held.order_id),
                              before=held.audit_view(), after={
                                  **decided.audit_view(), **orders.audit_view(
                                      spec, version=1, state="active"),
                                  "devices": accepted.devices})
    metrics.ORDERS.labels("issued").inc()
    return plumbing.json_response({"id": str(accepted.order_id), "version": accepted.version,
                                   "devices": accepted.devices})


async def _approve_amend(request: web.Request, c: Context, who: staff.Staff,
                         held: approvals.Request) -> web.Response:
    order = await pipeline.load(c.pool, held.order_id, c.table, c.cfg.orders)
    spec = await c.compute.run(orders.patch_job, c.table,
                               (held.body, order.spec, c.cfg.orders, datetime.now(UTC)),
                               inline=orders.small(held.body, c.cfg.compute), what="the area")
    await points.catch_up(c.points)
    async with c.pool.acquire() as conn, conn.transaction():
        decided = await approvals.decide(conn, held, "approved", who)
        accepted = await pipeline.amend(conn, c.points, order, spec)
        await auditing.record(
            conn, request, who, "order.approve", target=str(order.id),
            before={**held.audit_view(), **orders.audit_view(
                order.spec, version=order.version, state=order.state)},
            after={**decided.audit_view(), **orders.audit_view(
                spec, version=accepted.version, state=order.state),
                "devices": accepted.devices})
    metrics.ORDERS.labels("amended").inc()
    return plumbing.json_response(amended(accepted))


def amended(accepted: pipeline.Accepted) -> dict[str, Any]:
    """The answer of an applied change (PATCH, or its approval)."""
    return {"id": str(accepted.order_id), "version": accepted.version,
            "devices": accepted.devices, "notified": accepted.notified.as_json()}


@routes.post("/v1/staff/orders/{order_id}/reject")
@auditing.audited("order.reject", "order_id")
async def reject(request: web.Request) -> web.Response:
    """Discard a held order or change (any operator; the one who asked withdraws it so):
    nothing is sent. An optional body `{"reason"}` is kept."""
    who = await plumbing.staff_member(request, "operator")
    reason = await _reason(request)
    c = plumbing.ctx(request)
    async with c.pool.acquire() as conn, conn.transaction():
        held = await approvals.waiting(conn, order_id(request), lock=True)
        decided = await approvals.decide(conn, held, "rejected", who, reason)
        await auditing.record(conn, request, who, "order.reject", target=str(held.order_id),
                              before=held.audit_view(), after={
                                  **decided.audit_view(), "reason": reason,
                                  "withdrawn": held.requested_by == who.id})
    return plumbing.json_response({"id": str(held.order_id), "state": "rejected"})


async def _reason(request: web.Request) -> str | None:
    body = validate.obj(await plumbing.json_body(request, optional=True) or {})
    validate.only(body, {"reason"})
    reason = body.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > approvals.MAX_REASON:
        raise errors.InvalidInput(f"reason must be a text of at most {approvals.MAX_REASON} "
                                  "characters")
    return reason.strip() or None
