"""CAP ``area`` shapes: polygon and circle text to frozen values, and their geometry.

Shapes are repaired or dropped one by one; every repair or drop is appended to the caller's
``warnings``. Longitudes a little past ±180 (up to :data:`LON_SLACK_DEG`, seen in global
feeds) are moved to the other side, not dropped. Two kinds of polygon fail the message rather
than drop part of an evacuation area: one with stray characters, which is not a list of
``lat,lon`` pairs (:class:`~feeds.errors.InvalidMessage` from :func:`parse_polygon`), and one
that crosses itself too often to repair at a bearable cost (:func:`geo.areas.check_crossings`;
:func:`area_geometry` raises :class:`~geo.errors.InvalidArea`).
CAP polygons are ``lat,lon`` pairs; :class:`CapArea` keeps them as ``(lon, lat)`` like GeoJSON
and shapely. Geometry is built on the sphere for circles and cut at the antimeridian for
everything.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import affinity

from feeds.errors import InvalidMessage
from geo import areas as geoareas
from geo.municipalities import polygonal

Ring = tuple[tuple[float, float], ...]

MAX_VERTICES = 20_000
MAX_RADIUS_KM = 2_000.0
CIRCLE_SEGMENTS = 64
SHOWN = 60
# How far past ±180 a polygon's longitude may stray and still be read, as the same meridian
# seen from the other side (180.4 is -179.6); further is out of range and the polygon dropped.
LON_SLACK_DEG = 1.0

_NUMBER_TEXT = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_NUMBER = re.compile(_NUMBER_TEXT)
# Space-separated lat,lon pairs; no two parts can match the same text, so it runs in linear time.
_PAIRS = re.compile(rf"{_NUMBER_TEXT},{_NUMBER_TEXT}(?: {_NUMBER_TEXT},{_NUMBER_TEXT})*")


@dataclass(frozen=True, slots=True)
class Circle:
    """A circle on the sphere: centre in degrees, radius in kilometres."""

    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class CapArea:
    """One ``area``: polygons as closed (lon, lat) rings, circles and (valueName, value) codes."""

    desc: str
    polygons: tuple[Ring, ...] = ()
    circles: tuple[Circle, ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()


def show(value: str) -> str:
    """A short, quoted rendering of untrusted text for an error reason."""
    return repr(value if len(value) <= SHOWN else value[:SHOWN] + "…")


def _position(token: str) -> tuple[float, float] | None:
    """A ``lat,lon`` token (``+`` signs and stray commas around it allowed) as (lon, lat)."""
    parts = token.strip(",").split(",")
    if len(parts) != 2 or not all(_NUMBER.fullmatch(p) for p in parts):
        return None
    lat, lon = float(parts[0]), float(parts[1])
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return lon, lat


def _positions(tokens: list[str]) -> list[tuple[float, float]] | None:
    """Every ``lat,lon`` token as (lon, lat), unchecked for range, or None if any is unreadable."""
    joined = " ".join(t.strip(",") for t in tokens)
    if not _PAIRS.fullmatch(joined):
        return None
    values = list(map(float, joined.replace(" ", ",").split(",")))
    return list(zip(values[1::2], values[0::2], strict=True))


def _in_range(ring: list[tuple[float, float]], where: str, warnings: list[str]
              ) -> list[tuple[float, float]] | None:
    """The positions with longitudes a little past ±180 moved to the other side, or None if
    any lies out of range."""
    lats = [lat for _, lat in ring]
    lons = [lon for lon, _ in ring]
    if min(lats) < -90.0 or max(lats) > 90.0 or max(map(abs, lons)) > 180.0 + LON_SLACK_DEG:
        return None
    if max(map(abs, lons)) <= 180.0:
        return ring
    warnings.append(f"{where}: longitudes past ±180 were read as across the antimeridian")
    return [(lon - math.copysign(360.0, lon) if abs(lon) > 180.0 else lon, lat)
            for lon, lat in ring]


def parse_polygon(text: str, where: str, warnings: list[str]) -> Ring | None:
    """A closed (lon, lat) ring from CAP ``lat,lon`` pairs, or None (with a warning) if unusable;
    InvalidMessage if the text is not a list of such pairs (stray characters)."""
    tokens = text.split()
    if not tokens:
        return None
    if len(tokens) > MAX_VERTICES:
        warnings.append(f"{where}: dropped, more than {MAX_VERTICES} positions")
        return None
    read = _positions(tokens)
    if read is None:
        bad = next((t for t in tokens if _positions([t]) is None), text.strip())
        raise InvalidMessage(
            f"{where}: {show(bad)} is not a lat,lon pair; a polygon with stray characters is "
            "refused rather than read as part of the area")
    ring = _in_range(read, where, warnings)
    if ring is None:
        bad = next(t for t, (lon, lat) in zip(tokens, read, strict=True)
                   if abs(lat) > 90.0 or abs(lon) > 180.0 + LON_SLACK_DEG)
        warnings.append(f"{where}: dropped, {show(bad)} is not a lat,lon pair within ±90,±180")
        return None
    if ring[0] != ring[-1]:
        ring.append(ring[0])
        warnings.append(f"{where}: was not closed; closed it")
    if len(ring) < 4:
        warnings.append(f"{where}: dropped, {len(ring)} positions once closed; 4 are needed")
        return None
    return tuple(ring)


def _reach_deg(radius_km: float) -> float:
    """How far, in degrees of arc, the polygon of a circle of ``radius_km`` reaches."""
    reach_m = radius_km * 1000.0 / math.cos(math.pi / CIRCLE_SEGMENTS)
    return math.degrees(reach_m / geoareas.EARTH_RADIUS_M)


def parse_circle(text: str, where: str, warnings: list[str]) -> Circle | None:
    """A circle from CAP ``lat,lon radius_km``, or None (with a warning) if unusable."""
    tokens = text.split()
    if not tokens:
        return None
    centre = _position(tokens[0]) if len(tokens) == 2 else None
    if centre is None or not _NUMBER.fullmatch(tokens[1]):
        warnings.append(f"{where}: dropped, {show(text.strip())} is not 'lat,lon radius_km'")
        return None
    (lon, lat), radius = centre, float(tokens[1])
    if not 0.0 < radius <= MAX_RADIUS_KM:
        warnings.append(f"{where}: dropped, radius {radius:g} km is not in (0, {MAX_RADIUS_KM:g}]")
        return None
    if abs(lat) + _reach_deg(radius) >= 90.0:
        warnings.append(f"{where}: dropped, the circle reaches a pole")
        return None
    return Circle(lat=lat, lon=lon, radius_km=radius)


def _wrap(geometry: shapely.Geometry) -> shapely.Geometry:
    """Geometry drawn past longitude ±180 cut there, the overhang moved to the other side."""
    minx, _, maxx, _ = shapely.bounds(geometry)
    if -180.0 <= minx and maxx <= 180.0:
        return geometry
    pieces = []
    for shift in (-360.0, 0.0, 360.0):
        window = shapely.box(-180.0 - shift, -90.0, 180.0 - shift, 90.0)
        piece = shapely.intersection(geometry, window)
        if not shapely.is_empty(piece):
            pieces.append(affinity.translate(piece, xoff=shift))
    return polygonal(shapely.union_all(pieces))


def _ring_geometry(ring: Ring, max_self_intersections: int) -> shapely.Geometry | None:
    """A valid polygon for one ring, unwrapped and split where it crosses the antimeridian."""
    coords = np.asarray(ring, dtype=np.float64)
    steps = np.diff(coords[:, 0])
    if np.any(np.abs(steps) > 180.0):
        # Take every edge the short way round: a jump from ~+180 to ~-180 is a small step east.
        steps = steps - 360.0 * np.sign(steps) * (np.abs(steps) > 180.0)
        lon = coords[0, 0] + np.concatenate([[0.0], np.cumsum(steps)])
        if abs(lon[-1] - lon[0]) > 1e-9 or np.ptp(lon) > 360.0:
            return None  # it winds round a pole or the globe: no lon/lat polygon says that
        coords = np.column_stack([lon, coords[:, 1]])
    shape = shapely.Polygon(coords)
    if not shapely.is_valid(shape):
        geoareas.check_crossings([coords], max_self_intersections)
        shape = polygonal(shapely.make_valid(shape, method="structure", keep_collapsed=False))
    if shapely.is_empty(shape):
        return None
    return _wrap(shape)


def area_geometry(area: CapArea, max_self_intersections: int = geoareas.MAX_SELF_INTERSECTIONS
                  ) -> shapely.Geometry | None:
    """The union of an area's polygons and circles (on the sphere), or None if it has none."""
    rings = (_ring_geometry(ring, max_self_intersections) for ring in area.polygons)
    pieces = [g for g in rings if g is not None]
    pieces += [
        _wrap(geoareas.circle_polygon(c.lon, c.lat, c.radius_km * 1000.0, CIRCLE_SEGMENTS))
        for c in area.circles
    ]
    if not pieces:
        return None
    geometry = pieces[0] if len(pieces) == 1 else polygonal(shapely.union_all(pieces))
    return None if shapely.is_empty(geometry) else geometry
