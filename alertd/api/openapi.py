"""The OpenAPI 3.1 description of the whole HTTP API, served at `GET /openapi.json`.

Each handler module's routes are described in the module named after it (`openapi_mobile`
for `mobile`, `openapi_staff` for the staff modules; the health routes and this one here);
the shared errors, security schemes and helpers are in `openapi_common`. A route added to the
router must be described in the same change: tests/integration/test_openapi.py walks the
router against this document, and tests/e2e/test_openapi_live.py runs schemathesis against a
live daemon (no 5xx; every answer as described).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import metadata
from typing import Any

from aiohttp import web

from alertd.api import (
    openapi_approvals,
    openapi_auditing,
    openapi_common,
    openapi_console,
    openapi_mobile,
    openapi_sheets,
    openapi_staff,
)
from alertd.api.openapi_common import COUNT, Schema, answer, obj, operation, string

routes = web.RouteTableDef()
TAG = "operations"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

_METRICS = {"description": "Prometheus metrics (text exposition format).",
            "content": {"text/plain": {"schema": string()}}}
_NOT_READY = {"description": "Not ready: the database is unreachable or not migrated, or "
                             "the point index is still loading (the reason says which).",
              "content": {"application/json": {"schema": openapi_common.ref("Error")}}}


HEALTH_PATHS: dict[str, Schema] = {
    "/healthz": {
        "get": operation("healthz", "Liveness: the process serves", tag=TAG, errors=(),
                         answers={"200": answer("Alive.", obj({"status": {"const": "ok"}}))}),
    },
    "/readyz": {
        "get": operation("readyz", "Readiness: the database is migrated and the point "
                         "index loaded", tag=TAG, errors=(),
                         answers={"200": answer("Ready.", obj({
                             "status": {"const": "ready"},
                             "points": {**COUNT, "description": "points in the index"}})),
                             "503": _NOT_READY}),
    },
    "/metrics": {
        "get": operation("metrics", "Prometheus metrics", tag=TAG, errors=(),
                         answers={"200": _METRICS}),
    },
    "/openapi.json": {"get": operation(
        "openapi", "This description", tag=TAG, errors=(),
        answers={"200": answer("The OpenAPI 3.1 document.", {"type": "object"})})},
}

_TAGS = [
    {"name": "mobile", "description": "The phone's API (a device secret for /v1/me*)."},
    {"name": openapi_sheets.TAG,
     "description": "My Evacuation Sheets (versions, ETag/If-Match, tombstones) and sync."},
    {"name": "staff: orders", "description": "Crisis-management staff: evacuation orders."},
    {"name": "staff: feeds and shelters",
     "description": "Crisis-management staff: CAP, feeds, warnings, shelter states."},
    {"name": openapi_auditing.TAG,
     "description": "Crisis-management staff: the audit trail of staff actions (admin)."},
    {"name": openapi_console.TAG,
     "description": "The staff console at /console: its files, its session (a cookie; "
                    "unsafe requests carry X-CSRF-Token), the map's areas."},
    {"name": TAG, "description": "Health, readiness, metrics and this description."},
]


def _with_head(paths: dict[str, Schema]) -> dict[str, Schema]:
    """The paths with HEAD beside every GET, as aiohttp routes it: the GET's answers, headers
    only."""
    out = {}
    for path, item in paths.items():
        item = dict(item)
        if "get" in item:
            get = item["get"]
            item["head"] = {**get, "operationId": get["operationId"] + "Head",
                            "summary": get["summary"] + " (headers only)"}
        out[path] = item
    return out


def _merged(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        clash = set(out) & set(part)
        assert not clash, f"described twice: {sorted(clash)}"
        out.update(part)
    return out


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the whole HTTP API (a fresh copy the caller may change)."""
    try:
        version = metadata.version("alertd")
    except metadata.PackageNotFoundError:  # running from a source tree
        version = "0"
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {
            "title": "alertd",
            "version": version,
            "summary": "Evacuation orders and shelter states pushed to residents' phones.",
            "description": "Errors are JSON objects `{\"error\": reason, ...}`. Where an "
                           "answer can be a 429 or a 503, its Retry-After header says when "
                           "to try again.",
        },
        "tags": _TAGS,
        "paths": _with_head(_merged(HEALTH_PATHS, openapi_mobile.PATHS,
                                      openapi_sheets.PATHS, openapi_staff.PATHS,
                                      openapi_auditing.PATHS, openapi_approvals.PATHS,
                                      openapi_console.PATHS)),
        "components": {
            "schemas": _merged(openapi_common.SCHEMAS, openapi_mobile.SCHEMAS,
                               openapi_sheets.SCHEMAS, openapi_staff.SCHEMAS,
                               openapi_auditing.SCHEMAS, openapi_approvals.SCHEMAS,
                               openapi_console.SCHEMAS),
            "responses": openapi_common.RESPONSES,
            "securitySchemes": openapi_common.SECURITY_SCHEMES,
        },
    })


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """The (METHOD, path) pairs a document describes."""
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


@functools.cache
def _served() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode()


@routes.get("/openapi.json")
async def openapi_json(_request: web.Request) -> web.Response:
    """The OpenAPI description (no credentials needed)."""
    return web.Response(body=_served(), content_type="application/json", charset="utf-8")
