"""The municipality table: JMA area codes, local-government codes and their geometry.

The shipped data are JMA forecast sub-areas (7-digit codes: the 5-digit local-government code
and a 2-digit suffix, ``00`` unless the municipality is split, as 郡山市 0720301 / 0720302).
Municipalities are keyed by the 6-digit local-government code (the 5 digits and a check digit).

Some shipped rings are slightly invalid (self-touching, nested shells). Each polygon is repaired
on its own and the pieces are unioned, so a nested shell adds ground rather than cutting a hole:
for alerting, covering a sliver twice is better than covering it nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.errors import GEOSException

from geo.errors import GeoError, InvalidArea, UnknownAreaCode

_WEIGHTS = (6, 5, 4, 3, 2)


def check_digit(code5: str) -> str:
    """The check digit of a 5-digit local-government code."""
    if len(code5) != 5 or not (code5.isascii() and code5.isdigit()):
        raise InvalidArea(f"area code {code5!r} must be 5 digits")
    total = sum(int(d) * w for d, w in zip(code5, _WEIGHTS, strict=True))
    return str((11 - total % 11) % 10)


def to_code6(code: str) -> str:
    """The 6-digit local-government code for a 5-, 6- or 7-digit (JMA) code."""
    if not (isinstance(code, str) and code.isascii() and code.isdigit()):
        raise InvalidArea(f"area code {code!r} must be a string of 5, 6 or 7 digits")
    if len(code) not in (5, 6, 7):
        raise InvalidArea(f"area code {code!r} must have 5, 6 or 7 digits")
    code6 = code[:5] + check_digit(code[:5])
    if len(code) == 6 and code != code6:
        raise UnknownAreaCode(f"unknown area code {code!r}: its check digit should be {code6[5]}")
    return code6


@dataclass(frozen=True, slots=True)
class SubArea:
    """One JMA forecast sub-area, as shipped."""

    code7: str
    name: str
    name_en: str
    geometry: shapely.Geometry


@dataclass(frozen=True, slots=True)
class Municipality:
    """A municipality: the union of its sub-areas."""

    code6: str
    name: str
    name_en: str
    geometry: shapely.Geometry
    sub_areas: tuple[str, ...]


def polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """Only the polygons of a geometry (dropping points and lines), as one geometry."""
    parts = shapely.get_parts(geometry)
    keep = [p for p in parts if shapely.get_type_id(p) in (3, 6)]
    return shapely.union_all(keep) if keep else shapely.Polygon()


def repair(geometry: shapely.Geometry) -> shapely.Geometry:
    """A valid (multi)polygon covering the same ground, each part repaired on its own."""
    if shapely.is_valid(geometry):
        return geometry
    parts = [polygonal(shapely.make_valid(p)) for p in shapely.get_parts(geometry)]
    return shapely.union_all(parts)


def _sub_area(index: int, feature: object) -> SubArea:
    """One GeoJSON feature of the area file as a sub-area."""
    if not isinstance(feature, Mapping):
        raise GeoError(f"area data: feature {index} is not an object")
    props = feature.get("properties")
    if not isinstance(props, Mapping):
        raise GeoError(f"area data: feature {index} has no properties")
    code, name, name_en = props.get("code"), props.get("name"), props.get("enName")
    if not (isinstance(code, str) and len(code) == 7 and code.isdigit()):
        raise GeoError(f"area data: feature {index} has no 7-digit code")
    if not (isinstance(name, str) and isinstance(name_en, str)):
        raise GeoError(f"area data: feature {code} has no name or enName")
    try:
        geometry = shapely.from_geojson(json.dumps(feature.get("geometry")))
    except (GEOSException, ValueError, TypeError) as exc:
        raise GeoError(f"area data: feature {code} has a bad geometry: {exc}") from exc
    if shapely.get_type_id(geometry) not in (3, 6):
        raise GeoError(f"area data: feature {code} is not a polygon")
    return SubArea(code7=code, name=name, name_en=name_en, geometry=repair(geometry))


class Table:
    """Municipalities and sub-areas by code, with point and area lookups."""

    __slots__ = ("_codes", "_geoms", "_municipalities", "_sub_areas", "_tree")

    def __init__(self, sub_areas: Iterable[SubArea]) -> None:
        subs = sorted(sub_areas, key=lambda s: s.code7)
        self._sub_areas = {s.code7: s for s in subs}
        if len(self._sub_areas) != len(subs):
            raise GeoError("area data: duplicate sub-area code")
        groups: dict[str, list[SubArea]] = {}
        for s in subs:
            groups.setdefault(to_code6(s.code7), []).append(s)
        # A split municipality is named after its first sub-area (郡山市, not 郡山市湖南).
        self._municipalities = {
            code6: Municipality(
                code6=code6,
                name=group[0].name,
                name_en=group[0].name_en,
                geometry=shapely.union_all([s.geometry for s in group]),
                sub_areas=tuple(s.code7 for s in group),
            )
            for code6, group in sorted(groups.items())
        }
        self._codes = list(self._municipalities)
        self._geoms = np.array([m.geometry for m in self._municipalities.values()], dtype=object)
        shapely.prepare(self._geoms)
        for s in subs:
            shapely.prepare(s.geometry)
        self._tree = shapely.STRtree(self._geoms)

    @classmethod
    def load(cls, path: str | Path) -> Table:
        """Read a GeoJSON FeatureCollection of JMA sub-areas from ``path``."""
        with open(path, encoding="utf-8") as f:
            return cls.from_geojson(json.load(f))

    @classmethod
    def from_geojson(cls, doc: object) -> Table:
        """Build the table from a parsed GeoJSON FeatureCollection of JMA sub-areas."""
        if not (isinstance(doc, Mapping) and isinstance(doc.get("features"), list)):
            raise GeoError("area data: expected a GeoJSON FeatureCollection")
        return cls(_sub_area(i, f) for i, f in enumerate(doc["features"]))

    def get(self, code: str) -> shapely.Geometry:
        """The geometry of a 6-digit municipality or a 7-digit JMA sub-area code."""
        if isinstance(code, str) and len(code) == 7 and code in self._sub_areas:
            return self._sub_areas[code].geometry
        return self.municipality(code).geometry

    def municipality(self, code: str) -> Municipality:
        """The municipality named by a 6-digit code."""
        found = self._municipalities.get(code) if isinstance(code, str) else None
        if found is None:
            raise UnknownAreaCode(f"unknown area code {code!r}")
        return found

    def is_known(self, code: str) -> bool:
        """Whether ``get(code)`` would succeed."""
        return isinstance(code, str) and (code in self._sub_areas or code in self._municipalities)

    def codes6(self) -> list[str]:
        """All 6-digit municipality codes, sorted."""
        return list(self._codes)

    def name(self, code: str) -> str:
        """The Japanese name of a municipality (6 digits) or sub-area (7 digits)."""
        if isinstance(code, str) and code in self._sub_areas:
            return self._sub_areas[code].name
        return self.municipality(code).name

    def name_en(self, code: str) -> str:
        """The English name of a municipality (6 digits) or sub-area (7 digits)."""
        if isinstance(code, str) and code in self._sub_areas:
            return self._sub_areas[code].name_en
        return self.municipality(code).name_en

    def containing(self, lon: float, lat: float) -> list[str]:
        """6-digit codes of the municipalities covering the point, boundary included."""
        near = self._tree.query(shapely.Point(lon, lat))
        hits = near[shapely.intersects_xy(self._geoms[near], lon, lat)]
        return sorted(self._codes[i] for i in hits)

    def split(self, geometry: shapely.Geometry, codes: Iterable[str] = ()
              ) -> dict[str, shapely.Geometry]:
        """The geometry cut along municipal borders: 6-digit code -> the part inside it.

        ``codes`` (6-digit) limits the cut to those municipalities; by default every
        municipality the geometry meets. A part may be empty (the geometry only touches)."""
        wanted = list(codes) or self.intersecting(geometry)
        parts = shapely.intersection(geometry, [self.municipality(c).geometry for c in wanted])
        return dict(zip(wanted, parts.tolist(), strict=True))

    def intersecting(self, geometry: shapely.Geometry) -> list[str]:
        """6-digit codes of the municipalities whose area meets the geometry."""
        hits = self._tree.query(geometry, predicate="intersects")
        return sorted(self._codes[i] for i in hits)


def load(path: str | Path) -> Table:
    """Read the municipality table from a GeoJSON file of JMA sub-areas."""
    return Table.load(path)
