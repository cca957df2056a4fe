"""Staff routes for the weekly tips: the catalogue, a device's next tip, a test send."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from alertd import errors, tips, validate
from alertd.api import auditing, plumbing

routes = web.RouteTableDef()


def _device_id(value: object, key: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise errors.InvalidInput(f"{key} must be a device id (a UUID)")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise errors.InvalidInput(f"{key} must be a device id (a UUID)") from exc


@routes.get("/v1/staff/tips")
async def list_tips(request: web.Request) -> web.Response:
    """The tips catalogue, in catalogue order."""
    await plumbing.staff_member(request, "viewer")
    cat = tips.catalogue(plumbing.ctx(request).cfg)
    return plumbing.json_response({"tips": [t.as_json() for t in cat.tips]})


@routes.get("/v1/staff/tips/next")
async def next_tip(request: web.Request) -> web.Response:
    """The tip a device would get next (or why none); nothing is recorded."""
    await plumbing.staff_member(request, "viewer")
    device_id = _device_id(request.query.get("device_id"), "device_id")
    c = plumbing.ctx(request)
    found = await tips.preview(c.pool, c.cfg, device_id, datetime.now(UTC))
    return plumbing.json_response(found.as_json(tips.catalogue(c.cfg)))


@routes.post("/v1/staff/tips/send")
@auditing.audited("tip.send")
async def send_tip(request: web.Request) -> web.Response:
    """Queue one tip push to one device now (its quiet hours still apply)."""
    who = await plumbing.staff_member(request, "admin")
    body = validate.obj(await plumbing.json_body(request))
    validate.only(body, {"device_id", "tip_id"})
    device_id = _device_id(body.get("device_id"), "device_id")
    tip_id = body.get("tip_id")
    if tip_id is not None and not isinstance(tip_id, str):
        raise errors.InvalidInput("tip_id must be a tip's id")
    c = plumbing.ctx(request)
    sent = await tips.send_one(c.pool, c.cfg, device_id, tip_id, datetime.now(UTC))
    answer = sent.as_json()
    await auditing.record(c.pool, request, who, "tip.send", target=str(device_id), status=202,
                          after=answer)
    return plumbing.json_response(answer, status=202)
