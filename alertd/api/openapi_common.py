"""Pieces of the OpenAPI description shared by every part of it: errors, security, helpers.

The description of each handler module sits in its own module next to it (`openapi_mobile`
describes `mobile`, `openapi_staff` the staff modules); `openapi` assembles them and serves the
document. The statuses an answer can have are listed here once, by what can cause them, so an
operation's list follows from what the operation does (takes a body, needs a token, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from alertd import idempotency, validate
from alertd.orders import HAZARDS, LEVELS
from sheets import schema as sheet_schema

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a schema of components.schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: Mapping[str, Schema], *, optional: Iterable[str] = (),
        description: str | None = None, closed: bool = True) -> Schema:
    """An object schema: every property required unless named optional; closed (no other
    property) unless told otherwise."""
    lax = set(optional)
    assert lax <= set(properties), lax - set(properties)
    out: Schema = {"type": "object", "properties": dict(properties),
                   "required": [k for k in properties if k not in lax]}
    if closed:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def nullable(schema: Schema) -> Schema:
    """The schema, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **extra: Any) -> Schema:
    """An array of items."""
    return {"type": "array", "items": items, **extra}


def string(description: str | None = None, **extra: Any) -> Schema:
    """A string schema."""
    out: Schema = {"type": "string", **extra}
    if description:
        out["description"] = description
    return out


def integer(description: str | None = None, **extra: Any) -> Schema:
    """An integer schema."""
    out: Schema = {"type": "integer", **extra}
    if description:
        out["description"] = description
    return out


def anchored(python_regex: str) -> str:
    """A Python regex used with fullmatch, as a JSON Schema pattern (which searches)."""
    return f"^(?:{python_regex})$"


def _embedded(schema: Schema) -> Schema:
    """A standalone JSON Schema as a component (the document's dialect is already 2020-12)."""
    return {k: v for k, v in schema.items() if k != "$schema"}


COUNT = integer(minimum=0)
TIMESTAMP = string("RFC 3339 date-time with its offset", format="date-time")
UUID = string(format="uuid")
LATITUDE = {"type": "number", "minimum": -90, "maximum": 90}
LONGITUDE = {"type": "number", "minimum": -180, "maximum": 180}

# Shared components.schemas.
SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": string("what was wrong, for a person to read")}, closed=False,
                 description="Every error answer: the reason, sometimes with more fields "
                             "(named in the answer's description)."),
    "RateLimited": obj({
        "error": string(),
        "limit": string("the limit reached", enum=["register", "location", "device", "staff",
                                                    "search"]),
        "retry_after": integer("seconds to wait (as the Retry-After header)", minimum=1),
    }, closed=False),
    "Hazard": string("the eight hazard flags of the national designated-evacuation-site data",
                     enum=list(HAZARDS)),
    "Level": integer("警戒レベル: 3 高齢者等避難, 4 避難指示, 5 緊急安全確保", enum=list(LEVELS)),
    "Locale": string("a BCP 47 language tag", maxLength=35,
                     pattern=anchored(validate.LOCALE_RE.pattern)),
    # The My Evacuation Sheet and its advice: sheets.schema owns them (the sheet's is also
    # served at GET /v1/schemas/sheet).
    "Sheet": _embedded(sheet_schema.sheet_schema()),
    "Advice": _embedded(sheet_schema.advice_schema()),
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "deviceBearer": {
        "type": "http", "scheme": "bearer", "bearerFormat": "device secret",
        "description": "The device_secret POST /v1/devices returned, once, to the phone.",
    },
    "staffBearer": {
        "type": "http", "scheme": "bearer", "bearerFormat": "staff token",
        "description": "A staff token (`alertd staff-token create --role R`). Roles, each "
                       "allowing what the ones before it allow: viewer (read), operator "
                       "(issue, amend and lift orders, post CAP, shelter states), admin. "
                       "An operation's security requirement names the least role it needs. "
                       "The console's session cookie (consoleSession) stands for the token "
                       "it signed in with on every staff operation; unsafe methods then need "
                       "its X-CSRF-Token header too (403 without).",
    },
    "consoleSession": {
        "type": "apiKey", "in": "cookie", "name": "alertd_session",
        "description": "The staff console's session (POST /v1/console/session), HttpOnly.",
    },
}
ROLES = ("viewer", "operator", "admin")

_RETRY_AFTER = {"description": "seconds to wait before trying again",
                "schema": integer(minimum=1)}


def _error(description: str, schema: str = "Error", **headers: Schema) -> Schema:
    out: Schema = {"description": description,
                   "content": {"application/json": {"schema": ref(schema)}}}
    if headers:
        out["headers"] = {name.replace("_", "-"): {**h, "required": True}
                          for name, h in headers.items()}
    return out


# components.responses, keyed by status: one meaning a status, whatever the route.
RESPONSES: dict[str, Schema] = {
    "400": _error("The request cannot be read: the body is not JSON (or not what its "
                  "Content-Encoding says), the Content-Type is not accepted, or the client "
                  "hung up while sending it."),
    "401": _error("Missing, unknown, expired or revoked credentials.",
                  WWW_Authenticate={"schema": string(enum=["Bearer"])}),
    "403": _error("The staff token's role does not allow this."),
    "404": _error("No such object (a path parameter holding NUL or an unpaired surrogate "
                  "names none either)."),
    "408": _error("The request's headers or body did not arrive in time "
                  "(http.header_timeout_s, http.body_timeout_s); the connection is closed."),
    "409": _error("The request conflicts with the current state."),
    "410": _error("The sync cursor cannot be read or is no longer served: sync again "
                  "without one."),
    "412": _error("The object changed since the version the request names."),
    "413": _error("The body (or what it expands to) is larger than http.max_body_bytes."),
    "415": _error("The body's Content-Encoding is neither gzip nor deflate."),
    "417": _error("The request's Expect header asks for something other than 100-continue."),
    "422": _error("The request is well-formed but invalid; the reason names the field. A "
                  "query argument holding NUL or an unpaired surrogate is refused so on "
                  "every route."),
    "428": _error("The request must be conditional (If-Match)."),
    "429": _error("A rate limit is reached (per client address for registrations and shelter "
                  "searches, per credential otherwise).", "RateLimited",
                  Retry_After=_RETRY_AFTER),
    "503": _error("Busy (for shelter searches: more than ratelimit.search_concurrency at "
                  "once), starting or stopping, or the database is unreachable; also the "
                  "answer of a connection beyond http.max_connections. Retry after the "
                  "time given.", Retry_After=_RETRY_AFTER),
}

# Which statuses an operation can answer, by what it does.
# Every request: header deadline, Expect, query arguments, overload.
ANY = ("408", "417", "422", "503")
BODY = ("400", "413", "415", "422")  # takes a body
PATH = ("404",)  # has path parameters
DEVICE = ("401", "429")  # needs a device secret (rate limited per device)
THROTTLED = ("429",)


def staff(role: str) -> tuple[str, ...]:
    """The statuses a staff credential check adds for an operation needing `role`."""
    return ("401", "429") if role == "viewer" else ("401", "403", "429")


def json_content(schema: Schema, example: Any = None) -> Schema:
    """A JSON body (request or answer) of this schema."""
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def answer(description: str, schema: Schema | None = None, *,
           headers: Mapping[str, Schema] | None = None) -> Schema:
    """A success answer: JSON of the schema, or no body when schema is None."""
    out: Schema = {"description": description}
    if schema is not None:
        out["content"] = json_content(schema)
    if headers:
        out["headers"] = dict(headers)
    return out


def operation(operation_id: str, summary: str, *, tag: str, answers: Mapping[str, Schema],
              errors: Iterable[str], security: str | None = None, role: str | None = None,
              body: Schema | None = None, parameters: Iterable[Schema] = (),
              description: str | None = None, **extra: Any) -> Schema:
    """One operation: its answers, and the shared error answers its statuses name.

    `security` is "device", "staff" (with `role`) or None (no credentials)."""
    statuses = set(errors) | set(ANY)
    if body is not None:
        statuses |= set(BODY)
    if security == "device":
        statuses |= set(DEVICE)
    elif security == "staff":
        assert role in ROLES, role
        statuses |= set(staff(role))
    responses: Schema = dict(answers)
    for status in sorted(statuses):
        assert status in RESPONSES, status
        responses.setdefault(status, {"$ref": f"#/components/responses/{status}"})
    out: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        out["description"] = description
    if security == "device":
        out["security"] = [{"deviceBearer": []}]
    elif security == "staff":
        out["security"] = [{"staffBearer": [role]}]
        out["x-role"] = role
    else:
        out["security"] = []
    if parameters:
        out["parameters"] = list(parameters)
    if body is not None:
        out["requestBody"] = body
    out["responses"] = dict(sorted(responses.items()))
    out.update(extra)
    return out


IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": string(minLength=1, maxLength=idempotency.MAX_KEY, pattern="^[\\x20-\\x7e]+$"),
    "description": "A retry with the same key gets the first answer (with "
                   "Idempotent-Replayed: true); the same key with another request is a 422.",
}
REPLAYED: Schema = {"description": "true when this is the first answer again, to a retry with "
                                   "its Idempotency-Key", "schema": {"const": "true"}}


def path_param(name: str, schema: Schema, description: str) -> Schema:
    """A path parameter."""
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


def query_param(name: str, schema: Schema, description: str) -> Schema:
    """An optional query argument."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}
