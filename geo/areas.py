"""Order areas: staff JSON (GeoJSON polygon, circle, municipality codes) to validated geometry.

Everything a staff member can send is checked here and refused with a specific reason
(:class:`~geo.errors.InvalidArea`), which the API returns as a 422:

- GeoJSON positions are ``[lon, lat]`` pairs of finite numbers in range; rings are closed (never
  closed silently: an open ring usually means a truncated upload) and have 4+ positions.
- A self-intersecting polygon is repaired with ``shapely.make_valid`` (``structure`` method:
  shells united, holes cut out, spikes dropped), unless its edges meet at more points than
  ``max_self_intersections`` (counted first, cheaply: see :mod:`geo.crossings`), whose repair
  would cost seconds to minutes of CPU and hundreds of MB; and refused if the repair is empty or
  differs by more than 1 % of its area from the ground the rings enclose (filled shells minus
  filled holes), which catches rings whose repair would silently add or drop ground, such as
  a hole lying outside its shell.
- Areas are measured on the sphere with an equal-area projection (see :func:`area_km2`).
- Circles are built on the sphere, not buffered in degrees (see :func:`circle_polygon`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import shapely

from geo import crossings
from geo.errors import InvalidArea
from geo.municipalities import Table, polygonal, to_code6

Kind = Literal["polygon", "circle", "codes"]
MAX_RADIUS_M = 200_000.0
# Repairing up to this many crossings takes well under a second (a star of 45 vertices, or a
# 20,000-vertex outline with 1,000 small loops); a hand-drawn area has a handful.
MAX_SELF_INTERSECTIONS = 1000
_REPAIR_TOLERANCE = 0.01
_SHAPES = (
    "area must be a GeoJSON Polygon or MultiPolygon (or a Feature wrapping one), "
    '{"circle": {"lat", "lon", "radius_m"}} or {"area_codes": [...]}'
)

Ring = list[tuple[float, float]]
Floats = npt.NDArray[np.float64]

# The sphere of mean radius (IUGG); at prefecture scale its error against the ellipsoid
# (under 0.5 %) is far below what an evacuation area needs.
EARTH_RADIUS_M = 6_371_008.8


def destination(
    lon: float, lat: float, bearing_deg: Floats | float, distance_m: float
) -> tuple[Floats, Floats]:
    """The lon/lat reached from a point along the given bearings (degrees) and distance."""
    p1, l1 = math.radians(lat), math.radians(lon)
    theta = np.radians(np.asarray(bearing_deg, dtype=np.float64))
    delta = distance_m / EARTH_RADIUS_M
    sin_p2 = math.sin(p1) * math.cos(delta) + math.cos(p1) * math.sin(delta) * np.cos(theta)
    p2 = np.arcsin(np.clip(sin_p2, -1.0, 1.0))
    l2 = l1 + np.arctan2(
        np.sin(theta) * math.sin(delta) * math.cos(p1), math.cos(delta) - math.sin(p1) * sin_p2
    )
    return np.degrees(l2), np.degrees(p2)


def distances_m(lon: float, lat: float, lons: Floats, lats: Floats) -> Floats:
    """Great-circle distances in metres from one point to many (haversine; the same sphere
    as the shelter search in SQL)."""
    p1, p2 = math.radians(lat), np.radians(lats)
    h = (np.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2)
    out: Floats = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return out


def circle_polygon(lon: float, lat: float, radius_m: float, segments: int) -> shapely.Polygon:
    """A polygon of ``segments`` vertices circumscribing the spherical circle.

    The vertices lie at ``radius_m / cos(pi / segments)`` so that the chords between them stay
    outside the true circle: everyone within the radius is covered, by a margin of at most
    0.12 % of the radius at 64 segments.
    """
    bearings = np.arange(segments, dtype=np.float64) * (360.0 / segments)
    reach = radius_m / math.cos(math.pi / segments)
    x, y = destination(lon, lat, bearings, reach)
    ring = np.column_stack([x, y])
    return shapely.Polygon(np.vstack([ring, ring[:1]]))


def _equal_area(coords: Floats) -> Floats:
    """Lambert cylindrical equal-area projection of lon/lat coordinates, in metres."""
    out = np.empty_like(coords)
    out[:, 0] = EARTH_RADIUS_M * np.radians(coords[:, 0])
    out[:, 1] = EARTH_RADIUS_M * np.sin(np.radians(coords[:, 1]))
    return out


def area_km2(geometry: shapely.Geometry) -> float:
    """The area in km² on the sphere, via the Lambert cylindrical equal-area projection.

    The projection preserves area exactly; the only approximation is that edges, straight in
    lon/lat, are taken as straight in the projection, which is negligible for short edges.
    """
    return float(shapely.area(shapely.transform(geometry, _equal_area))) / 1e6


@dataclass(frozen=True, slots=True)
class Area:
    """The resolved area of an order, in lon/lat; ``area_codes`` only for kind "codes"."""

    kind: Kind
    geometry: shapely.Geometry
    area_codes: tuple[str, ...] = ()

    def to_geojson(self) -> dict[str, Any]:
        """The area's geometry as a GeoJSON object."""
        return to_geojson(self)


def to_geojson(area: Area) -> dict[str, Any]:
    """The area's geometry as a GeoJSON object."""
    doc: dict[str, Any] = json.loads(shapely.to_geojson(area.geometry))
    return doc


def parse_area(
    obj: object,
    table: Table,
    *,
    max_vertices: int = 20000,
    max_area_km2: float = 50000.0,
    circle_segments: int = 64,
    max_self_intersections: int = MAX_SELF_INTERSECTIONS,
) -> Area:
    """Validate the ``area`` of a staff order and resolve it to geometry."""
    if circle_segments < 8:
        raise ValueError("circle_segments must be at least 8")
    if not isinstance(obj, Mapping):
        raise InvalidArea("area must be a JSON object")
    shapes = [k for k in ("type", "circle", "area_codes") if k in obj]
    if len(shapes) != 1:
        raise InvalidArea(_SHAPES)
    if shapes[0] == "circle":
        return Area("circle", _circle(obj["circle"], circle_segments))
    if shapes[0] == "area_codes":
        return _codes(obj["area_codes"], table)
    geometry = _geojson(obj, max_vertices, max_self_intersections)
    size = area_km2(geometry)
    if size > max_area_km2:
        raise InvalidArea(
            f"the area is {size:.0f} km², more than the limit of {max_area_km2:g} km²"
        )
    shapely.prepare(geometry)
    return Area("polygon", geometry)


def check_served(geometry: shapely.Geometry, table: Table) -> None:
    """Refuse an area that touches none of the table's municipalities: it lies wholly outside
    the prefecture served, where nobody could be told (an area across its border is fine)."""
    if not table.intersecting(geometry):
        raise InvalidArea(
            "the area lies wholly outside the prefecture served (it touches none of its "
            "municipalities); check the coordinates: GeoJSON positions are [lon, lat], CAP "
            "polygons lat,lon")


def positions(obj: object) -> int:
    """How many positions a GeoJSON area holds (0 for circles, codes and malformed input).

    A cheap measure of the work parsing it will take, to decide where to do it; it checks
    nothing (:func:`parse_area` does)."""
    if isinstance(obj, Mapping) and obj.get("type") == "Feature":
        obj = obj.get("geometry")
    if not isinstance(obj, Mapping):
        return 0
    coords = obj.get("coordinates")
    if not isinstance(coords, list):
        return 0
    polygons = coords if obj.get("type") == "MultiPolygon" else [coords]
    return sum(len(ring) for rings in polygons if isinstance(rings, list)
               for ring in rings if isinstance(ring, list))


def _geojson(obj: Mapping[str, Any], max_vertices: int,
             max_self_intersections: int) -> shapely.Geometry:
    """A GeoJSON Polygon, MultiPolygon or Feature wrapping one, as valid geometry."""
    if obj.get("type") == "Feature":
        inner = obj.get("geometry")
        if not (isinstance(inner, Mapping) and "type" in inner):
            raise InvalidArea("the Feature has no geometry object")
        obj = inner
    kind, coords = obj.get("type"), obj.get("coordinates")
    reader = _Reader(max_vertices)
    if kind == "Polygon":
        polygons = [reader.polygon(coords, 0)]
    elif kind == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise InvalidArea("MultiPolygon coordinates must be a non-empty list of polygons")
        polygons = [reader.polygon(p, i) for i, p in enumerate(coords)]
    else:
        raise InvalidArea(f"unsupported GeoJSON type {kind!r}: expected Polygon or MultiPolygon")
    shapes = [shapely.Polygon(rings[0], rings[1:]) for rings in polygons]
    geometry = shapely.MultiPolygon(shapes) if kind == "MultiPolygon" else shapes[0]
    return _repair(geometry, polygons, max_self_intersections)


class _Reader:
    """Walks GeoJSON coordinates, checking them and counting vertices against a budget."""

    __slots__ = ("left", "limit")

    def __init__(self, max_vertices: int) -> None:
        self.limit = max_vertices
        self.left = max_vertices

    def polygon(self, coords: object, p: int) -> list[Ring]:
        """The rings of polygon ``p``."""
        if not isinstance(coords, list) or not coords:
            raise InvalidArea(f"polygon {p} must be a non-empty list of rings")
        return [self.ring(r, i, p) for i, r in enumerate(coords)]

    def ring(self, coords: object, r: int, p: int) -> Ring:
        """Ring ``r`` of polygon ``p``: checked positions, closed, 4 or more."""
        where = f"ring {r} of polygon {p}"
        if not isinstance(coords, list):
            raise InvalidArea(f"{where} must be a list of positions")
        self.left -= len(coords)
        if self.left < 0:
            raise InvalidArea(f"the area has more than {self.limit} vertices")
        ring = [_position(c, f"position {i} of {where}") for i, c in enumerate(coords)]
        if len(ring) < 4:
            raise InvalidArea(f"{where} has {len(ring)} positions; a closed ring needs at least 4")
        if ring[0] != ring[-1]:
            raise InvalidArea(f"{where} is not closed: first and last positions differ")
        return ring


def _number(value: object, what: str) -> float:
    """A finite JSON number (bools refused), else InvalidArea naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArea(f"{what} must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidArea(f"{what} is not a finite number")
    return number


def _lon_lat(lon: float, lat: float, where: str) -> None:
    """Refuse a longitude outside ±180 or a latitude outside ±90, saying which."""
    if not -180.0 <= lon <= 180.0:
        raise InvalidArea(f"{where}: longitude {lon:g} is outside -180..180")
    if not -90.0 <= lat <= 90.0:
        raise InvalidArea(f"{where}: latitude {lat:g} is outside -90..90")


def _position(value: object, where: str) -> tuple[float, float]:
    """One ``[lon, lat]`` position."""
    if not (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2):
        raise InvalidArea(f"{where} must be a [lon, lat] pair")
    lon, lat = _number(value[0], f"{where}: longitude"), _number(value[1], f"{where}: latitude")
    _lon_lat(lon, lat, where)
    return lon, lat


def _filled(ring: Ring) -> shapely.Geometry:
    """Everything a ring encloses, counting every loop of a self-crossing ring."""
    faces = shapely.polygonize(shapely.get_parts(shapely.union_all(shapely.LineString(ring))))
    return shapely.union_all(shapely.get_parts(faces))


def check_crossings(rings: Sequence[object], limit: int) -> None:
    """Refuse rings whose edges meet at more than ``limit`` points: too costly to repair."""
    if crossings.count(rings, limit) > limit:
        raise InvalidArea(
            f"the polygon intersects itself at more than {limit} points; repairing it would "
            "take too long: please redraw it without crossing edges"
        )


def _repair(geometry: shapely.Geometry, polygons: list[list[Ring]],
            max_self_intersections: int) -> shapely.Geometry:
    """The geometry itself if valid, else its repair if that keeps its ground."""
    if shapely.is_valid(geometry):
        return geometry
    check_crossings([ring for rings in polygons for ring in rings], max_self_intersections)
    fixed = polygonal(shapely.make_valid(geometry, method="structure", keep_collapsed=False))
    if shapely.is_empty(fixed) or shapely.area(fixed) <= 0.0:
        raise InvalidArea("area is empty: the polygon encloses no ground")
    enclosed = shapely.union_all(
        [
            shapely.difference(
                _filled(rings[0]), shapely.union_all([_filled(h) for h in rings[1:]])
            )
            for rings in polygons
        ]
    )
    expected = float(shapely.area(enclosed))
    moved = float(shapely.area(shapely.symmetric_difference(fixed, enclosed)))
    if expected <= 0.0 or moved > _REPAIR_TOLERANCE * expected:
        change = "all" if expected <= 0.0 else f"{moved / expected:.0%}"
        raise InvalidArea(
            f"the polygon intersects itself and repairing it would move {change} of its ground; "
            "please redraw it"
        )
    return fixed


def _circle(spec: object, segments: int) -> shapely.Geometry:
    """A circle on the sphere from ``{"lat", "lon", "radius_m"}``."""
    if not (isinstance(spec, Mapping) and all(k in spec for k in ("lat", "lon", "radius_m"))):
        raise InvalidArea("circle must be an object with lat, lon and radius_m")
    lat, lon = _number(spec["lat"], "circle lat"), _number(spec["lon"], "circle lon")
    radius = _number(spec["radius_m"], "circle radius_m")
    _lon_lat(lon, lat, "circle centre")
    if not 0.0 < radius <= MAX_RADIUS_M:
        raise InvalidArea(
            f"circle radius_m must be greater than 0 and at most {MAX_RADIUS_M:.0f}"
            f" (got {radius:g})"
        )
    reach_deg = math.degrees(radius / math.cos(math.pi / segments) / EARTH_RADIUS_M)
    if abs(lat) + reach_deg >= 90.0:
        raise InvalidArea("circle reaches a pole")
    geometry = circle_polygon(lon, lat, radius, segments)
    minx, _, maxx, _ = shapely.bounds(geometry)
    if minx < -180.0 or maxx > 180.0:
        raise InvalidArea("circle crosses the antimeridian (longitude ±180)")
    shapely.prepare(geometry)
    return geometry


def _codes(codes: object, table: Table) -> Area:
    """The union of municipalities or sub-areas from a list of 6/7-digit codes."""
    if not isinstance(codes, list) or not codes:
        raise InvalidArea("area_codes must be a non-empty list of area codes")
    pieces: dict[str, shapely.Geometry] = {}
    code6s: dict[str, None] = {}
    for i, code in enumerate(codes):
        if not isinstance(code, str):
            raise InvalidArea(f"area_codes[{i}] must be a string")
        if code not in pieces:
            pieces[code] = table.get(code)
            code6s[to_code6(code)] = None
    geometry = shapely.union_all(list(pieces.values()))
    shapely.prepare(geometry)
    return Area("codes", geometry, tuple(code6s))
