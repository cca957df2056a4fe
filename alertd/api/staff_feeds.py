"""Staff routes for feeds: CAP posting, quarantine, feed health, warnings, shelter states."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from alertd import errors, openings, points, shelters, validate
from alertd.api import auditing, plumbing
from alertd.ingest import (
    cap_documents,
    cap_history,
    cap_trust,
    feedstate,
    jma_states,
    quarantine,
)

routes = web.RouteTableDef()
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")


def _shelter_state(s: shelters.StoredShelter) -> dict[str, Any]:
    return {"status": s.status, "crowding": s.crowding, "evacuees": s.evacuees}


@routes.post("/v1/staff/cap")
@auditing.audited("cap.post")
async def post_cap(request: web.Request) -> web.Response:
    """Accept a CAP 1.1/1.2 document, or an EDXL-DE distribution of them: 202 with what became
    of it, 400 (413 too large, 415 unknown coding) with the reason. Every refusal after the
    credentials were checked is quarantined, whatever refused it."""
    who = await plumbing.staff_member(request, "operator")
    resp, body = await _post_cap(request)
    # The CAP intake commits on its own transactions: its entry follows, naming each message.
    messages = body.get("messages", [body])
    await auditing.record(
        plumbing.ctx(request).pool, request, who, "cap.post",
        target=",".join(m["id"] for m in messages if m.get("id")) or None,
        status=resp.status, after=body)
    return resp


async def _post_cap(request: web.Request) -> tuple[web.Response, dict[str, Any]]:
    c = plumbing.ctx(request)
    limit = c.cfg.cap.max_bytes
    received = b""
    try:
        received = await plumbing.receive(request, limit, keep=quarantine.MAX_RAW)
        if request.content_type not in CAP_TYPES:
            raise plumbing.BadRequest(f"Content-Type must be one of {', '.join(CAP_TYPES)}")
        raw = plumbing.decoded(request, received, limit)
    except plumbing.BodyTooLarge as exc:
        qid = await quarantine.put(c.pool, cap_trust.STAFF, exc.received, exc.reason,
                                   size=exc.size)
        body: dict[str, Any] = {"error": exc.reason, "quarantine_id": qid}
        resp = plumbing.json_response(body, status=413)
        resp.force_close()  # the rest of the body is never read
        return resp, body
    except errors.AlertdError as exc:
        status = 415 if isinstance(exc, plumbing.UnsupportedEncoding) else (
            413 if isinstance(exc, errors.PayloadTooLarge) else 400)
        qid = await quarantine.put(c.pool, cap_trust.STAFF, received, exc.reason)
        body = {"error": exc.reason, "quarantine_id": qid}
        return plumbing.json_response(body, status=status), body
    handled = await cap_documents.ingest(c, raw, cap_trust.STAFF)
    messages = [_message(h) for h in handled]
    accepted = [h.intake for h in handled if h.intake is not None]
    if not accepted:
        first = handled[0].rejected
        assert first is not None
        body = {"error": first.reason, "quarantine_id": first.quarantine_id}
        if len(handled) > 1:
            body["messages"] = messages
        return plumbing.json_response(body, status=400), body
    body = _message(cap_documents.Handled(intake=accepted[0]))
    if len(handled) > 1:  # an EDXL-DE distribution of several: each message's fate
        body["messages"] = messages
    return plumbing.json_response(body, status=202), body


def _message(handled: cap_documents.Handled) -> dict[str, Any]:
    """One message's answer: the order it made or changed, or why it was refused."""
    if handled.intake is None:
        assert handled.rejected is not None
        return {"error": handled.rejected.reason,
                "quarantine_id": handled.rejected.quarantine_id}
    result = handled.intake
    order_id = str(result.order_id) if result.order_id else None
    return {"order_id": order_id, "id": order_id, "outcome": result.outcome,
            "detail": result.detail}


plumbing.OWN_BODY_LIMITS[post_cap] = lambda cfg: cfg.cap.max_bytes


MAX_SOURCE = 200  # characters of a source name in a query


@routes.get("/v1/staff/quarantine")
async def list_quarantine(request: web.Request) -> web.Response:
    """Rejected feed inputs with their reasons, newest first (`source`: of one feed only)."""
    await plumbing.staff_member(request, "viewer")
    before = request.query.get("before")
    source = request.query.get("source") or None
    if source is not None and len(source) > MAX_SOURCE:
        raise errors.InvalidInput(f"source must be at most {MAX_SOURCE} characters")
    items = await quarantine.listing(
        plumbing.ctx(request).pool, plumbing.int_arg(request, "limit", 50, 1, 500),
        plumbing.int_arg(request, "before", 0, 1, 2**62) if before else None, source,
    )
    return plumbing.json_response({"items": items})


def _quarantine_id(request: web.Request) -> int:
    text = request.match_info["quarantine_id"]
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18):
        raise errors.NotFound("no such quarantined item")
    return int(text)


@routes.get("/v1/staff/quarantine/{quarantine_id}")
async def get_quarantined(request: web.Request) -> web.Response:
    """One rejected input: its source, reason, and raw input as text (the first 64 KiB)."""
    await plumbing.staff_member(request, "viewer")
    qid = _quarantine_id(request)
    found = await quarantine.item(plumbing.ctx(request).pool, qid)
    if found is None:
        raise errors.NotFound(f"no quarantined item {qid} (never, or purged after its "
                              "retention)")
    return plumbing.json_response(found)


@routes.get("/v1/staff/quarantine/{quarantine_id}/raw")
async def get_quarantined_raw(request: web.Request) -> web.Response:
    """The raw input of a rejected item, byte for byte as kept, as a download: never shown
    by a browser as a page of its own (it is hostile input, as likely as not)."""
    await plumbing.staff_member(request, "viewer")
    qid = _quarantine_id(request)
    raw = await quarantine.raw_bytes(plumbing.ctx(request).pool, qid)
    if raw is None:
        raise errors.NotFound(f"no quarantined item {qid}")
    return web.Response(body=raw, content_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="quarantine-{qid}.bin"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store"})


@routes.get("/v1/staff/cap/messages")
async def list_cap_messages(request: web.Request) -> web.Response:
    """The CAP messages received (posted or polled), newest first, what became of each, and
    the orders they made or changed as those stand now (with their areas unless
    `areas=false`). Refused messages are in the quarantine instead."""
    await plumbing.staff_member(request, "viewer")
    flag = request.query.get("areas", "true")
    if flag not in ("true", "false"):
        raise errors.InvalidInput("areas must be true or false")
    cursor = request.query.get("cursor")
    page = await cap_history.recent(
        plumbing.ctx(request).pool, plumbing.int_arg(request, "limit", 50, 1, 200),
        cap_history.Position.from_cursor(cursor) if cursor else None, flag == "true")
    return plumbing.json_response({
        "messages": [m.as_json() for m in page.messages], "orders": page.orders,
        "cursor": page.next.cursor() if page.next else None})


@routes.get("/v1/staff/feeds")
async def list_feeds(request: web.Request) -> web.Response:
    """Health of every polled feed: last success, last error, items seen and skipped, and
    what of it sits in the quarantine; `posted`: the quarantine of CAP posted to the API."""
    await plumbing.staff_member(request, "viewer")
    pool = plumbing.ctx(request).pool
    feeds = await feedstate.listing(pool)
    held = await quarantine.by_source(pool)
    return plumbing.json_response({
        "feeds": [{**f.as_json(), **_held(held, f.name)} for f in feeds],
        "posted": {"source": cap_trust.STAFF, **_held(held, cap_trust.STAFF)}})


def _held(held: dict[str, tuple[int, datetime]], source: str) -> dict[str, Any]:
    found = held.get(source)
    if found is None:
        return {"quarantined": 0, "last_quarantined_at": None}
    return {"quarantined": found[0], "last_quarantined_at": found[1].isoformat()}


@routes.get("/v1/staff/warnings")
async def list_warnings(request: web.Request) -> web.Response:
    """JMA warnings in force in the prefecture, by area."""
    await plumbing.staff_member(request, "viewer")
    warnings = await jma_states.listing(plumbing.ctx(request).pool)
    return plumbing.json_response({"warnings": [w.as_json() for w in warnings]})


@routes.put("/v1/staff/shelters/{shelter_id}/status")
@auditing.audited("shelter.status", "shelter_id")
async def put_shelter_status(request: web.Request) -> web.Response:
    """Open, close or mark a shelter full, with crowding and evacuee count."""
    who = await plumbing.staff_member(request, "operator")
    body = validate.obj(await plumbing.json_body(request))
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
    c = plumbing.ctx(request)
    await points.catch_up(c.points)
    async with c.pool.acquire() as conn, conn.transaction():
        change = await openings.apply_status(conn, c.points, c.cfg,
                                             request.match_info["shelter_id"], status, crowding,
                                             evacuees, f"staff:{who.id}")
        await auditing.record(conn, request, who, "shelter.status", target=change.shelter.id,
                              before=_shelter_state(change.before),
                              after={**_shelter_state(change.shelter), "opened": change.opened})
    return plumbing.json_response({**change.shelter.as_json(), "opened": change.opened})
