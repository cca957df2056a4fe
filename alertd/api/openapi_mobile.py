"""The OpenAPI description of the mobile API (alertd/api/mobile.py): registration, the
device's settings, location, places, inbox and warnings, and shelters nearby."""

from __future__ import annotations

from alertd import devices, orders, shelters, validate
from alertd.api import mobile
from alertd.api.openapi_common import (
    COUNT,
    LATITUDE,
    LONGITUDE,
    PATH,
    THROTTLED,
    TIMESTAMP,
    UUID,
    Schema,
    anchored,
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
from alertd.delivery import push

TAG = "mobile"

_TOKEN = string("the APNs device token or FCM registration token: printable ASCII, no spaces",
                minLength=1, maxLength=mobile.MAX_TOKEN, pattern=r"^[\x21-\x7e]+$")
_CLOCK = string("a time of day, HH:MM", pattern=anchored(validate.TIME_RE.pattern))
_QUIET = obj({"start": _CLOCK, "end": _CLOCK},
             description="No tip is sent between start and end (read in the device's "
                         "time_zone; end may be the next day): it waits until end. The two "
                         "differ. Evacuation orders are never held back.")
_LABEL = string(minLength=1, maxLength=100)
_AREA_CODE = string("a municipality (6 digits) or JMA sub-area (7 digits) code of the "
                    "prefecture served", pattern="^[0-9]{6,7}$")
_PLACE_ID = string("chosen by the phone", pattern=anchored(validate.ID_RE.pattern))

_TIME_ZONE = string("an IANA time zone, e.g. Asia/Tokyo: the one quiet hours are read in",
                    minLength=1, maxLength=64)

SCHEMAS: dict[str, Schema] = {
    "Registration": obj({
        "platform": string(enum=["ios", "android"]),
        "push_token": _TOKEN,
        "locale": {**ref("Locale"), "description": "default ja"},
    }, optional={"locale"}),
    "Registered": obj({
        "device_id": UUID,
        "device_secret": string("the device's bearer credential; shown this once, stored "
                                "only hashed"),
    }),
    "DeviceChange": obj({
        "push_token": _TOKEN,
        "locale": ref("Locale"),
        "tips": {"type": "boolean", "description": "weekly disaster-knowledge tips"},
        "drill": {"type": "boolean", "description": "take part in drills (exercise orders)"},
        "quiet_hours": nullable(_QUIET),
        "time_zone": nullable(_TIME_ZONE),
    }, optional={"push_token", "locale", "tips", "drill", "quiet_hours", "time_zone"},
        description="Any of the settings; null quiet_hours removes them, a null time_zone "
                    "goes back to the service's (scheduler.timezone, Asia/Tokyo by default). An "
                    "unknown time zone is a 422."),
    "Device": obj({
        "device_id": UUID,
        "platform": string(enum=["ios", "android"]),
        "locale": ref("Locale"),
        "tips": {"type": "boolean"},
        "quiet_hours": nullable(_QUIET),
        "time_zone": {**nullable(_TIME_ZONE), "description": "null: the service's"},
        "drill": {"type": "boolean"},
        "push_enabled": {"type": "boolean",
                         "description": "false once the push service refused the token"},
    }),
    "PlaceRequest": {"oneOf": [
        obj({"label": _LABEL, "lat": LATITUDE, "lon": LONGITUDE}),
        obj({"label": _LABEL, "area_code": _AREA_CODE}),
    ], "description": "A point or a municipality to watch."},
    "Place": {"oneOf": [
        obj({"place_id": _PLACE_ID, "label": _LABEL, "lat": LATITUDE, "lon": LONGITUDE}),
        obj({"place_id": _PLACE_ID, "label": _LABEL, "area_code": _AREA_CODE}),
    ]},
    "Location": obj({
        "lat": LATITUDE, "lon": LONGITUDE,
        "accuracy_m": nullable({"type": "number", "minimum": 0, "maximum": 100_000,
                                "description": "the fix's accuracy radius, in metres"}),
    }, optional={"accuracy_m"}),
    "InboxEntry": obj({
        "id": string("the entry's id (PUT /v1/me/alerts/{entry_id}/read)",
                     pattern="^[1-9][0-9]*$"),
        "alert_id": string("the order's id, or the alert's for other kinds"),
        "version": integer("the order's version (0: the alert is not an order, e.g. a tip)",
                           minimum=0),
        "kind": string(enum=sorted(push.KINDS)),
        "level": nullable(ref("Level")),
        "title": string(),
        "body": string(),
        "order_state": nullable(string("the order's state now (null: not an order)",
                                       enum=list(orders.STATES))),
        "at": TIMESTAMP,
        "read": {"type": "boolean", "description": "marked read by the device"},
    }),
    "Warning": obj({
        "area_code": string(),
        "area_name": string(),
        "kind": string("the warning kind's name (e.g. 大雨警報)"),
        "kind_code": string(),
        "status": string("the JMA status (e.g. 発表, 継続)"),
        "level_equivalent": nullable(integer("警戒レベル相当", minimum=1, maximum=5)),
        "warning_type": string(),
        "report_datetime": TIMESTAMP,
    }, description="A JMA warning kind in force in one area."),
    "Shelter": obj({
        "id": string(),
        "name": string(),
        "address": string(),
        "lat": LATITUDE,
        "lon": LONGITUDE,
        "hazards": array(ref("Hazard"), description="the hazards it is designated for"),
        "capacity": nullable(COUNT),
        "status": string(enum=list(shelters.STATUSES)),
        "crowding": nullable(string(enum=list(shelters.CROWDING))),
        "evacuees": nullable(COUNT),
        "status_at": nullable(TIMESTAMP),
    }),
}
SCHEMAS["DeviceWithPlaces"] = {
    **SCHEMAS["Device"],
    "properties": {**SCHEMAS["Device"]["properties"],
                   "places": array(ref("Place"), maxItems=devices.MAX_PLACES)},
    "required": [*SCHEMAS["Device"]["required"], "places"],
}
SCHEMAS["NearbyShelter"] = {
    **SCHEMAS["Shelter"],
    "properties": {**SCHEMAS["Shelter"]["properties"],
                   "distance_m": {"type": "number", "minimum": 0,
                                  "description": "great-circle distance, in metres"}},
    "required": [*SCHEMAS["Shelter"]["required"], "distance_m"],
}

_PLACE = path_param("place_id", _PLACE_ID, "the place's id, chosen by the phone")


def _body(schema: str, example: object = None) -> Schema:
    return {"required": True, "content": json_content(ref(schema), example)}


PATHS: dict[str, Schema] = {
    "/v1/devices": {"post": operation(
        "registerDevice", "Register a phone", tag=TAG, errors=THROTTLED,
        answers={"201": answer("Registered: keep the secret; it is not shown again.",
                               ref("Registered"))},
        body=_body("Registration", {"platform": "ios", "push_token": "a1b2c3", "locale": "ja"}),
        description="A push token belongs to one device: registering it again (the app "
                    "reinstalled) takes it from the older device. Rate limited per client "
                    "address.")},
    "/v1/me": {
        "get": operation("getDevice", "The device's settings and places", tag=TAG,
                         security="device", errors=(),
                         answers={"200": answer("The device.", ref("DeviceWithPlaces"))}),
        "patch": operation("updateDevice", "Change push token, locale, tips, drills or quiet "
                           "hours", tag=TAG, security="device", errors=(),
                           body=_body("DeviceChange", {"quiet_hours": {"start": "22:00",
                                                                       "end": "07:00"}}),
                           answers={"200": answer("The device after the change.",
                                                  ref("Device"))}),
        "delete": operation("deleteDevice", "Erase the device", tag=TAG, security="device",
                            errors=(), answers={"204": answer(
                                "Erased, with its places, location, sheets and inbox.")}),
    },
    "/v1/me/location": {
        "put": operation("putLocation", "Share the current location", tag=TAG,
                         security="device", errors=(),
                         body=_body("Location", {"lat": 37.75, "lon": 140.47,
                                                 "accuracy_m": 30}),
                         answers={"204": answer("Stored; matched within a second.")},
                         description="Rate limited per device, on top of the device limit."),
        "delete": operation("deleteLocation", "Stop sharing the location", tag=TAG,
                            security="device", errors=(),
                            answers={"204": answer("The stored location is erased.")}),
    },
    "/v1/me/places/{place_id}": {
        "parameters": [_PLACE],
        "put": operation("putPlace", "Watch a point or a municipality", tag=TAG,
                         security="device", errors=(*PATH, "409"),
                         body=_body("PlaceRequest", {"label": "実家", "area_code": "072010"}),
                         answers={"200": answer("The place, created or replaced.",
                                                ref("Place"))},
                         description=f"At most {devices.MAX_PLACES} places: another is a "
                                     "409."),
        "delete": operation("deletePlace", "Stop watching a place", tag=TAG,
                            security="device", errors=PATH,
                            answers={"204": answer("No longer watched.")}),
    },
    "/v1/me/alerts": {"get": operation(
        "listAlerts", "The device's inbox, newest first", tag=TAG, security="device",
        errors=(), answers={"200": answer("The inbox.", obj({"alerts": array(
            ref("InboxEntry"))}))})},
    "/v1/me/alerts/{entry_id}/read": {"put": operation(
        "readAlert", "Mark an inbox entry read", tag=TAG, security="device", errors=PATH,
        parameters=[path_param("entry_id", string(), "an inbox entry's id (anything else, "
                                                     "another device's or a cancelled one: 404)")],
        answers={"204": answer("Marked read; the next sync reports the entry again, read.")})},
    "/v1/me/warnings": {"get": operation(
        "listMyWarnings", "JMA warnings where the device is or watches", tag=TAG,
        security="device", errors=(),
        answers={"200": answer("Warnings in force, highest level first.",
                               obj({"warnings": array(ref("Warning"))}))})},
    "/v1/shelters": {"get": operation(
        "nearestShelters", "Shelters nearest first", tag=TAG, errors=THROTTLED,
        parameters=[
            {**query_param("lat", LATITUDE, "latitude of the point"), "required": True},
            {**query_param("lon", LONGITUDE, "longitude of the point"), "required": True},
            query_param("hazard", ref("Hazard"), "only shelters designated for it"),
            query_param("open", {"type": "boolean", "default": False},
                        "only open shelters (open or full)"),
            query_param("limit", integer(minimum=1, maximum=200, default=20),
                        "at most this many"),
        ],
        answers={"200": answer("Shelters with their distance, nearest first.",
                               obj({"shelters": array(ref("NearbyShelter"))}))})},
}
