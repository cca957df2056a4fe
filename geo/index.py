"""An in-memory index of many points (device locations, watched places) for area matching.

Layout: a *base* snapshot of contiguous arrays sorted by grid cell (``lon``, ``lat``, ``keys``,
``cell_start`` offsets), a sorted copy of the keys with their base positions for lookups, an
``alive`` flag per base point, and a small *delta* of points added or moved since the snapshot.
A move within the same cell is written into the base in place; anything else masks the base
entry and goes to the delta. Once the delta or the masked entries exceed 5 % of the base (at
least 1,024, at most 100,000) the index compacts: it merges the delta into the base in linear
time while the grid still fits the data, and rebuilds the base (a sort) otherwise.

Matching a polygon rasterises its edges onto the grid (see :mod:`geo.grid`): clean runs of cells
inside the polygon contribute all their points untested, clean runs outside none, and only the
points of cells an edge crosses go through ``shapely.intersects_xy``, in one vectorised call.
The result is exactly the set ``shapely.intersects_xy(geometry, lon, lat)`` selects.

Accuracy circles: a point may carry an accuracy in metres (float32, 0 when unknown, capped at
``accuracy_cap_m`` when stored). It also matches when the area lies within that many metres of
it, so a GPS fix just outside an edge is not left out. After the inside pass above, the edges
are rasterised again widened by the largest accuracy held (in degrees at the area's latitude,
see :mod:`geo.reach`), each cell paired with the edges that come that near it; the points of
those cells that the inside pass found outside, and that carry an accuracy, are measured in
metres against their cell's edges only. Every other point lies further from the area than any
accuracy held.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import shapely

from geo import grid, reach
from geo.errors import InvalidPoint
from geo.grid import Floats, Ints

Floats32 = npt.NDArray[np.float32]  # accuracies, in metres

_EMPTY = np.zeros(0, dtype=np.int64)
_MIN_DELTA = 1024
_MAX_DELTA = 100_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class _Delta:
    """Points added or moved since the last compaction, in growable dense arrays."""

    __slots__ = ("acc", "keys", "lat", "lon", "n", "slot")

    def __init__(self) -> None:
        self.slot: dict[int, int] = {}
        self.n = 0
        self.keys: Ints = np.zeros(64, dtype=np.int64)
        self.lon: Floats = np.zeros(64, dtype=np.float64)
        self.lat: Floats = np.zeros(64, dtype=np.float64)
        self.acc: Floats32 = np.zeros(64, dtype=np.float32)

    def put(self, key: int, lon: float, lat: float, acc: float) -> None:
        """Insert or overwrite one point."""
        i = self.slot.get(key)
        if i is None:
            if self.n == len(self.keys):
                size = 2 * len(self.keys)
                self.keys = np.resize(self.keys, size)
                self.lon = np.resize(self.lon, size)
                self.lat = np.resize(self.lat, size)
                self.acc = np.resize(self.acc, size)
            i = self.n
            self.n += 1
            self.slot[key] = i
            self.keys[i] = key
        self.lon[i] = lon
        self.lat[i] = lat
        self.acc[i] = acc

    def discard(self, key: int) -> None:
        """Drop one point if present, moving the last point into its slot."""
        i = self.slot.pop(key, None)
        if i is None:
            return
        self.n -= 1
        if i != self.n:
            moved = int(self.keys[self.n])
            self.keys[i], self.lon[i], self.lat[i] = moved, self.lon[self.n], self.lat[self.n]
            self.acc[i] = self.acc[self.n]
            self.slot[moved] = i

    def match(self, geometry: shapely.Geometry, near: reach.Reach | None) -> Ints:
        """Keys of the delta points the geometry covers, or (with ``near``) comes within
        their accuracy of."""
        if self.n == 0:
            return _EMPTY
        lon, lat = self.lon[: self.n], self.lat[: self.n]
        minx, miny, maxx, maxy = near.bounds() if near else shapely.bounds(geometry)
        box = np.flatnonzero((lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy))
        inside = shapely.intersects_xy(geometry, lon[box], lat[box])
        hits = box[inside]
        if near is not None:
            hits = np.concatenate([hits, _within(near, box[~inside], lon, lat, self.acc)])
        found: Ints = self.keys[hits]
        return found

    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return int(self.keys.nbytes + self.lon.nbytes + self.lat.nbytes + self.acc.nbytes)


def _within(near: reach.Reach, pos: Ints, lon: Floats, lat: Floats, acc: Floats32) -> Ints:
    """The positions (of points outside the area) whose accuracy reaches the area."""
    pos = pos[acc[pos] > 0]
    found: Ints = pos[near.within(lon[pos], lat[pos], acc[pos])]
    return found


def _check_points(lon: Floats, lat: Floats) -> None:
    """Refuse coordinates that are not finite or out of range."""
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    bad |= np.abs(lon) > 180.0
    bad |= np.abs(lat) > 90.0
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidPoint(f"point {i} has an invalid position ({lon[i]!r}, {lat[i]!r})")


class PointIndex:
    """Points keyed by int64, answering "which keys lie in this area" quickly.

    ``cell_deg`` is the coarsest grid cell; where points are dense the grid is refined to about
    ``points_per_cell`` points per cell on average over the data's bounding box. Accuracies
    are stored capped at ``accuracy_cap_m`` (0: accuracies are ignored).
    """

    def __init__(self, cell_deg: float = 0.01, *, points_per_cell: float = 2.0,
                 accuracy_cap_m: float = 0.0) -> None:
        if not (cell_deg > 0 and points_per_cell > 0):
            raise ValueError("cell_deg and points_per_cell must be positive")
        if not (math.isfinite(accuracy_cap_m) and accuracy_cap_m >= 0):
            raise ValueError("accuracy_cap_m must be a finite number, 0 or more")
        self._cell_deg = cell_deg
        self._points_per_cell = points_per_cell
        self._cap = accuracy_cap_m
        self._clear()

    def _capped(self, accuracy_m: np.ndarray) -> Floats32:
        """Accuracies as stored: unknown, negative or not a number as 0, at most the cap."""
        acc = np.nan_to_num(np.asarray(accuracy_m, dtype=np.float64), nan=0.0, posinf=self._cap)
        return np.clip(acc, 0.0, self._cap).astype(np.float32)

    def _clear(self) -> None:
        self._grid: grid.Grid | None = None
        self._lon: Floats = np.zeros(0, dtype=np.float64)
        self._lat: Floats = np.zeros(0, dtype=np.float64)
        self._acc: Floats32 = np.zeros(0, dtype=np.float32)
        self._acc_max = 0.0  # at least every accuracy held (never lowered until a rebuild)
        self._keys: Ints = _EMPTY
        self._cell_start: np.ndarray = np.zeros(1, dtype=np.int32)
        self._sorted_keys: Ints = _EMPTY
        self._key_pos: np.ndarray = np.zeros(0, dtype=np.int32)
        self._alive: np.ndarray = np.zeros(0, dtype=np.bool_)
        self._dead = 0
        self._delta = _Delta()
        self._fit_n = 0

    def build(self, keys: np.ndarray, lon: np.ndarray, lat: np.ndarray,
              accuracy_m: np.ndarray | None = None) -> None:
        """Replace the index's contents with these points (keys must be unique), with their
        accuracies in metres (none: all 0)."""
        k = np.ascontiguousarray(keys, dtype=np.int64)
        x = np.ascontiguousarray(lon, dtype=np.float64)
        y = np.ascontiguousarray(lat, dtype=np.float64)
        a = self._capped(np.zeros(len(k)) if accuracy_m is None else accuracy_m)
        if not (k.ndim == x.ndim == y.ndim == a.ndim == 1
                and len(k) == len(x) == len(y) == len(a)):
            raise InvalidPoint("keys, lon, lat and accuracy_m must be 1-D arrays of the same "
                               "length")
        _check_points(x, y)
        key_order = np.argsort(k)
        sorted_keys = k[key_order]
        dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
        if len(dup):
            raise InvalidPoint(f"duplicate key {int(sorted_keys[dup[0]])}")
        self._clear()
        if len(k) == 0:
            return
        g = grid.fit(x, y, self._cell_deg, self._points_per_cell)
        cells = grid.cell_ids(g, x, y)
        order = np.argsort(cells, kind="stable")
        pos_type = np.int32 if len(k) < 2**31 else np.int64
        counts = np.bincount(cells, minlength=g.size)
        cell_start = np.zeros(g.size + 1, dtype=pos_type)
        np.cumsum(counts, out=cell_start[1:])
        del counts, cells
        self._grid = g
        self._lon, self._lat, self._keys = x[order], y[order], k[order]
        self._acc = a[order]
        self._acc_max = float(a.max())
        self._cell_start = cell_start
        # Base position of each key, in key order: the inverse of ``order`` composed with it.
        inverse = np.empty(len(k), dtype=pos_type)
        inverse[order] = np.arange(len(k), dtype=pos_type)
        self._sorted_keys = sorted_keys
        self._key_pos = inverse[key_order]
        self._alive = np.ones(len(k), dtype=np.bool_)
        self._fit_n = len(k)

    def __len__(self) -> int:
        return len(self._keys) - self._dead + self._delta.n

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int | np.integer):
            return False
        if int(key) in self._delta.slot:
            return True
        pos = self._base_pos(int(key))
        return pos >= 0 and bool(self._alive[pos])

    def pending(self) -> int:
        """Changes held outside the base snapshot: delta points plus masked base points."""
        return self._delta.n + self._dead

    def _base_pos(self, key: int) -> int:
        """Position of ``key`` in the base, or -1."""
        if not _INT64_MIN <= key <= _INT64_MAX:
            return -1
        i = int(self._sorted_keys.searchsorted(np.int64(key)))
        if i < len(self._sorted_keys) and int(self._sorted_keys[i]) == key:
            return int(self._key_pos[i])
        return -1

    def upsert(self, key: int, lon: float, lat: float, accuracy_m: float = 0.0) -> None:
        """Insert a point or move an existing one (with its accuracy in metres)."""
        key, lon, lat = int(key), float(lon), float(lat)
        if not (math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90):
            raise InvalidPoint(f"invalid position ({lon!r}, {lat!r})")
        if not _INT64_MIN <= key <= _INT64_MAX:
            raise InvalidPoint(f"key {key} does not fit in 64 bits")
        acc = self._capped(np.array([accuracy_m], dtype=np.float64))[0]
        self._acc_max = max(self._acc_max, float(acc))
        pos = self._base_pos(key)
        if pos >= 0:
            assert self._grid is not None
            # Cast to the offsets' dtype: a mismatched scalar makes numpy copy the whole array.
            at = self._cell_start.dtype.type(pos)
            home = int(self._cell_start.searchsorted(at, side="right")) - 1
            if grid.cell_at(self._grid, lon, lat) == home:
                # Same cell: the base stays sorted by cell, so update it in place.
                self._lon[pos], self._lat[pos], self._acc[pos] = lon, lat, acc
                if not self._alive[pos]:
                    self._alive[pos] = True
                    self._dead -= 1
                self._delta.discard(key)
                return
            if self._alive[pos]:
                self._alive[pos] = False
                self._dead += 1
        self._delta.put(key, lon, lat, float(acc))
        self._maybe_compact()

    def remove(self, key: int) -> None:
        """Remove a point; removing an absent key does nothing."""
        key = int(key)
        self._delta.discard(key)
        pos = self._base_pos(key)
        if pos >= 0 and self._alive[pos]:
            self._alive[pos] = False
            self._dead += 1
            self._maybe_compact()

    def _maybe_compact(self) -> None:
        limit = max(_MIN_DELTA, min(_MAX_DELTA, len(self._keys) // 20))
        if self._delta.n > limit or self._dead > limit:
            self.compact()

    def compact(self) -> None:
        """Fold the delta and the removals into a fresh base snapshot."""
        if self.pending() == 0 or self._merge():
            return
        live = self._alive
        d = self._delta
        self.build(
            np.concatenate([self._keys[live], d.keys[: d.n]]),
            np.concatenate([self._lon[live], d.lon[: d.n]]),
            np.concatenate([self._lat[live], d.lat[: d.n]]),
            np.concatenate([self._acc[live], d.acc[: d.n]]),
        )

    def _merge(self) -> bool:
        """Compact in linear time, merging the delta into the base, while the grid still fits."""
        g, d = self._grid, self._delta
        if g is None or not self._fit_n / 2 <= len(self) <= 2 * self._fit_n:
            return False
        cells = grid.cell_ids(g, d.lon[: d.n], d.lat[: d.n], strict=True)
        if (cells < 0).any():
            return False
        by_cell = np.argsort(cells, kind="stable")
        cells, keys = cells[by_cell], d.keys[: d.n][by_cell]
        pos_type = self._cell_start.dtype
        alive = self._alive
        dead_before = np.zeros(len(alive) + 1, dtype=np.int64)
        np.cumsum(~alive, out=dead_before[1:])
        start = self._cell_start.astype(np.int64)
        live_start = start - dead_before[start]
        # Each delta point goes at the end of its cell; base points shift past the insertions.
        ins = live_start[cells + 1]
        per_cell = np.bincount(cells, minlength=g.size)
        new_start = live_start
        new_start[1:] += np.cumsum(per_cell)
        live_pos = np.arange(len(alive), dtype=np.int64) - dead_before[:-1]
        remap = live_pos + np.cumsum(np.bincount(ins, minlength=len(alive) + 1))[live_pos]
        kept = alive[self._key_pos]
        moved = remap[self._key_pos[kept]]
        added = ins + np.arange(len(ins))
        by_key = np.argsort(keys)
        sorted_keys = self._sorted_keys[kept]
        at = np.searchsorted(sorted_keys, keys[by_key])
        self._sorted_keys = np.insert(sorted_keys, at, keys[by_key])
        self._key_pos = np.insert(moved, at, added[by_key]).astype(pos_type)
        self._lon = np.insert(self._lon[alive], ins, d.lon[: d.n][by_cell])
        self._lat = np.insert(self._lat[alive], ins, d.lat[: d.n][by_cell])
        self._acc = np.insert(self._acc[alive], ins, d.acc[: d.n][by_cell])
        self._keys = np.insert(self._keys[alive], ins, keys)
        self._cell_start = new_start.astype(pos_type)
        self._alive = np.ones(len(self._keys), dtype=np.bool_)
        self._dead = 0
        self._delta = _Delta()
        return True

    def nbytes(self) -> int:
        """Bytes held by the index's arrays."""
        arrays = (
            self._lon,
            self._lat,
            self._acc,
            self._keys,
            self._cell_start,
            self._sorted_keys,
            self._key_pos,
            self._alive,
        )
        return sum(int(a.nbytes) for a in arrays) + self._delta.nbytes()

    def match(self, geometry: shapely.Geometry) -> Ints:
        """Keys of all points the geometry covers, boundary included, or lies within their
        accuracy of (prepares the geometry)."""
        if geometry is None or shapely.is_empty(geometry) or len(self) == 0:
            return _EMPTY
        shapely.prepare(geometry)
        near = reach.around(geometry, min(self._acc_max, self._cap))
        base = self._match_base(geometry, near)
        delta = self._delta.match(geometry, near)
        if len(delta) == 0:
            return base
        return np.concatenate([base, delta])

    def _match_base(self, geometry: shapely.Geometry, near: reach.Reach | None) -> Ints:
        g = self._grid
        if g is None:
            return _EMPTY
        # Lines, points, collections have no clean cells: every point is tested.
        rings = _rings(geometry) if shapely.get_type_id(geometry) in (3, 6) else None
        win = grid.window(g, tuple(shapely.bounds(geometry)))
        found, misses = [_EMPTY], _EMPTY
        state: np.ndarray | None = None
        if win is not None:
            mask = (grid.edge_mask(g, win, *rings) if rings is not None
                    else np.ones(win.shape, np.bool_))
            r = grid.runs(g, win, mask)
            todo = np.flatnonzero(~r.boundary & ~r.closed)
            cx, cy = grid.centres(g, r.first[todo])
            inside = todo[shapely.contains_xy(geometry, cx, cy)]
            starts, ends = self._cell_start[r.first], self._cell_start[r.last + 1]
            edge = np.flatnonzero(r.boundary)
            cand = grid.expand(starts[edge].astype(np.int64), ends[edge].astype(np.int64))
            covered = shapely.intersects_xy(geometry, self._lon[cand], self._lat[cand])
            taken = grid.expand(starts[inside].astype(np.int64), ends[inside].astype(np.int64))
            found = [taken, cand[covered]]
            if near is not None:
                misses = cand[~covered]
                # Per window cell: 0 all points outside, 1 all inside, 2 tested one by one.
                kind = np.where(r.boundary, 2, 0).astype(np.int8)
                kind[inside] = 1
                state = np.repeat(kind, r.last - r.first + 1)
        if near is not None:
            if rings is None:
                found.append(self._near_any(geometry, near))
            else:
                found.append(self._near_edges(near, rings, win, state, misses))
        pos = np.concatenate(found)
        if self._dead:
            pos = pos[self._alive[pos]]
        keys: Ints = self._keys[pos]
        return keys

    def _near_edges(self, near: reach.Reach, rings: tuple[Floats, Floats, Ints],
                    win: grid.Window | None, state: np.ndarray | None, misses: Ints) -> Ints:
        """Base positions of points outside a (multi)polygon but within their accuracy of it.

        The cells within reach of an edge are rasterised with the edges that reach them; their
        points that the inside pass found outside (cells wholly outside, and points tested
        and missed) are measured against just those edges."""
        g = self._grid
        wide = None if g is None else grid.window(g, near.bounds())
        if g is None or wide is None:
            return _EMPTY
        x, y, ring = rings
        seg, local = grid.edge_cells(g, wide, x, y, ring, grid.PAD + near.dx / g.cell,
                                     grid.PAD + near.dy / g.cell)
        order = np.argsort(local)
        by_cell, by_seg = grid.cell_of_window(g, wide, local[order]), seg[order]
        band = by_cell[np.concatenate(([True], by_cell[1:] != by_cell[:-1]))]
        if win is not None and state is not None:
            at = grid.window_of_cell(g, win, band)
            band = band[(at < 0) | (state[np.maximum(at, 0)] == 0)]
        starts = self._cell_start[band].astype(np.int64)
        ends = self._cell_start[band + 1].astype(np.int64)
        pos = np.concatenate([grid.expand(starts, ends), misses])
        home = np.concatenate([np.repeat(band, ends - starts), np.searchsorted(
            self._cell_start, misses.astype(self._cell_start.dtype), side="right") - 1])
        keep = self._acc[pos] > 0
        pos, home = pos[keep], home[keep]
        # Pair each point with the edges of its cell.
        lo = np.searchsorted(by_cell, home, side="left")
        hi = np.searchsorted(by_cell, home, side="right")
        paired = by_seg[grid.expand(lo, hi)]
        point = np.repeat(np.arange(len(pos), dtype=np.int64), hi - lo)
        edges = reach.Segments(x[paired], y[paired], x[paired + 1], y[paired + 1])
        ok = reach.within_pairs(self._lon[pos], self._lat[pos], self._acc[pos], point, edges)
        found: Ints = pos[ok]
        return found

    def _near_any(self, geometry: shapely.Geometry, near: reach.Reach) -> Ints:
        """Base positions of points outside any geometry but within their accuracy of it:
        every point of the widened window is tested (lines and points are rare as areas)."""
        g = self._grid
        wide = None if g is None else grid.window(g, near.bounds())
        if g is None or wide is None:
            return _EMPTY
        rows = np.arange(wide.iy0, wide.iy1 + 1, dtype=np.int64) * g.nx
        cand = grid.expand(self._cell_start[rows + wide.ix0].astype(np.int64),
                           self._cell_start[rows + wide.ix1 + 1].astype(np.int64))
        out = cand[~shapely.intersects_xy(geometry, self._lon[cand], self._lat[cand])]
        return _within(near, out, self._lon, self._lat, self._acc)


def _rings(geometry: shapely.Geometry) -> tuple[Floats, Floats, Ints]:
    """The positions of every ring of a (multi)polygon, with the ring each belongs to."""
    rings = shapely.get_rings(shapely.get_parts(geometry))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    return coords[:, 0], coords[:, 1], ring.astype(np.int64)
