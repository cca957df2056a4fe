"""Evacuation orders as domain values, parsed from staff requests (pure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import shapely

from alertd import errors, settings, validate
from geo import areas, municipalities
from geo import errors as geo_errors

HAZARDS = (
    "flood", "landslide", "storm_surge", "earthquake", "tsunami", "fire", "inland_flood", "volcano",
)
LEVELS = (3, 4, 5)
# An order is active until lifted (解除) or, past its expires_at, expired (housekeeping).
STATES = ("active", "lifted", "expired")
MAX_HEADLINE = 200
MAX_INSTRUCTION = 2000
_FIELDS = {"level", "hazard", "area", "headline", "instruction", "expires_at"}
# The delivery counts the contract names, for the order as a whole (alertd.progress).
COUNTS = ("matched", "sent", "pending", "failed", "invalid_token")


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What staff (or a feed) asked for: one version of an order."""

    level: int
    hazard: str
    area: areas.Area
    area_json: dict[str, Any]
    headline: dict[str, str]
    instruction: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Order:
    """An order as stored: its id, current version and state."""

    id: uuid.UUID
    version: int
    state: str
    source: str
    spec: OrderSpec
    created_at: datetime
    exercise: bool = False


def parse_area(raw: Any, table: municipalities.Table, cfg: settings.Orders) -> areas.Area:
    """An area from request JSON, with geometry errors as InvalidInput."""
    try:
        return areas.parse_area(
            raw, table, max_vertices=cfg.max_vertices, max_area_km2=cfg.max_area_km2,
            circle_segments=cfg.circle_segments,
            max_self_intersections=cfg.max_self_intersections,
        )
    except geo_errors.GeoError as exc:
        raise errors.InvalidInput(f"area: {exc.reason}") from exc


def served_area(raw: Any, table: municipalities.Table, cfg: settings.Orders) -> areas.Area:
    """A new area from request JSON: parsed, and refused when it lies wholly outside the
    prefecture served. (Stored areas are re-read with :func:`parse_area` alone: an order
    accepted once stays readable and liftable.)"""
    area = parse_area(raw, table, cfg)
    try:
        areas.check_served(area.geometry, table)
    except geo_errors.GeoError as exc:
        raise errors.InvalidInput(f"area: {exc.reason}") from exc
    return area


def _texts(raw: Any, key: str, max_len: int, required: bool) -> dict[str, str]:
    if raw is None and not required:
        return {}
    if isinstance(raw, str):
        raw = {"ja": raw}
    if not isinstance(raw, dict) or (required and not raw):
        raise errors.InvalidInput(
            f"{key} must be an object of language -> text, e.g. {{\"ja\": …}}")
    out: dict[str, str] = {}
    for lang, value in raw.items():
        validate.locale(lang)
        if not isinstance(value, str) or not value.strip():
            raise errors.InvalidInput(f"{key}.{lang} must be a non-empty string")
        if len(value) > max_len:
            raise errors.InvalidInput(f"{key}.{lang} must be at most {max_len} characters")
        out[lang] = value.strip()
    return out


def _level(raw: Any) -> int:
    if type(raw) is not int or raw not in LEVELS:  # not 4.0, not True
        raise errors.InvalidInput("level must be 3, 4 or 5")
    return int(raw)


def _hazard(raw: Any) -> str:
    if raw not in HAZARDS:
        raise errors.InvalidInput(f"hazard must be one of {', '.join(HAZARDS)}")
    return str(raw)


def _expiry(raw: Any, cfg: settings.Orders, now: datetime) -> datetime:
    if raw is None:
        return now + timedelta(seconds=cfg.default_ttl_s)
    expires = validate.timestamp(raw, "expires_at")
    if expires <= now:
        raise errors.InvalidInput("expires_at must be in the future")
    if expires > now + timedelta(seconds=cfg.max_ttl_s):
        raise errors.InvalidInput(f"expires_at must be within {cfg.max_ttl_s} seconds from now")
    return expires


def parse_spec(body: Any, table: municipalities.Table, cfg: settings.Orders,
               now: datetime) -> OrderSpec:
    """An order version from a `POST /v1/staff/orders` body."""
    body = validate.obj(body)
    validate.only(body, _FIELDS)
    for key in ("level", "hazard", "area", "headline"):
        if key not in body:
            raise errors.InvalidInput(f"{key} is required")
    level = _level(body["level"])
    hazard = _hazard(body["hazard"])
    area = served_area(body["area"], table, cfg)
    return OrderSpec(
        level=level, hazard=hazard, area=area, area_json=area_json(area, body["area"]),
        headline=_texts(body["headline"], "headline", MAX_HEADLINE, True),
        instruction=_texts(body.get("instruction"), "instruction", MAX_INSTRUCTION, False),
        expires_at=_expiry(body.get("expires_at"), cfg, now),
    )


def parse_patch(body: Any, current: OrderSpec, table: municipalities.Table,
                cfg: settings.Orders, now: datetime) -> OrderSpec:
    """The next version of an order from a `PATCH` body (only the fields given change)."""
    body = validate.obj(body)
    validate.only(body, _FIELDS)
    if not body:
        raise errors.InvalidInput("nothing to change: give level, hazard, area, headline, "
                                  "instruction or expires_at")
    spec = current
    if "level" in body:
        spec = replace(spec, level=_level(body["level"]))
    if "hazard" in body:
        spec = replace(spec, hazard=_hazard(body["hazard"]))
    if "area" in body:
        area = served_area(body["area"], table, cfg)
        spec = replace(spec, area=area, area_json=area_json(area, body["area"]))
    if "headline" in body:
        spec = replace(spec, headline=_texts(body["headline"], "headline", MAX_HEADLINE, True))
    if "instruction" in body:
        spec = replace(spec, instruction=_texts(body["instruction"], "instruction",
                                                MAX_INSTRUCTION, False))
    if "expires_at" in body:
        spec = replace(spec, expires_at=_expiry(body["expires_at"], cfg, now))
    if spec == current:
        raise errors.InvalidInput("the change leaves the order as it is")
    return spec


def small(body: Any, cfg: settings.Compute) -> bool:
    """Whether an order body's area is small enough to parse on the event loop."""
    area = body.get("area") if isinstance(body, dict) else None
    return areas.positions(area) <= cfg.inline_max_positions


def spec_job(table: municipalities.Table,
             arg: tuple[Any, settings.Orders, datetime]) -> OrderSpec:
    """:func:`parse_spec` as a compute job (see :mod:`alertd.compute`)."""
    body, cfg, now = arg
    return parse_spec(body, table, cfg, now)


def patch_job(table: municipalities.Table,
              arg: tuple[Any, OrderSpec, settings.Orders, datetime]) -> OrderSpec:
    """:func:`parse_patch` as a compute job."""
    body, current, cfg, now = arg
    return parse_patch(body, current, table, cfg, now)


def preview_job(table: municipalities.Table, arg: tuple[Any, settings.Orders, datetime]
                ) -> tuple[OrderSpec, dict[str, shapely.Geometry]]:
    """:func:`parse_spec` and the area cut along municipal borders, as a compute job."""
    spec = spec_job(table, arg)
    return spec, table.split(spec.area.geometry, spec.area.area_codes)


def split_job(table: municipalities.Table,
              arg: tuple[shapely.Geometry, tuple[str, ...]]) -> dict[str, shapely.Geometry]:
    """An area (geometry and codes) cut along municipal borders, as a compute job."""
    geometry, codes = arg
    return table.split(geometry, codes)


def coarse(count: int, minimum: int) -> int | str:
    """A count as a preview may show it: exact from ``minimum`` up, else "fewer than N"
    (a minimum of 0 or 1 shows every count).

    Below the minimum the number would locate people: a preview with a tiny circle at a
    house answers whether someone lives there."""
    return count if count >= minimum or minimum <= 1 else f"fewer than {minimum}"


def area_json(area: areas.Area, raw: Any) -> dict[str, Any]:
    """The stored form of an area: codes and circles as given, polygons as repaired GeoJSON."""
    if area.kind == "codes":
        return {"area_codes": list(area.area_codes)}
    if area.kind == "circle":
        circle = raw["circle"]
        return {"circle": {k: circle[k] for k in ("lat", "lon", "radius_m")}}
    return areas.to_geojson(area)


def spec_from_row(row: Any, table: municipalities.Table, cfg: settings.Orders) -> OrderSpec:
    """Rebuild a stored order version (its area re-parsed from the stored JSON)."""
    return OrderSpec(
        level=row["level"], hazard=row["hazard"], area=parse_area(row["area"], table, cfg),
        area_json=row["area"], headline=row["headline"], instruction=row["instruction"],
        expires_at=row["expires_at"],
    )


def as_json(order: Order, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The order as the staff API shows it."""
    spec = order.spec
    out: dict[str, Any] = {
        "id": str(order.id), "version": order.version, "state": order.state,
        "source": order.source, "exercise": order.exercise, "level": spec.level,
        "hazard": spec.hazard,
        "area": spec.area_json, "headline": spec.headline, "instruction": spec.instruction,
        "expires_at": spec.expires_at.isoformat(), "created_at": order.created_at.isoformat(),
    }
    if counts is not None:
        # The contract names the counts without saying where they sit: both places.
        out["deliveries"] = counts
        out.update({k: counts[k] for k in COUNTS})
    return out


def audit_view(spec: OrderSpec, **facts: Any) -> dict[str, Any]:
    """An order version as the audit trail keeps it: level, hazard, area (municipality codes
    and circles as given; a polygon by its kind, vertex count and bounds: the order's
    versions keep the whole of it), headline and expiry; `facts` (version, state) added."""
    area = spec.area
    shown: dict[str, Any]
    if area.kind in ("codes", "circle"):
        shown = dict(spec.area_json)
    else:
        shown = {"kind": area.kind, "vertices": int(shapely.get_num_coordinates(area.geometry)),
                 "bounds": [round(b, 6) for b in area.geometry.bounds]}
    return {**facts, "level": spec.level, "hazard": spec.hazard, "area": shown,
            "area_codes": list(area.area_codes), "headline": spec.headline,
            "expires_at": spec.expires_at.isoformat()}
