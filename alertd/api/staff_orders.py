"""The staff API: preview, issue, amend, lift and inspect evacuation orders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from alertd import (
    approvals,
    devices,
    errors,
    idempotency,
    metrics,
    orders,
    pipeline,
    points,
    progress,
)
from alertd.api import auditing, plumbing, staff_approvals

routes = web.RouteTableDef()


_order_id = staff_approvals.order_id


@routes.post("/v1/staff/orders:preview")
async def preview(request: web.Request) -> web.Response:
    """How many devices an order would reach, by municipality; nothing is sent."""
    await plumbing.staff_member(request, "viewer")
    c = plumbing.ctx(request)
    raw = await plumbing.json_body(request)
    spec, parts = await c.compute.run(orders.preview_job, c.table,
                                      (raw, c.cfg.orders, datetime.now(UTC)),
                                      inline=orders.small(raw, c.cfg.compute), what="the area")
    await points.catch_up(c.points)
    match = c.points.match(spec.area.geometry, spec.area.area_codes)
    count = await devices.count_reachable(c.pool, match.seqs.tolist())
    floor = c.cfg.orders.preview_min_count
    by_area = {code: orders.coarse(n, floor) for code, n in c.points.by_area(parts).items()}
    return plumbing.json_response({"devices": orders.coarse(count, floor), "by_area": by_area})


@routes.post("/v1/staff/orders")
@auditing.audited("order.issue")
async def create(request: web.Request) -> web.Response:
    """Issue an order (201), or hold it for a second operator's approval (202, nothing
    sent: see alertd.approvals); with Idempotency-Key, a retried request gets the first
    answer."""
    who = await plumbing.staff_member(request, "operator")
    c = plumbing.ctx(request)
    raw = await plumbing.json_body(request)
    spec = await c.compute.run(orders.spec_job, c.table, (raw, c.cfg.orders, datetime.now(UTC)),
                               inline=orders.small(raw, c.cfg.compute), what="the area")
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    await points.catch_up(c.points)  # before taking a connection: none is held while waiting
    reach = await staff_approvals.held(c, spec)
    async with c.pool.acquire() as conn, conn.transaction():
        if key is not None:
            first = await idempotency.claim(conn, who.id, key, raw)
            if first is not None:  # the first answer again, its Location too
                return plumbing.json_response(first.body, status=first.status, headers={
                    "Idempotent-Replayed": "true", "Location": _location(first.body["id"])})
        if reach is not None:
            answer = await staff_approvals.hold(conn, request, who, "issue", uuid.uuid4(), raw,
                                                spec, reach)
            status = 202
        else:
            accepted = await pipeline.accept(conn, c.points, spec, created_by=who.id,
                                             chunk=c.cfg.orders.fanout_chunk)
            answer = {"id": str(accepted.order_id), "version": accepted.version,
                      "devices": accepted.devices}
            status = 201
            await auditing.record(conn, request, who, "order.issue", target=answer["id"],
                                  status=201, after=orders.audit_view(
                                      spec, version=1, state="active", devices=accepted.devices))
        if key is not None:
            await idempotency.record(conn, who.id, key, idempotency.Answer(status, answer))
    metrics.ORDERS.labels("issued" if status == 201 else "held").inc()
    return plumbing.json_response(answer, status=status,
                                  headers={"Location": _location(answer["id"])})


def _location(order_id: str) -> str:
    return f"/v1/staff/orders/{order_id}"


LIST_STATES = ("active", "lifted", "expired", "all", approvals.PENDING)


@routes.get("/v1/staff/orders")
async def list_orders(request: web.Request) -> web.Response:
    """Orders, newest first, each with its delivery counts as a whole (matched, sent, pending,
    failed, invalid_token). `?state=active` (the default), `lifted`, `expired` or `all`;
    `pending_approval`: the orders and changes waiting for a second operator, with the
    numbers their preview showed and who asked."""
    await plumbing.staff_member(request, "viewer")
    c = plumbing.ctx(request)
    state = request.query.get("state", "active")
    if state not in LIST_STATES:
        raise errors.InvalidInput(f"state must be one of {', '.join(LIST_STATES)}")
    if state == approvals.PENDING:
        now = datetime.now(UTC)
        waiting = await approvals.listing(c.pool)
        return plumbing.json_response({"orders": [
            w.as_json(c.cfg.orders.preview_min_count, now) for w in waiting]})
    found = await pipeline.summaries(c.pool, state=None if state == "all" else state)
    return plumbing.json_response({"orders": [o.as_json() for o in found]})


@routes.get("/v1/staff/orders/{order_id}")
async def get_order(request: web.Request) -> web.Response:
    """The order with its delivery counts: as a whole (devices, at the top level and in
    `deliveries`) and per version (`versions`), the devices its streamed fan-out has still to
    queue (`queuing`: not counted as pending yet), and its change waiting for approval
    (`pending_change`) if any. An order held for approval (or rejected) before it was ever
    issued answers as the held request (`state` `pending_approval` or `rejected`)."""
    await plumbing.staff_member(request, "viewer")
    c = plumbing.ctx(request)
    order_id = _order_id(request)
    now = datetime.now(UTC)
    floor = c.cfg.orders.preview_min_count
    try:
        order = await pipeline.load(c.pool, order_id, c.table, c.cfg.orders)
    except errors.NotFound:
        held = await approvals.latest(c.pool, order_id)
        if held is None or held.kind != "issue":
            raise
        return plumbing.json_response(held.as_json(floor, now))
    counts = await progress.of_order(c.pool, order.id)
    out = orders.as_json(order, counts.as_json())
    out["versions"] = [v.as_json() for v in await progress.of_versions(c.pool, order.id)]
    out["expired"] = order.spec.expires_at <= now
    out["queuing"] = await pipeline.queuing(c.pool, order.id)
    waiting = await approvals.pending(c.pool, order.id)
    if waiting is not None:
        out["pending_change"] = waiting.as_json(floor, now)
    return plumbing.json_response(out)


@routes.patch("/v1/staff/orders/{order_id}")
@auditing.audited("order.amend", "order_id")
async def amend(request: web.Request) -> web.Response:
    """A new version of the order (level, area, text or expiry); the answer says whom it
    notified (`notified`: pushes queued by kind; all 0 when, say, only a typo was fixed).
    A raise to a held level, or a widening beyond the held number of devices, answers 202
    and waits for a second operator (the order stays as it is meanwhile)."""
    who = await plumbing.staff_member(request, "operator")
    c = plumbing.ctx(request)
    order_id = _order_id(request)
    raw = await plumbing.json_body(request)
    order = await pipeline.load(c.pool, order_id, c.table, c.cfg.orders)
    # No connection is held while the area is parsed; amend refuses if the order changed.
    spec = await c.compute.run(orders.patch_job, c.table,
                               (raw, order.spec, c.cfg.orders, datetime.now(UTC)),
                               inline=orders.small(raw, c.cfg.compute), what="the area")
    await points.catch_up(c.points)  # before taking a connection: none is held while waiting
    reach = await staff_approvals.held(c, spec, order.spec)
    if reach is not None:
        pipeline.ensure_active(order)
        async with c.pool.acquire() as conn, conn.transaction():
            answer = await staff_approvals.hold(conn, request, who, "amend", order.id, raw,
                                                spec, reach, order)
        metrics.ORDERS.labels("held").inc()
        return plumbing.json_response(answer, status=202)
    async with c.pool.acquire() as conn, conn.transaction():
        accepted = await pipeline.amend(conn, c.points, order, spec)
        await auditing.record(
            conn, request, who, "order.amend", target=str(order.id),
            before=orders.audit_view(order.spec, version=order.version, state=order.state),
            after=orders.audit_view(spec, version=accepted.version, state=order.state,
                                    devices=accepted.devices))
    metrics.ORDERS.labels("amended").inc()
    return plumbing.json_response(staff_approvals.amended(accepted))


@routes.post("/v1/staff/orders/{order_id}/lift")
@auditing.audited("order.lift", "order_id")
async def lift(request: web.Request) -> web.Response:
    """Lift (解除) the order: every device that holds it is told, nobody else; a change of
    it waiting for approval is rejected."""
    who = await plumbing.staff_member(request, "operator")
    c = plumbing.ctx(request)
    async with c.pool.acquire() as conn, conn.transaction():
        order = await pipeline.load(conn, _order_id(request), c.table, c.cfg.orders)
        devices = await pipeline.lift(conn, order)
        # A change waiting for approval has nothing left to change: it is rejected with it.
        waiting = await approvals.pending(conn, order.id, lock=True)
        if waiting is not None:
            await approvals.decide(conn, waiting, "rejected", who, "the order was lifted")
        await auditing.record(
            conn, request, who, "order.lift", target=str(order.id),
            before=orders.audit_view(order.spec, version=order.version, state=order.state),
            after={"version": order.version, "state": "lifted", "devices": devices,
                   "rejected_change": waiting is not None})
    metrics.ORDERS.labels("lifted").inc()
    notified = progress.Notified(order_lifted=devices)
    return plumbing.json_response({"id": str(order.id), "state": "lifted", "devices": devices,
                                   "notified": notified.as_json()})
