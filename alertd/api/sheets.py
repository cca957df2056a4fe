"""The mobile API of My Evacuation Sheets: the sheet schema, a device's sheets (versions,
ETag/If-Match, tombstones) and sync of what changed since an opaque cursor.

Sheet errors (sheets.errors) are answered here: invalid → 422 with the fields, a malformed
If-Match → 400, none on an existing sheet → 428, a stale one → 412 with the server's copy, too
many sheets → 409, no such sheet → 404, an unreadable or too old cursor → 410.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any, Final

import asyncpg
from aiohttp import web

from alertd import errors, idempotency, shelters, sync
from alertd.api import plumbing
from sheets import advice, merge, schema, store, validate
from sheets.errors import (
    BadIfMatch,
    CursorExpired,
    CursorUnreadable,
    IfMatchRequired,
    SheetError,
    SheetInvalid,
    SheetMissing,
    StaleVersion,
    TooManySheets,
)
from sheets.model import Sheet

routes = web.RouteTableDef()
SYNC_LIMIT: Final = 100  # changes a sync page holds unless `limit` says otherwise
MAX_SYNC_LIMIT: Final = 500


def _answer(exc: SheetError) -> web.Response:
    """The HTTP answer to a sheet error."""
    if isinstance(exc, SheetInvalid):
        return plumbing.problem(422, exc.reason, fields=[f.as_json() for f in exc.fields])
    if isinstance(exc, StaleVersion):
        current = exc.current.as_json() if exc.current is not None else None
        return plumbing.problem(412, exc.reason, current=current)
    status = {BadIfMatch: 400, IfMatchRequired: 428, TooManySheets: 409, SheetMissing: 404,
              CursorUnreadable: 410, CursorExpired: 410}.get(type(exc), 400)
    return plumbing.problem(status, exc.reason)


def _sheet_errors(handler: plumbing.Handler) -> plumbing.Handler:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SheetError as exc:
            return _answer(exc)
    return wrapped


def _sheet_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["sheet_id"]
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise errors.NotFound("no such sheet: sheet ids are UUIDs") from exc


async def _advice(conn: asyncpg.Connection | asyncpg.Pool, sheet: Sheet) -> list[dict[str, Any]]:
    found = await shelters.names_and_hazards(conn, sheet.shelter_ids)
    facts = {sid: advice.ShelterFacts(name, frozenset(hazards))
             for sid, (name, hazards) in found.items()}
    return [a.as_json() for a in advice.advise(sheet, facts)]


@routes.get("/v1/schemas/sheet")
async def sheet_schema(_request: web.Request) -> web.Response:
    """The JSON Schema of a sheet document."""
    return plumbing.json_response(schema.sheet_schema())


def _replayed(first: idempotency.Answer) -> web.Response:
    """The first answer to a write, again (a retry with the same Idempotency-Key)."""
    headers = {"Idempotent-Replayed": "true"}
    if first.status == 204:
        return web.Response(status=204, headers=headers)
    headers["ETag"] = merge.etag(first.body["version"])
    return plumbing.json_response(first.body, status=first.status, headers=headers)


@routes.put("/v1/me/sheets/{sheet_id}")
@_sheet_errors
async def put_sheet(request: web.Request) -> web.Response:
    """Create (201) or replace (200, If-Match required) a sheet; its version and advice. With
    Idempotency-Key, a retry gets the first answer."""
    dev = await plumbing.device(request)
    sheet_id = _sheet_id(request)
    if_match = merge.parse_if_match(request.headers.get("If-Match"))
    raw = await plumbing.json_body(request)
    sheet = validate.parse(raw)
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    request_doc = {"method": "PUT", "sheet_id": str(sheet_id), "body": raw}
    async with plumbing.ctx(request).pool.acquire() as conn, conn.transaction():
        if key is not None:
            first = await idempotency.claim(conn, dev.id, key, request_doc, "device_id")
            if first is not None:
                return _replayed(first)
        stored, created = await store.put(conn, dev.id, sheet_id, sheet, if_match)
        status = 201 if created else 200
        body = {"id": str(sheet_id), "version": stored.version, "sheet": sheet.as_json(),
                "advice": await _advice(conn, sheet)}
        if key is not None:
            await idempotency.record(conn, dev.id, key, idempotency.Answer(status, body),
                                     "device_id")
    return plumbing.json_response(body, status=status,
                                  headers={"ETag": merge.etag(stored.version)})


@routes.get("/v1/me/sheets/{sheet_id}")
@_sheet_errors
async def get_sheet(request: web.Request) -> web.Response:
    """A live sheet with its version (404 for none or a deleted one)."""
    dev = await plumbing.device(request)
    sheet_id = _sheet_id(request)
    stored = await store.get(plumbing.ctx(request).pool, dev.id, sheet_id)
    if stored is None or stored.sheet is None:
        raise errors.NotFound("no such sheet")
    body = {"id": str(sheet_id), "version": stored.version, "sheet": stored.sheet.as_json(),
            "advice": await _advice(plumbing.ctx(request).pool, stored.sheet)}
    return plumbing.json_response(body, headers={"ETag": merge.etag(stored.version)})


@routes.delete("/v1/me/sheets/{sheet_id}")
@_sheet_errors
async def delete_sheet(request: web.Request) -> web.Response:
    """Delete a sheet (If-Match optional); sync then reports its tombstone. With
    Idempotency-Key, a retry gets the first answer."""
    dev = await plumbing.device(request)
    sheet_id = _sheet_id(request)
    if_match = merge.parse_if_match(request.headers.get("If-Match"))
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    request_doc = {"method": "DELETE", "sheet_id": str(sheet_id)}
    async with plumbing.ctx(request).pool.acquire() as conn, conn.transaction():
        if key is not None:
            first = await idempotency.claim(conn, dev.id, key, request_doc, "device_id")
            if first is not None:
                return _replayed(first)
        await store.delete(conn, dev.id, sheet_id, if_match)
        if key is not None:
            await idempotency.record(conn, dev.id, key, idempotency.Answer(204, {}),
                                     "device_id")
    return web.Response(status=204)


@routes.get("/v1/me/sync")
@_sheet_errors
async def sync_page(request: web.Request) -> web.Response:
    """What changed for this device since the cursor (none: since the beginning) in its
    sheets, inbox and shelters, in server order, a page at a time (`more`: ask again with the
    new cursor). An unreadable or too old cursor is a 410."""
    context = plumbing.ctx(request)
    cfg = context.cfg.sync
    key = await sync.cursor_key(context.pool)
    async with context.pool.acquire() as conn:
        dev = await plumbing.device(request, conn)
        limit = plumbing.int_arg(request, "limit", SYNC_LIMIT, 1, MAX_SYNC_LIMIT)
        after = sync.read_cursor(request.query.get("cursor"), key, dev.id, time.time(),
                                 cfg.cursor_max_age_s)
        found = await sync.page(conn, dev.id, after, limit, cfg.shelter_radius_m)
    return plumbing.json_text(found.as_text(sync.write_cursor(found.position, key, dev.id)))
