"""Feed intake, shelters and warnings: CAP posting, quarantine, feed health, shelter states."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alertd import cap_intake, errors, openings, points, quarantine, shelters, validate
from alertd import web as w
from alertd.orders import HAZARDS

routes = web.RouteTableDef()
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")


@routes.post("/v1/staff/cap")
async def post_cap(request: web.Request) -> web.Response:
    """Accept a CAP 1.1/1.2 document: 202 with what became of it, 400 with the reason."""
    await w.staff_member(request, "operator")
    if request.content_type not in CAP_TYPES:
        raise w.BadRequest(f"Content-Type must be one of {', '.join(CAP_TYPES)}")
    raw = await request.read()
    try:
        result = await cap_intake.ingest(w.ctx(request), raw, "staff-api")
    except cap_intake.Rejected as exc:
        return w.problem(400, exc.reason, quarantine_id=exc.quarantine_id)
    return web.json_response(
        {"order_id": str(result.order_id) if result.order_id else None,
         "id": str(result.order_id) if result.order_id else None,
         "outcome": result.outcome, "detail": result.detail}, status=202)


def _int_arg(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise errors.InvalidInput(f"{key} must be an integer") from exc
    if not lo <= value <= hi:
        raise errors.InvalidInput(f"{key} must be between {lo} and {hi}")
    return value


@routes.get("/v1/staff/quarantine")
async def list_quarantine(request: web.Request) -> web.Response:
    """Rejected feed inputs with their reasons, newest first."""
    await w.staff_member(request, "viewer")
    before = request.query.get("before")
    items = await quarantine.listing(
        w.ctx(request).pool, _int_arg(request, "limit", 50, 1, 500),
        _int_arg(request, "before", 0, 1, 2**62) if before else None,
    )
    return web.json_response({"items": items})


@routes.get("/v1/staff/feeds")
async def list_feeds(request: web.Request) -> web.Response:
    """Health of every polled feed: last success, last error, items seen."""
    await w.staff_member(request, "viewer")
    rows = await w.ctx(request).pool.fetch("SELECT * FROM feed_state ORDER BY name")
    return web.json_response({"feeds": [
        {"name": r["name"], "kind": r["kind"], "url": r["url"],
         "last_success": r["last_success"].isoformat() if r["last_success"] else None,
         "last_error": r["last_error"],
         "last_error_at": r["last_error_at"].isoformat() if r["last_error_at"] else None,
         "failures": r["failures"], "items_seen": r["items_seen"],
         "next_at": r["next_at"].isoformat()}
        for r in rows
    ]})


def _warning_json(r: Any) -> dict[str, Any]:
    return {"area_code": r["area_code"], "area_name": r["area_name"], "kind": r["kind_name"],
            "kind_code": r["kind_code"], "status": r["status"],
            "level_equivalent": r["level_equivalent"], "warning_type": r["warning_type"],
            "report_datetime": r["report_datetime"].isoformat()}


@routes.get("/v1/staff/warnings")
async def list_warnings(request: web.Request) -> web.Response:
    """JMA warnings in force in the prefecture, by area."""
    await w.staff_member(request, "viewer")
    rows = await w.ctx(request).pool.fetch(
        "SELECT * FROM area_warnings ORDER BY area_code, kind_code")
    return web.json_response({"warnings": [_warning_json(r) for r in rows]})


@routes.get("/v1/me/warnings")
async def my_warnings(request: web.Request) -> web.Response:
    """JMA warnings in force where the device is or watches ("警戒レベル3相当 in your area")."""
    dev = await w.device(request)
    c = w.ctx(request)
    rows = await c.pool.fetch(
        "SELECT lon, lat, area_code FROM device_points WHERE device_id = $1", dev.id)
    codes: set[str] = set()
    for r in rows:
        if r["area_code"]:
            codes.add(r["area_code"][:5])
        elif r["lon"] is not None:
            codes.update(code[:5] for code in c.table.containing(r["lon"], r["lat"]))
    warnings = await c.pool.fetch(
        "SELECT * FROM area_warnings WHERE left(area_code, 5) = ANY($1::text[])"
        " ORDER BY level_equivalent DESC NULLS LAST, area_code", sorted(codes))
    return web.json_response({"warnings": [_warning_json(r) for r in warnings]})


@routes.put("/v1/staff/shelters/{shelter_id}/status")
async def put_shelter_status(request: web.Request) -> web.Response:
    """Open, close or mark a shelter full, with crowding and evacuee count."""
    who = await w.staff_member(request, "operator")
    body = validate.obj(await w.json_body(request))
    validate.only(body, {"status", "crowding", "evacuees"})
    status = body.get("status")
    if status not in shelters.STATUSES:
        raise errors.InvalidInput(f"status must be one of {', '.join(shelters.STATUSES)}")
    crowding = body.get("crowding")
    if crowding is not None and crowding not in shelters.CROWDING:
        raise errors.InvalidInput(f"crowding must be one of {', '.join(shelters.CROWDING)}")
    evacuees = body.get("evacuees")
    if evacuees is not None and (isinstance(evacuees, bool) or not isinstance(evacuees, int)
                                 or not 0 <= evacuees <= 1_000_000):
        raise errors.InvalidInput("evacuees must be a whole number from 0")
    c = w.ctx(request)
    await points.catch_up(c.pool, c.points)
    async with c.pool.acquire() as conn:
        change = await openings.apply_status(conn, c.points, c.cfg,
                                             request.match_info["shelter_id"], status, crowding,
                                             evacuees, f"staff:{who.id}")
    return web.json_response({**change.shelter.as_json(), "opened": change.opened})


@routes.get("/v1/shelters")
async def nearest_shelters(request: web.Request) -> web.Response:
    """Shelters nearest first by great-circle distance, filtered by hazard and open state."""
    q = request.query
    try:
        point = {"lat": float(q["lat"]), "lon": float(q["lon"])}
    except (KeyError, ValueError) as exc:
        raise errors.InvalidInput("lat and lon are required numbers") from exc
    lat, lon = validate.lat_lon(point)
    hazard = q.get("hazard")
    if hazard is not None and hazard not in HAZARDS:
        raise errors.InvalidInput(f"hazard must be one of {', '.join(HAZARDS)}")
    open_only = q.get("open", "false").lower() in ("1", "true", "yes")
    found = await shelters.nearest(w.ctx(request).pool, lat, lon, hazard, open_only,
                                   _int_arg(request, "limit", 20, 1, 200))
    return web.json_response({"shelters": [
        {**s.as_json(), "distance_m": round(d, 1)} for s, d in found]})
