"""Accuracy circles: which points outside an area lie within their own reach of it (pure).

A located point whose position is known to ``a`` metres counts as in an area when the area lies
within ``a`` metres of it (see :class:`geo.index.PointIndex`). The index finds the candidates
cheaply, from the grid cells within the largest reach of the area's edges (:func:`around` gives
that reach in degrees there), and pairs each candidate with the edges near its cell;
:func:`within_pairs` then decides exactly. Points the index does not hold sorted by cell (its
recent changes) are paired with edges through an R-tree instead (:meth:`Reach.within`).

Distance is measured from each point in the plane tangent to the sphere
(:data:`geo.areas.EARTH_RADIUS_M`) there: metres east (longitude scaled by the cosine of the
point's latitude) and north. The map is linear, so an edge straight in lon/lat (as the inside
test takes it) stays straight, and within a few hundred metres its error is under 1e-4 of the
distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely

from geo.areas import EARTH_RADIUS_M

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Candidates are taken generously (0.1 % beyond the reach): the exact test decides.
_MARGIN = 1.001
# A degree of longitude shrinks to nothing at the poles; nothing an index holds is that close.
_MAX_LAT = 89.9
_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180.0
_MULTI = (4, 5, 6, 7)


@dataclass(frozen=True, slots=True)
class Segments:
    """Straight pieces from (ax, ay) to (bx, by), in lon/lat; a point is a piece of length 0."""

    ax: Floats
    ay: Floats
    bx: Floats
    by: Floats

    @classmethod
    def of(cls, geometry: shapely.Geometry) -> Segments:
        """The edges of every ring and line of a geometry, and its points."""
        parts = np.asarray(shapely.get_parts(geometry))
        while np.isin(shapely.get_type_id(parts), _MULTI).any():
            parts = np.asarray(shapely.get_parts(parts))
        kinds = shapely.get_type_id(parts)
        lines = np.concatenate([parts[(kinds == 1) | (kinds == 2)],
                                shapely.get_rings(parts[kinds == 3])])
        coords, which = shapely.get_coordinates(lines, return_index=True)
        same = which[:-1] == which[1:]
        a, b = coords[:-1][same], coords[1:][same]
        dots = shapely.get_coordinates(parts[kinds == 0])
        a, b = np.concatenate([a, dots]), np.concatenate([b, dots])
        return cls(ax=a[:, 0], ay=a[:, 1], bx=b[:, 0], by=b[:, 1])


def within_pairs(lon: Floats, lat: Floats, metres: npt.NDArray[np.floating], point: Ints,
                 seg: Segments) -> Bools:
    """Which points lie within their own ``metres`` of one of the segments paired with them
    (pair i: point ``point[i]`` and segment i of ``seg``)."""
    found = np.zeros(len(lon), dtype=np.bool_)
    if len(point) == 0:
        return found
    px, py = lon[point], lat[point]
    east = (np.cos(np.radians(lat)) * _M_PER_DEG)[point]
    x0, y0 = (seg.ax - px) * east, (seg.ay - py) * _M_PER_DEG
    dx, dy = (seg.bx - seg.ax) * east, (seg.by - seg.ay) * _M_PER_DEG
    length2 = dx * dx + dy * dy
    # The segment's point nearest the origin (the point itself), at t along it.
    t = np.clip(-(x0 * dx + y0 * dy) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    x, y = x0 + t * dx, y0 + t * dy
    reach = np.asarray(metres, dtype=np.float64)[point]
    found[point[x * x + y * y <= reach * reach]] = True
    return found


@dataclass(slots=True)
class Reach:
    """Reaches of up to ``metres`` around one area: how far that is in degrees there (``dx``
    of longitude, ``dy`` of latitude, each at least the true figure anywhere near the area)."""

    geometry: shapely.Geometry
    metres: float
    dx: float
    dy: float
    _tree: tuple[shapely.STRtree, Segments] | None = field(default=None, repr=False)

    def bounds(self) -> tuple[float, float, float, float]:
        """The area's bounding box widened by the reach: no point beyond it is within reach."""
        minx, miny, maxx, maxy = (float(v) for v in shapely.bounds(self.geometry))
        return minx - self.dx, miny - self.dy, maxx + self.dx, maxy + self.dy

    def within(self, lon: Floats, lat: Floats, metres: npt.NDArray[np.floating]) -> Bools:
        """Which points outside the area lie within their own ``metres`` of it (pairing them
        with its edges through an R-tree of the edges' boxes widened by the reach)."""
        if len(lon) == 0:
            return np.zeros(0, dtype=np.bool_)
        if self._tree is None:
            seg = Segments.of(self.geometry)
            boxes = shapely.box(np.minimum(seg.ax, seg.bx) - self.dx,
                                np.minimum(seg.ay, seg.by) - self.dy,
                                np.maximum(seg.ax, seg.bx) + self.dx,
                                np.maximum(seg.ay, seg.by) + self.dy)
            self._tree = (shapely.STRtree(boxes), seg)
        tree, seg = self._tree
        point, edge = tree.query(shapely.points(lon, lat))
        paired = Segments(seg.ax[edge], seg.ay[edge], seg.bx[edge], seg.by[edge])
        return within_pairs(lon, lat, metres, point.astype(np.int64), paired)


def around(geometry: shapely.Geometry, metres: float) -> Reach | None:
    """Reaches of up to ``metres`` around the geometry, or None when there is none."""
    if not metres > 0:
        return None
    _, miny, _, maxy = (float(v) for v in shapely.bounds(geometry))
    dy = metres / _M_PER_DEG * _MARGIN
    # A degree of longitude is shortest where the area comes nearest a pole.
    lat = min(max(abs(miny), abs(maxy)) + dy, _MAX_LAT)
    dx = min(dy / math.cos(math.radians(lat)), 360.0)
    return Reach(geometry=geometry, metres=float(metres), dx=dx, dy=dy)
