"""The audit trail at the HTTP edge: who and whence of a request, refusals recorded, and the
admin's listing (`GET /v1/staff/audit`)."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from alertd import audit, db, errors, logs, staff, validate
from alertd.api import plumbing, throttle

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

# The request attribute saying how the caller was authenticated: "console" when by a console
# session cookie (set by the console's authentication), else the default "api".
VIA = plumbing.VIA


def origin(request: web.Request) -> audit.Origin:
    """The channel and client address of a request, as the audit trail keeps them."""
    via = request.get(VIA, "api")
    trusted = request.app[throttle.THROTTLE].trusted
    remote = throttle.client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                     trusted)
    return audit.Origin(via if via in audit.VIA else "api", remote)


async def record(conn: Any, request: web.Request, who: staff.Staff, action: str, *,
                 target: str | None = None, status: int = 200, before: Any = None,
                 after: Any = None) -> None:
    """Append the entry of this request's action, on `conn` (the action's transaction)."""
    await audit.record(conn, who, origin(request), action, target=target, status=status,
                       before=before, after=after)


def audited(action: str, target: str | None = None
            ) -> Callable[[plumbing.Handler], plumbing.Handler]:
    """Decorate a staff route: when it refuses the request after the caller was identified
    (403, 404, 409, 422, ...), the refusal is recorded as `action` with its status; the
    match_info value named `target` names what was aimed at. Success is recorded by the
    handler itself, in the action's transaction."""
    def wrap(handler: plumbing.Handler) -> plumbing.Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except errors.AlertdError as exc:
                await _refusal(request, action, target, plumbing.status_of(exc), exc.reason)
                raise
        return run
    return wrap


async def _refusal(request: web.Request, action: str, target: str | None, status: int,
                   reason: str) -> None:
    who = request.get(plumbing.STAFF)
    if who is None or status >= 500:
        return  # nobody identified (401), or the database itself failed
    aimed = request.match_info.get(target) if target else None
    try:
        await record(plumbing.ctx(request).pool, request, who, action, target=aimed,
                     status=status, after={"error": reason})
    except db.UNAVAILABLE as exc:  # the refusal still reaches the caller
        log.warning("audit_refusal_not_recorded", action=action, error=logs.describe(exc))


def _since(text: str) -> datetime:
    # A '+' left unencoded in a query string arrives as a space: 10:00+09:00 reads as
    # "10:00 09:00"; take it back.
    return validate.timestamp(re.sub(r" (\d\d(:?\d\d)?)$", r"+\1", text), "since")


@routes.get("/v1/staff/audit")
async def list_audit(request: web.Request) -> web.Response:
    """The audit trail, newest first (admin): filters `action`, `target`, `staff_id`, `since`;
    `before` (an entry id, the previous page's `next`) pages; `limit` at most 500."""
    await plumbing.staff_member(request, "admin")
    q = request.query
    staff_id = None
    if "staff_id" in q:
        try:
            staff_id = uuid.UUID(q["staff_id"])
        except ValueError as exc:
            raise errors.InvalidInput("staff_id must be a staff token id (a UUID)") from exc
    query = audit.Query(
        action=q.get("action"), target=q.get("target"), staff_id=staff_id,
        since=_since(q["since"]) if "since" in q else None,
        before=plumbing.int_arg(request, "before", 0, 1, 2**62) if "before" in q else None,
        limit=plumbing.int_arg(request, "limit", 100, 1, audit.MAX_LIMIT))
    found = await audit.entries(plumbing.ctx(request).pool, query)
    more = len(found) == query.limit
    return plumbing.json_response({"entries": [e.as_json() for e in found],
                                   "next": found[-1].id if more and found else None})
