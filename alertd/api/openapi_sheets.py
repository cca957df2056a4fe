"""The OpenAPI description of the sheets API (alertd/api/sheets.py): the sheet schema, a
device's My Evacuation Sheets with versions and ETag/If-Match, and sync."""

from __future__ import annotations

from alertd.api import openapi_mobile, sheets
from alertd.api.openapi_common import (
    IDEMPOTENCY_KEY,
    PATH,
    REPLAYED,
    UUID,
    Schema,
    answer,
    array,
    integer,
    json_content,
    nullable,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    string,
)

TAG = "mobile: sheets and sync"

_VERSION = integer("the server's version of the sheet", minimum=1)
_ETAG = {"description": "the version as a strong entity tag (\"3\")", "required": True,
         "schema": string(pattern='^"[1-9][0-9]*"$')}
_TAG_RE = r'\s*(W/)?"[\x21\x23-\x7e\x80-\xff]*"\s*'  # sheets.merge's, as JSON Schema
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
             "schema": string(pattern=rf"^(\s*\*\s*|{_TAG_RE}(,{_TAG_RE})*)$"),
             "description": "The version the change is based on (an ETag, or *). Needed to "
                            "replace an existing sheet (428 without it); a stale one is a 412 "
                            "with the server's copy; a malformed one a 400."}

_WRITTEN = {"ETag": _ETAG, "Idempotent-Replayed": REPLAYED}
_LIVE = openapi_mobile.SCHEMAS["InboxEntry"]

SCHEMAS: dict[str, Schema] = {
    "SheetAnswer": obj({
        "id": UUID, "version": _VERSION, "sheet": ref("Sheet"),
        "advice": array(ref("Advice"), description="derived from the sheet by the server"),
    }),
    "StoredSheet": obj({
        "id": UUID, "version": _VERSION, "deleted": {"type": "boolean"},
        "sheet": ref("Sheet"),
    }, optional={"sheet"}, description="A sheet, or its tombstone (deleted, no sheet)."),
    "SheetInvalid": obj({
        "error": string(),
        "fields": array(obj({"path": string("a JSON path into the sheet, e.g. $.places[0].lat"),
                             "reason": string()}), minItems=1),
    }),
    "SheetStale": obj({"error": string(), "current": nullable(ref("StoredSheet"))}),
    "SyncPage": obj({
        "cursor": string("opaque; give it back to get what changed after this page"),
        "more": {"type": "boolean", "description": "true: ask again with the new cursor"},
        "sheets": array(ref("StoredSheet")),
        "alerts": array(ref("SyncAlert")),
        "shelters": array(ref("Shelter"), description=(
            "shelters near the device's location, watched places or sheet places (within "
            "sync.shelter_radius_m), in a watched municipality, or named in its sheets: all of "
            "them, with their state, on a first sync or when that set changes; then those "
            "whose state changed")),
    }),
    "SyncAlert": {"anyOf": [
        {**_LIVE, "properties": {**_LIVE["properties"], "deleted": {"const": False}},
         "required": [*_LIVE["required"], "deleted"]},
        obj({"id": string(pattern="^[1-9][0-9]*$"), "deleted": {"const": True}},
            description="An entry that left the inbox (its push was cancelled before it "
                        "went out): drop it."),
    ]},
}

_SHEET = path_param("sheet_id", UUID, "the sheet's id, a UUID the phone chose (anything "
                                      "else names no sheet: 404)")


def _error(description: str, schema: Schema) -> Schema:
    return {"description": description,
            "content": json_content({"anyOf": [schema, ref("Error")]})}


_STALE = _error("The If-Match version is not the sheet's: the answer holds the server's copy "
                "(current; null when the sheet is gone).", ref("SheetStale"))

PATHS: dict[str, Schema] = {
    "/v1/schemas/sheet": {"get": operation(
        "sheetSchema", "The JSON Schema of a sheet", tag=TAG, errors=(),
        answers={"200": answer("The schema (JSON Schema 2020-12).", {"type": "object"})})},
    "/v1/me/sheets/{sheet_id}": {
        "parameters": [_SHEET],
        "put": operation(
            "putSheet", "Create or replace a sheet", tag=TAG, security="device",
            errors=(*PATH, "409", "428"), parameters=[_IF_MATCH, IDEMPOTENCY_KEY],
            body={"required": True, "content": json_content(ref("Sheet"))},
            answers={
                "200": answer("Replaced: the new version and the sheet's advice.",
                              ref("SheetAnswer"), headers=_WRITTEN),
                "201": answer("Created.", ref("SheetAnswer"), headers=_WRITTEN),
                "412": _STALE,
                "422": _error("The sheet is invalid: every field error with its path.",
                              ref("SheetInvalid")),
            },
            description="At most 10 sheets a device: another is a 409."),
        "get": operation(
            "getSheet", "A sheet with its version and advice", tag=TAG, security="device",
            errors=PATH, answers={"200": answer("The sheet.", ref("SheetAnswer"),
                                                headers={"ETag": _ETAG})},
            description="A deleted sheet is a 404."),
        "delete": operation(
            "deleteSheet", "Delete a sheet", tag=TAG, security="device", errors=(*PATH, "400"),
            parameters=[_IF_MATCH, IDEMPOTENCY_KEY], answers={
                "204": answer("Deleted: sync reports its tombstone.",
                              headers={"Idempotent-Replayed": REPLAYED}),
                "412": _STALE,
            }),
    },
    "/v1/me/sync": {"get": operation(
        "sync", "What changed for this device since the cursor", tag=TAG, security="device",
        errors=("410",), parameters=[
            query_param("cursor", string(), "from the previous page (none: from the "
                                            "beginning)"),
            query_param("limit", integer(minimum=1, maximum=sheets.MAX_SYNC_LIMIT,
                                         default=sheets.SYNC_LIMIT), "changes at most"),
        ],
        answers={"200": answer("One page of changes, in server order.", ref("SyncPage"))},
        description="Each stream (sheets, alerts, shelters) pages on its own: a page holds at "
                    "most `limit` changes of each. An inbox entry that changes (read, or "
                    "cancelled) comes again. A cursor older than the server's "
                    "sync.cursor_max_age_s, or from an older server, is a "
                    "410.")},
}
