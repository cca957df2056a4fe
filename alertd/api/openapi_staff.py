"""The OpenAPI description of the staff API: orders (alertd/api/staff_orders.py), feeds,
CAP, quarantine, warnings and shelter states (alertd/api/staff_feeds.py), the shelter list
(alertd/api/staff_shelters.py) and tips (alertd/api/staff_tips.py)."""

from __future__ import annotations

from typing import Any

from alertd import orders, progress, shelters
from alertd import tip_catalogue as tc
from alertd.api import openapi_mobile, staff_feeds, staff_orders, staff_shelters
from alertd.api.openapi_common import (
    COUNT,
    IDEMPOTENCY_KEY,
    LATITUDE,
    LONGITUDE,
    PATH,
    REPLAYED,
    TIMESTAMP,
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
from geo import areas

TAG_ORDERS = "staff: orders"
TAG_FEEDS = "staff: feeds and shelters"
TAG_TIPS = "staff: tips"


def _texts(max_len: int) -> Schema:
    text = string(minLength=1, maxLength=max_len, pattern=r"\S")
    return {"oneOf": [
        {**text, "description": "the Japanese text (the same as {\"ja\": text})"},
        {"type": "object", "minProperties": 1, "propertyNames": ref("Locale"),
         "additionalProperties": text, "description": "language tag -> text"},
    ]}


_POSITION = array({"type": "number"}, minItems=2, maxItems=2,
                  prefixItems=[LONGITUDE, LATITUDE], description="[lon, lat]")
_RING = array(_POSITION, minItems=4, description="closed: the last position is the first")
_POLYGON = array(_RING, minItems=1, description="the outer ring, then holes")
# Areas are open objects: members other than the ones named are ignored.
_GEOJSON_POLYGON = {"type": "object", "required": ["type", "coordinates"], "properties": {
    "type": {"const": "Polygon"}, "coordinates": _POLYGON}}
_GEOJSON_MULTI = {"type": "object", "required": ["type", "coordinates"], "properties": {
    "type": {"const": "MultiPolygon"}, "coordinates": array(_POLYGON, minItems=1)}}
_CIRCLE = {"type": "object", "required": ["circle"], "properties": {"circle": {
    "type": "object", "required": ["lat", "lon", "radius_m"], "properties": {
        "lat": LATITUDE, "lon": LONGITUDE,
        "radius_m": {"type": "number", "exclusiveMinimum": 0, "maximum": areas.MAX_RADIUS_M}}}}}
_CODES = {"type": "object", "required": ["area_codes"], "properties": {"area_codes": array(
    string(pattern="^[0-9]{5,7}$"), minItems=1,
    description="municipality (5 or 6 digits) or JMA sub-area (7 digits) codes")}}
_COUNTS = {k: COUNT for k in orders.COUNTS}
_NOTIFIED = obj({kind: COUNT for kind in progress.KINDS},
                description="pushes queued, by kind")

_HELD = {"quarantined": {**COUNT, "description": "its items in the quarantine (kept for "
                                                 "housekeeping.quarantine_retention_s)"},
         "last_quarantined_at": nullable(TIMESTAMP)}

_OUTCOMES = ["order", "updated", "lifted", "waiting", "duplicate", "recorded", "ignored"]

SCHEMAS: dict[str, Schema] = {
    "Area": {"oneOf": [
        _GEOJSON_POLYGON, _GEOJSON_MULTI,
        {"type": "object", "required": ["type", "geometry"], "properties": {
            "type": {"const": "Feature"},
            "geometry": {"oneOf": [_GEOJSON_POLYGON, _GEOJSON_MULTI]}}},
        _CIRCLE, _CODES,
    ], "description": "A GeoJSON Polygon or MultiPolygon (or a Feature wrapping one), a "
                      "circle, or municipality codes. It must touch the prefecture served."},
    "OrderRequest": obj({
        "level": ref("Level"),
        "hazard": ref("Hazard"),
        "area": ref("Area"),
        "headline": _texts(orders.MAX_HEADLINE),
        "instruction": nullable(_texts(orders.MAX_INSTRUCTION)),
        "expires_at": {**nullable(TIMESTAMP),
                       "description": "in the future, within orders.max_ttl_s (none or null: "
                                      "orders.default_ttl_s from now)"},
    }, optional={"instruction", "expires_at"}),
    "OrderChange": {**obj({
        "level": ref("Level"),
        "hazard": ref("Hazard"),
        "area": ref("Area"),
        "headline": _texts(orders.MAX_HEADLINE),
        "instruction": {**nullable(_texts(orders.MAX_INSTRUCTION)),
                        "description": "null: none"},
        "expires_at": {**nullable(TIMESTAMP),
                       "description": "null: orders.default_ttl_s from now"},
    }, optional={"level", "hazard", "area", "headline", "instruction", "expires_at"},
        description="The fields to change; the others stay. A change that leaves the order "
                    "as it is is a 422."), "minProperties": 1},
    "Preview": obj({
        "devices": ref("CoarseCount"),
        "by_area": {"type": "object", "additionalProperties": ref("CoarseCount"),
                    "description": "municipality code -> devices there"},
    }),
    "CoarseCount": {"oneOf": [
        COUNT, string(pattern="^fewer than [0-9]+$")],
        "description": "a number of devices, or \"fewer than N\" below "
                       "orders.preview_min_count (a preview must not locate a resident)"},
    "OrderCreated": obj({"id": UUID, "version": integer(minimum=1),
                         "devices": {**COUNT, "description": "devices the order reaches"}}),
    "OrderAmended": obj({"id": UUID, "version": integer(minimum=1), "devices": COUNT,
                         "notified": _NOTIFIED}),
    "OrderLifted": obj({"id": UUID, "state": {"const": "lifted"}, "devices": COUNT,
                        "notified": _NOTIFIED}),
    "OrderSummary": obj({
        "id": UUID, "version": integer(minimum=1),
        "state": string(enum=list(orders.STATES)),
        "source": string("staff, cap, ..."),
        "level": ref("Level"), "hazard": ref("Hazard"),
        "headline": {"type": "object", "additionalProperties": string()},
        "expires_at": TIMESTAMP, "created_at": TIMESTAMP,
        **_COUNTS,
    }),
    "Order": obj({
        "id": UUID, "version": integer(minimum=1),
        "state": string(enum=list(orders.STATES)),
        "source": string(), "exercise": {"type": "boolean"},
        "level": ref("Level"), "hazard": ref("Hazard"),
        "area": {"oneOf": [_GEOJSON_POLYGON, _GEOJSON_MULTI, _CIRCLE, _CODES],
                 "description": "as stored: codes and circles as given, polygons repaired"},
        "headline": {"type": "object", "additionalProperties": string()},
        "instruction": {"type": "object", "additionalProperties": string()},
        "expires_at": TIMESTAMP, "created_at": TIMESTAMP,
        "expired": {"type": "boolean"},
        "queuing": {**COUNT, "description": "devices the order's streamed fan-out has still to "
                                            "queue (not counted as pending yet; 0: none)"},
        "pending_change": {**ref("PendingOrder"),
                           "description": "a change of it waiting for approval"},
        "deliveries": obj({k: COUNT for k in (*orders.COUNTS, "cancelled", "lifted")},
                          description="the order as a whole: each device counted once, by "
                                      "its latest push"),
        **_COUNTS,
        "versions": array(obj({
            "version": integer(minimum=1), "level": ref("Level"), "created_at": TIMESTAMP,
            "matched": COUNT, "notified": _NOTIFIED,
            **{state: COUNT for state in progress.STATES}})),
    }, optional={"pending_change"}),
    "CapIntake": obj({
        "order_id": nullable(UUID), "id": nullable(UUID),
        "outcome": string(enum=_OUTCOMES),
        "detail": string(),
        "messages": array(ref("CapMessage")),
    }, optional={"messages"}, description="The first message applied; `messages`: each "
                                          "message of an EDXL-DE distribution of several."),
    "CapRejected": obj({"error": string(), "quarantine_id": integer(minimum=1),
                        "messages": array(ref("CapMessage"))}, optional={"messages"}),
    "CapMessage": {"anyOf": [
        obj({"order_id": nullable(UUID), "id": nullable(UUID),
             "outcome": string(enum=_OUTCOMES), "detail": string()}),
        obj({"error": string(), "quarantine_id": integer(minimum=1)}),
    ]},
    "QuarantineItem": obj({
        "id": integer(minimum=1), "source": string("the feed's name, or staff-api (posted)"),
        "reason": string(),
        "raw": string("the beginning of the raw input (4,096 bytes in a list, 64 KiB alone) "
                      "as UTF-8 text: bytes that are not UTF-8 are U+FFFD. Hostile input: "
                      "show it as text, never as markup"),
        "raw_utf8": {"type": "boolean", "description": "the bytes shown are valid UTF-8"},
        "raw_size": {**COUNT, "description": "the whole input's size in bytes"},
        "truncated": {"type": "boolean", "description": "raw is only its beginning"},
        "received_at": TIMESTAMP,
    }),
    "FeedHealth": obj({
        "name": string(), "kind": string(), "url": string(),
        "last_success": nullable(TIMESTAMP), "last_error": nullable(string()),
        "last_error_at": nullable(TIMESTAMP), "failures": COUNT, "items_seen": COUNT,
        "items_skipped": {**COUNT, "description": "index entries with nothing to take"},
        "next_at": TIMESTAMP, **_HELD,
    }),
    "CapReceived": obj({
        "sender": string(), "identifier": string(), "sent": TIMESTAMP,
        "status": string("CAP status: Actual, Exercise, Test, System"),
        "msg_type": string("CAP msgType: Alert, Update, Cancel, Ack, Error"),
        "source": string("the feed's name, or staff-api (posted)"),
        "outcome": string(enum=_OUTCOMES), "detail": string(),
        "order_id": nullable(UUID), "received_at": TIMESTAMP,
    }),
    "CapOrder": obj({
        "state": string(enum=list(orders.STATES)), "version": integer(minimum=1),
        "exercise": {"type": "boolean"}, "level": ref("Level"), "hazard": ref("Hazard"),
        "headline": {"type": "object", "additionalProperties": string()},
        "expires_at": TIMESTAMP,
        "area": {"oneOf": [_GEOJSON_POLYGON, _GEOJSON_MULTI, _CIRCLE, _CODES],
                 "description": "the current version's area as stored (a CAP message's "
                                "area is GeoJSON)"},
    }, optional={"area"}),
    "StaffShelter": {
        **openapi_mobile.SCHEMAS["Shelter"],
        "properties": {**openapi_mobile.SCHEMAS["Shelter"]["properties"],
                       "municipality_code": nullable(string(pattern="^[0-9]{6}$")),
                       "status_by": nullable(string("staff, or the feed's name that last "
                                                    "reported its state; null: never")),
                       "updated_at": TIMESTAMP},
        "required": [*openapi_mobile.SCHEMAS["Shelter"]["required"], "municipality_code",
                     "status_by", "updated_at"],
    },
    "ShelterTotals": obj({
        "shelters": COUNT,
        "by_status": obj({s: COUNT for s in shelters.STATUSES}),
        "evacuees": {**COUNT, "description": "reported in open and full shelters"},
        "open_capacity": {**COUNT, "description": "the stated capacity of the open and full "
                                                  "ones"},
    }, description="Over every shelter the words, hazard and municipality match, whatever "
                   "its status."),
    "ShelterStatusChange": obj({
        "status": string(enum=list(shelters.STATUSES)),
        "crowding": nullable(string(enum=list(shelters.CROWDING))),
        "evacuees": nullable(integer(minimum=0, maximum=1_000_000)),
    }, optional={"crowding", "evacuees"}),
    "ShelterStatus": {
        **openapi_mobile.SCHEMAS["Shelter"],
        "properties": {**openapi_mobile.SCHEMAS["Shelter"]["properties"],
                       "opened": {"type": "boolean", "description": "this change opened it"}},
        "required": [*openapi_mobile.SCHEMAS["Shelter"]["required"], "opened"],
    },
}

_QUARANTINE_ID = path_param("quarantine_id", integer(minimum=1), "the item's id")
_ORDER = path_param("order_id", UUID, "the order's id (anything else names no order: 404)")
_ORDER_EXAMPLE = {"level": 4, "hazard": "flood", "area": {"area_codes": ["072010"]},
                  "headline": {"ja": "阿武隈川が氾濫のおそれ", "en": "The Abukuma may flood"}}


_CREATED_HEADERS = {"Location": {"schema": string(), "required": True,
                                 "description": "the order's URL"},
                    "Idempotent-Replayed": REPLAYED}


def _body(schema: str, example: object = None) -> Schema:
    return {"required": True, "content": json_content(ref(schema), example)}


def _staff(operation_id: str, summary: str, role: str, tag: str = TAG_ORDERS,
           **kwargs: Any) -> Schema:
    return operation(operation_id, summary, tag=tag, security="staff", role=role, **kwargs)


PATHS: dict[str, Schema] = {
    "/v1/staff/orders:preview": {"post": _staff(
        "previewOrder", "How many devices an order would reach", "viewer", errors=(),
        body=_body("OrderRequest", _ORDER_EXAMPLE),
        answers={"200": answer("The reach, by municipality; nothing is sent.",
                               ref("Preview"))})},
    "/v1/staff/orders": {
        "post": _staff(
            "issueOrder", "Issue an evacuation order", "operator", errors=(),
            parameters=[IDEMPOTENCY_KEY], body=_body("OrderRequest", _ORDER_EXAMPLE),
            answers={"201": answer("Issued: the order is stored and its pushes queued.",
                                   ref("OrderCreated"), headers=_CREATED_HEADERS),
                     "202": answer("Held: a level of orders.approval_levels, or more devices "
                                   "than orders.approval_over_devices; nothing is sent until "
                                   "another operator approves it.", ref("OrderHeld"),
                                   headers=_CREATED_HEADERS)}),
        "get": _staff(
            "listOrders", "Orders, newest first, with their delivery counts", "viewer",
            errors=(), parameters=[query_param(
                "state", string(enum=list(staff_orders.LIST_STATES), default="active"),
                "which orders")],
            answers={"200": answer("The orders (pending_approval: the held requests).",
                                   obj({"orders": array({"anyOf": [
                                       ref("OrderSummary"), ref("PendingOrder")]})}))}),
    },
    "/v1/staff/orders/{order_id}": {
        "parameters": [_ORDER],
        "get": _staff("getOrder", "The order with its delivery counts", "viewer",
                      errors=PATH, answers={"200": answer(
                          "The order; one held before it was ever issued (or rejected so) "
                          "answers as the held request.",
                          {"anyOf": [ref("Order"), ref("PendingOrder")]})}),
        "patch": _staff(
            "amendOrder", "A new version of the order", "operator", errors=(*PATH, "409"),
            body=_body("OrderChange", {"level": 5}),
            answers={"200": answer("The new version and whom it notified: newly covered "
                                   "devices, and covered ones when the level rose.",
                                   ref("OrderAmended")),
                     "202": answer("Held: a raise to a level of orders.approval_levels, or "
                                   "a widening beyond orders.approval_over_devices devices; "
                                   "the order stays as it is until another operator "
                                   "approves.", ref("OrderHeld"))},
            description="409 when the order was lifted or changed meanwhile, or when a "
                        "change of it already waits for approval."),
    },
    "/v1/staff/orders/{order_id}/lift": {
        "parameters": [_ORDER],
        "post": _staff("liftOrder", "Lift (解除) the order", "operator", errors=(*PATH, "409"),
                       answers={"200": answer("Lifted: every device that received the order "
                                              "is told, nobody else.", ref("OrderLifted"))},
                       description="409 when it was lifted already.")},
    "/v1/staff/cap": {"post": _staff(
        "postCap", "Post a CAP 1.1/1.2 message", "operator", tag=TAG_FEEDS, errors=(),
        body={"required": True, "content": {t: {"schema": string()}
                                             for t in staff_feeds.CAP_TYPES}},
        answers={
            "202": answer("What became of the message.", ref("CapIntake")),
            "400": {"description": "The message was refused (and quarantined), the body is "
                                   "not what its Content-Encoding says, or the Content-Type "
                                   "is not a CAP one (both quarantined too).",
                    "content": json_content({"anyOf": [ref("CapRejected"), ref("Error")]})},
            "413": {"description": "The document (or what it expands to) is larger than "
                                   "cap.max_bytes; its first 256 KiB are quarantined.",
                    "content": json_content({"anyOf": [ref("CapRejected"), ref("Error")]})},
            "415": {"description": "A Content-Encoding other than gzip or deflate "
                                   "(quarantined).",
                    "content": json_content({"anyOf": [ref("CapRejected"), ref("Error")]})},
        })},
    "/v1/staff/quarantine": {"get": _staff(
        "listQuarantine", "Refused feed inputs, newest first", "viewer", tag=TAG_FEEDS,
        errors=(), parameters=[
            query_param("limit", integer(minimum=1, maximum=500, default=50), "at most"),
            query_param("before", integer(minimum=1, maximum=2**62), "only ids below it "
                        "(the last id of the previous page)"),
        ],
        answers={"200": answer("The items.", obj({"items": array(ref("QuarantineItem"))}))})},
    "/v1/staff/quarantine/{quarantine_id}": {
        "parameters": [_QUARANTINE_ID],
        "get": _staff("getQuarantined", "One refused feed input, with its reason", "viewer",
                      tag=TAG_FEEDS, errors=PATH,
                      answers={"200": answer("The item; raw holds its first 64 KiB.",
                                             ref("QuarantineItem"))},
                      description="404 when there is none (or it was purged).")},
    "/v1/staff/quarantine/{quarantine_id}/raw": {
        "parameters": [_QUARANTINE_ID],
        "get": _staff("getQuarantinedRaw", "A refused input's bytes, as a download", "viewer",
                      tag=TAG_FEEDS, errors=PATH, answers={"200": {
                          "description": "The bytes as kept (at most 256 KiB), as an "
                                         "attachment, never to be shown as a page.",
                          "content": {"application/octet-stream": {
                              "schema": string(contentMediaType="application/octet-stream")}}}},
                      description="404 when there is none (or it was purged).")},
    "/v1/staff/cap/messages": {"get": _staff(
        "listCapMessages", "The CAP messages received, newest first", "viewer", tag=TAG_FEEDS,
        errors=(), parameters=[
            query_param("limit", integer(minimum=1, maximum=200, default=50), "at most"),
            query_param("cursor", string(), "the cursor of the previous page"),
            query_param("areas", {"type": "boolean", "default": True},
                        "false: the orders without their areas"),
        ],
        answers={"200": answer(
            "The messages (posted or polled) and what became of each; the orders they made or "
            "changed, each once, as they stand now; cursor: null on the last page. Refused "
            "messages are in the quarantine instead.",
            obj({"messages": array(ref("CapReceived")),
                 "orders": {"type": "object", "additionalProperties": ref("CapOrder"),
                            "description": "order id -> the order"},
                 "cursor": nullable(string())}))})},
    "/v1/staff/feeds": {"get": _staff(
        "listFeeds", "Health of every polled feed", "viewer", tag=TAG_FEEDS, errors=(),
        answers={"200": answer("The feeds; posted: the quarantine of CAP posted to the API.",
                               obj({"feeds": array(ref("FeedHealth")),
                                    "posted": obj({"source": {"const": "staff-api"},
                                                   **_HELD})}))})},
    "/v1/staff/shelters": {"get": _staff(
        "listShelters", "Search the shelters, with their totals", "viewer", tag=TAG_FEEDS,
        errors=(), parameters=[
            query_param("q", string(maxLength=staff_shelters.MAX_TEXT),
                        "words found in the name, address or id (NFKC-folded: 全角 and 半角 "
                        "alike; case ignored)"),
            query_param("status", string(pattern="^[a-z_]+(,[a-z_]+)*$"),
                        f"one or more of {', '.join(shelters.STATUSES)}, comma-separated"),
            query_param("hazard", ref("Hazard"), "only shelters designated for it"),
            query_param("municipality", string(pattern="^[0-9]{5,7}$"),
                        "only shelters of this municipality (5, 6 or 7-digit code)"),
            query_param("sort", string(enum=list(shelters.SORTS), default="name"),
                        "name: by municipality, then name; status_at: latest report first; "
                        "evacuees: most first"),
            query_param("limit", integer(minimum=1, maximum=staff_shelters.MAX_LIMIT,
                                         default=100), "at most"),
            query_param("offset", integer(minimum=0, maximum=staff_shelters.MAX_OFFSET,
                                          default=0), "shelters to skip"),
        ],
        answers={"200": answer(
            "A page of the matching shelters; matched: how many in all; next_offset: null on "
            "the last page.",
            obj({"shelters": array(ref("StaffShelter")), "matched": COUNT, "offset": COUNT,
                 "next_offset": nullable(COUNT), "totals": ref("ShelterTotals")}))})},
    "/v1/staff/warnings": {"get": _staff(
        "listWarnings", "JMA warnings in force in the prefecture", "viewer", tag=TAG_FEEDS,
        errors=(), answers={"200": answer("The warnings, by area.", obj({
            "warnings": array(ref("Warning"))}))})},
    "/v1/staff/shelters/{shelter_id}/status": {
        "parameters": [path_param("shelter_id", string(), "the shelter's id")],
        "put": _staff(
            "putShelterStatus", "Open, close or mark a shelter full", "operator",
            tag=TAG_FEEDS, errors=PATH, body=_body("ShelterStatusChange", {
                "status": "open", "crowding": "low", "evacuees": 12}),
            answers={"200": answer(
                "The shelter after the change; opened: this change opened it (residents "
                "nearby in an order's area are told).",
                ref("ShelterStatus"))})},
}

_TIP_ID = string("a tip's id in the catalogue", minLength=1, maxLength=tc.MAX_ID_LEN,
                 pattern="^[a-z0-9-]+$")
_LANGUAGE = string(enum=list(tc.LANGUAGES))
SCHEMAS.update({
    "Tip": obj({
        "id": _TIP_ID,
        "hazards": array(string(enum=list(tc.HAZARD_TAGS))),
        "months": array(integer(minimum=1, maximum=12),
                        description="the months it is sent in; empty: all year"),
        "audience": array(string(enum=list(tc.AUDIENCES)),
                          description="households it is meant for; empty: everyone"),
        "link": nullable(string()),
        "texts": {"type": "object", "required": list(tc.REQUIRED),
                  "propertyNames": _LANGUAGE, "additionalProperties": string(),
                  "description": "language -> text (other languages get ja)"},
    }),
    "TipPreview": obj({
        "device_id": UUID,
        "tip": {**nullable(ref("Tip")), "description": "null: none (see reason)"},
        "language": nullable(_LANGUAGE),
        "title": nullable(string()), "body": nullable(string()),
        "rotation_restarts": {"type": "boolean",
                              "description": "the device has seen every tip fitting it"},
        "handled_this_week": {"type": "boolean",
                              "description": "this week's send already passed the device"},
        "reason": {**nullable(string()), "description": "why it would get none"},
    }),
    "TipSendRequest": obj({"device_id": UUID, "tip_id": _TIP_ID}, optional={"tip_id"},
                          description="tip_id left out: the device's next tip"),
    "TipSent": obj({"device_id": UUID, "tip_id": _TIP_ID, "language": _LANGUAGE,
                    "due_at": {**TIMESTAMP,
                               "description": "now, or the end of the device's quiet hours"}}),
})
PATHS.update({
    "/v1/staff/tips": {"get": _staff(
        "listTips", "The weekly tips catalogue", "viewer", tag=TAG_TIPS, errors=(),
        answers={"200": answer("Every tip, in catalogue order.",
                               obj({"tips": array(ref("Tip"))}))})},
    "/v1/staff/tips/next": {"get": _staff(
        "nextTip", "The tip a device would get next", "viewer", tag=TAG_TIPS, errors=PATH,
        parameters=[{**query_param("device_id", UUID, "the device"), "required": True}],
        answers={"200": answer("The tip (with its text in the device's language), or null "
                               "with the reason; nothing is recorded.", ref("TipPreview"))},
        description="404 when there is no such device.")},
    "/v1/staff/tips/send": {"post": _staff(
        "sendTip", "Send one tip to one device now", "admin", tag=TAG_TIPS,
        errors=("404", "409"), body=_body("TipSendRequest", {
            "device_id": "6f1c2a9e-0d4b-4c1e-9a57-3b2d8e4f7a10", "tip_id": "level-4"}),
        answers={"202": answer("Queued: a `tip` push (priority 5, passive), due now or at "
                               "the end of the device's quiet hours; it counts in the "
                               "device's rotation.", ref("TipSent"))},
        description="404 when there is no such device; 409 when it turned tips off, its "
                    "push token was refused, or no tip fits it; 422 for an unknown tip.")},
})
