"""The OpenAPI description of the staff console's routes (alertd/api/console.py): its files,
its sign-in session, and the municipal areas its map draws."""

from __future__ import annotations

from alertd.api.openapi_common import (
    TIMESTAMP,
    Schema,
    answer,
    array,
    json_content,
    obj,
    operation,
    path_param,
    ref,
    string,
)

TAG = "staff: console"
_FILE_TYPES = ("text/html", "text/javascript", "text/css", "image/png", "image/svg+xml",
               "application/json")
_SECURITY_HEADERS: dict[str, Schema] = {
    "Content-Security-Policy": {"description": "script-src 'self' (no inline script); img-src "
                                "adds the configured tile server", "schema": string()},
    "ETag": {"description": "the file's digest (If-None-Match answers 304)",
             "schema": string()},
    "Cache-Control": {"description": "no-cache (revalidate) for the console's own files; a "
                      "year for vendor/ (its directories are named with their version)",
                      "schema": string()},
}
_FILE = {"description": "The file.", "headers": _SECURITY_HEADERS,
         "content": {t: {"schema": string()} for t in _FILE_TYPES}}
_NOT_MODIFIED = {"description": "Unchanged since the ETag given in If-None-Match.",
                 "headers": _SECURITY_HEADERS}


def _files(operation_id: str, summary: str, **kwargs: object) -> Schema:
    return operation(operation_id, summary, tag=TAG, errors=("404",),
                     answers={"200": _FILE, "304": _NOT_MODIFIED}, **kwargs)  # type: ignore[arg-type]


def _session_op(operation_id: str, summary: str, errors: tuple[str, ...],
                **kwargs: object) -> Schema:
    # The cookie (consoleSession) is read when sent, not required: no session is an answer
    # (GET) or a 401 (DELETE), so the operation's security requirement is left empty.
    return operation(operation_id, summary, tag=TAG, errors=errors, **kwargs)  # type: ignore[arg-type]


SCHEMAS: dict[str, Schema] = {
    "ConsoleSession": obj({
        "signed_in": {"type": "boolean", "description": "false: no session (the other "
                      "fields are left out)"},
        "staff_id": string("the staff token's id (as audit entries and approvals name it)",
                           format="uuid"),
        "role": string("the staff token's role", enum=["viewer", "operator", "admin"]),
        "label": string("the staff token's label"),
        "csrf": string("send as X-CSRF-Token with every unsafe request of this session"),
        "expires_at": {**TIMESTAMP, "description": "the session ends then at the latest"},
        "idle_timeout_s": {"type": "number", "description": "the session ends after this long "
                                                            "without a request"},
        "tile_url": string("console.tile_url: a tile layer over the areas (empty: none)"),
        "tile_attribution": string("console.tile_attribution"),
    }, optional=("staff_id", "role", "label", "csrf", "expires_at", "idle_timeout_s", "tile_url",
                 "tile_attribution")),
    "SignIn": obj({"token": string("a staff token (alertd staff-token create --role R)",
                                   minLength=1)}),
    "Areas": {"type": "object", "description": "A GeoJSON FeatureCollection of the "
              "municipalities served (geo.areas_file), one feature each.",
              "required": ["type", "features"], "properties": {
                  "type": {"const": "FeatureCollection"},
                  "features": array(obj({
                      "type": {"const": "Feature"}, "id": string("the 6-digit code"),
                      "properties": obj({"code": string(pattern="^[0-9]{6}$"),
                                         "name": string("Japanese name"),
                                         "name_en": string("English name")}),
                      "geometry": {"type": "object", "description": "GeoJSON (Multi)Polygon"},
                  }))}},
}

PATHS: dict[str, Schema] = {
    "/console": {"get": _files("console", "The staff console's page")},
    "/console/{file}": {"get": _files(
        "consoleFile", "A file of the staff console (its page, modules, styles, the vendored "
        "map library)", parameters=[path_param("file", string(), "the file's path")])},
    "/v1/console/session": {
        "post": operation(
            "consoleSignIn", "Sign in to the console with a staff token", tag=TAG,
            errors=("401", "403"),
            body={"required": True, "content": json_content(ref("SignIn"))},
            answers={"201": answer(
                "Signed in: the session cookie alertd_session (HttpOnly, SameSite=Strict, "
                "Path=/, Secure over TLS) and the session.", ref("ConsoleSession"),
                headers={"Set-Cookie": {"description": "the session cookie",
                                        "schema": string(), "required": True}})},
            description="403 unless the Origin header names this site (a page of another "
                        "site cannot sign a browser in); 401 for an unknown, expired or "
                        "revoked token."),
        "get": _session_op(
            "consoleSession", "The console session of the cookie", errors=(),
            answers={"200": answer("The session, or signed_in false when the cookie names "
                                   "none that is live.", ref("ConsoleSession"))}),
        "delete": _session_op(
            "consoleSignOut", "Sign out: the session ends on the server", errors=("401", "403"),
            answers={"204": answer("Signed out; the cookie is cleared.")},
            description="403 without the session's X-CSRF-Token header."),
    },
    "/v1/staff/areas": {"get": operation(
        "areas", "The municipal areas served, for the console's map", tag=TAG, errors=(),
        security="staff", role="viewer",
        answers={"200": answer("Every municipality of geo.areas_file.", ref("Areas")),
                 "304": {"description": "Unchanged since the ETag given in If-None-Match."}})},
}
