"""The mobile API: device registration, settings, location, watched places, alert inbox,
warnings where the device is, and shelters nearby."""

from __future__ import annotations

import re
from datetime import time
from typing import Any

from aiohttp import web

from alertd import devices, errors, inbox, shelters, validate
from alertd.api import plumbing, throttle
from alertd.ingest import jma_states
from alertd.orders import HAZARDS

MAX_TOKEN = 4096
TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
routes = web.RouteTableDef()


def _token(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TOKEN:
        raise errors.InvalidInput(f"push_token must be a string of 1 to {MAX_TOKEN} characters")
    if not TOKEN_RE.match(value):
        raise errors.InvalidInput("push_token must be printable ASCII without spaces")
    return value


@routes.post("/v1/devices")
async def register(request: web.Request) -> web.Response:
    """Register a phone; the secret is returned once and stored only hashed."""
    body = validate.obj(await plumbing.json_body(request))
    validate.only(body, {"platform", "push_token", "locale"})
    platform = body.get("platform")
    if platform not in ("ios", "android"):
        raise errors.InvalidInput("platform must be ios or android")
    token = _token(body.get("push_token"))
    locale = validate.locale(body.get("locale", "ja"))
    device_id, secret = await devices.register(plumbing.ctx(request).pool, platform, token, locale)
    return plumbing.json_response({"device_id": str(device_id), "device_secret": secret},
                                  status=201)


def _clock(value: str) -> time:
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


@routes.patch("/v1/me")
async def update_me(request: web.Request) -> web.Response:
    """Change push token, locale, tips, quiet hours or the time zone they are in."""
    dev = await plumbing.device(request)
    body = validate.obj(await plumbing.json_body(request))
    validate.only(body, {"push_token", "locale", "tips", "quiet_hours", "drill", "time_zone"})
    changes: dict[str, Any] = {}
    if "push_token" in body:
        changes["push_token"] = _token(body["push_token"])
    if "locale" in body:
        changes["locale"] = validate.locale(body["locale"])
    for flag in ("tips", "drill"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise errors.InvalidInput(f"{flag} must be true or false")
            changes[flag] = body[flag]
    if "quiet_hours" in body:
        quiet = body["quiet_hours"]
        if quiet is None:
            changes["quiet_start"] = changes["quiet_end"] = None
        else:
            quiet = validate.obj(quiet, "quiet_hours")
            validate.only(quiet, {"start", "end"}, "quiet_hours")
            changes["quiet_start"] = _clock(validate.clock(quiet.get("start"), "quiet_hours.start"))
            changes["quiet_end"] = _clock(validate.clock(quiet.get("end"), "quiet_hours.end"))
            if changes["quiet_start"] == changes["quiet_end"]:
                raise errors.InvalidInput("quiet_hours.start and quiet_hours.end must differ")
    if "time_zone" in body:  # null: the service's default (scheduler.timezone)
        zone = body["time_zone"]
        changes["time_zone"] = None if zone is None else validate.time_zone(zone)
    await devices.update(plumbing.ctx(request).pool, dev.id, changes)
    fresh = await devices.get(plumbing.ctx(request).pool, dev.id)
    assert fresh is not None
    return plumbing.json_response(_me(fresh))


def _me(dev: devices.Device) -> dict[str, Any]:
    quiet = None
    if dev.quiet_start is not None and dev.quiet_end is not None:
        quiet = {"start": dev.quiet_start.strftime("%H:%M"),
                 "end": dev.quiet_end.strftime("%H:%M")}
    return {"device_id": str(dev.id), "platform": dev.platform, "locale": dev.locale,
            "tips": dev.tips, "quiet_hours": quiet, "time_zone": dev.time_zone,
            "drill": dev.drill,
            "push_enabled": dev.token_state == "active"}


@routes.get("/v1/me")
async def get_me(request: web.Request) -> web.Response:
    """The device's own settings and places."""
    dev = await plumbing.device(request)
    out = _me(dev)
    out["places"] = [p.as_json() for p in await devices.places(plumbing.ctx(request).pool, dev)]
    return plumbing.json_response(out)


@routes.delete("/v1/me")
async def delete_me(request: web.Request) -> web.Response:
    """Erase the device and everything about it."""
    dev = await plumbing.device(request)
    await devices.delete(plumbing.ctx(request).pool, dev.id)
    return web.Response(status=204)


@routes.put("/v1/me/location")
async def put_location(request: web.Request) -> web.Response:
    """Share the current location (matchable within a second)."""
    dev = await plumbing.device(request)
    body = validate.obj(await plumbing.json_body(request))
    validate.only(body, {"lat", "lon", "accuracy_m"})
    lat, lon = validate.lat_lon(body)
    accuracy = None
    if body.get("accuracy_m") is not None:
        accuracy = validate.number(body, "accuracy_m", 0, 100_000)
    await devices.set_location(plumbing.ctx(request).pool, dev, lat, lon, accuracy)
    return web.Response(status=204)


@routes.delete("/v1/me/location")
async def delete_location(request: web.Request) -> web.Response:
    """Stop sharing the location; the stored one is erased."""
    dev = await plumbing.device(request)
    await devices.clear_location(plumbing.ctx(request).pool, dev)
    return web.Response(status=204)


@routes.put("/v1/me/places/{place_id}")
async def put_place(request: web.Request) -> web.Response:
    """Watch a point or a municipality (at most three places)."""
    dev = await plumbing.device(request)
    place_id = validate.ident(request.match_info["place_id"], "place_id")
    body = validate.obj(await plumbing.json_body(request))
    validate.only(body, {"label", "lat", "lon", "area_code"})
    label = validate.text(body, "label", max_len=100)
    assert label is not None
    if "area_code" in body:
        if "lat" in body or "lon" in body:
            raise errors.InvalidInput("give either lat/lon or area_code, not both")
        code = body["area_code"]
        table = plumbing.ctx(request).table
        if not isinstance(code, str) or not table.is_known(code):
            raise errors.InvalidInput(f"area_code {code!r} is not a known municipality code")
        place = devices.Place(place_id, label, None, None, code)
    else:
        lat, lon = validate.lat_lon(body)
        place = devices.Place(place_id, label, lat, lon, None)
    await devices.put_place(plumbing.ctx(request).pool, dev, place)
    return plumbing.json_response(place.as_json())  # the contract: 200, created or replaced


@routes.delete("/v1/me/places/{place_id}")
async def delete_place(request: web.Request) -> web.Response:
    """Stop watching a place."""
    dev = await plumbing.device(request)
    place_id = validate.ident(request.match_info["place_id"], "place_id")
    if not await devices.delete_place(plumbing.ctx(request).pool, dev, place_id):
        raise errors.NotFound("no such place")
    return web.Response(status=204)


@routes.get("/v1/me/alerts")
async def alerts(request: web.Request) -> web.Response:
    """The device's inbox: alerts sent to it, newest first."""
    dev = await plumbing.device(request)
    found = await inbox.entries(plumbing.ctx(request).pool, dev.id)
    return plumbing.json_response({"alerts": [e.as_json() for e in found]})


@routes.put("/v1/me/alerts/{entry_id}/read")
async def read_alert(request: web.Request) -> web.Response:
    """Mark an inbox entry read (sync then reports it once more, read)."""
    dev = await plumbing.device(request)
    raw = request.match_info["entry_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise errors.NotFound("no such inbox entry")
    if not await inbox.mark_read(plumbing.ctx(request).pool, dev.id, int(raw)):
        raise errors.NotFound("no such inbox entry")
    return web.Response(status=204)


@routes.get("/v1/me/warnings")
async def my_warnings(request: web.Request) -> web.Response:
    """JMA warnings in force where the device is or watches ("警戒レベル3相当 in your area")."""
    dev = await plumbing.device(request)
    c = plumbing.ctx(request)
    codes: set[str] = set()
    for w in await devices.watched(c.pool, dev):
        if w.area_code:
            codes.add(w.area_code[:5])
        elif w.lon is not None and w.lat is not None:
            codes.update(code[:5] for code in c.table.containing(w.lon, w.lat))
    warnings = await jma_states.in_municipalities(c.pool, codes)
    return plumbing.json_response({"warnings": [w.as_json() for w in warnings]})


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
    flag = q.get("open", "false")
    if flag not in ("true", "false"):
        raise errors.InvalidInput("open must be true or false")
    open_only = flag == "true"
    limit = plumbing.int_arg(request, "limit", 20, 1, 200)
    async with throttle.searching(request):
        found = await shelters.nearest(plumbing.ctx(request).pool, lat, lon, hazard, open_only,
                                       limit)
    return plumbing.json_response({"shelters": [
        {**s.as_json(), "distance_m": round(d, 1)} for s, d in found]})
