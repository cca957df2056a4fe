"""A regular lon/lat grid and the vectorised cell arithmetic behind the point index.

Cells are numbered row-major (``iy * nx + ix``), so a run of cells in one row is a run of
consecutive cell ids, and, once points are sorted by cell, one contiguous slice of points.

Classifying cells against a polygon does not use per-cell shapely tests: the polygon's edges
are rasterised onto the grid (a conservative "supercover", every cell an edge passes through
or comes within ``PAD`` cells of), and each remaining run of cells in a row, which no edge
touches, is wholly inside or wholly outside, so one point test per run decides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Margin, in cells, by which edges are widened when rasterised. It must dwarf the rounding of
# ``(x - x0) / cell`` (about 1e-13 degrees) so that a point whose computed cell is "clean"
# really lies clear of every edge; 1e-5 of a cell is still sub-millimetre at any sane size.
PAD = 1e-5
MIN_CELL_DEG = 1e-6


@dataclass(frozen=True, slots=True)
class Grid:
    """A grid of ``nx`` by ``ny`` square cells of ``cell`` degrees from (x0, y0)."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int

    @property
    def size(self) -> int:
        """The number of cells."""
        return self.nx * self.ny


@dataclass(frozen=True, slots=True)
class Window:
    """An inclusive block of cells; ``open_*`` marks sides not clipped by the grid's edge."""

    ix0: int
    ix1: int
    iy0: int
    iy1: int
    open_x0: bool
    open_x1: bool
    open_y0: bool
    open_y1: bool

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns of the window."""
        return self.iy1 - self.iy0 + 1, self.ix1 - self.ix0 + 1


@dataclass(frozen=True, slots=True)
class Runs:
    """Maximal runs of equally-classified cells within each row of a window."""

    first: Ints
    last: Ints
    boundary: Bools
    closed: Bools


def fit(lon: Floats, lat: Floats, cell_deg: float, points_per_cell: float) -> Grid:
    """Choose a grid over the points' bounding box: ``cell_deg`` or finer where points are dense."""
    n = len(lon)
    x0, x1 = float(lon.min()), float(lon.max())
    y0, y1 = float(lat.min()), float(lat.max())
    width, height = x1 - x0, y1 - y0
    dense = math.sqrt(max(width * height, 0.0) * points_per_cell / n)
    cell = max(min(cell_deg, dense), MIN_CELL_DEG)
    # Thin or lopsided extents (all points on a line, two far-apart points) would otherwise ask
    # for far more cells than points; coarsen until the grid is no bigger than needed.
    max_cells = max(2.0 * n / points_per_cell, 1 << 16)
    while (width / cell + 1) * (height / cell + 1) > max_cells:
        cell *= 1.1
    nx = int(width / cell) + 1
    ny = int(height / cell) + 1
    return Grid(x0=x0, y0=y0, cell=cell, nx=nx, ny=ny)


def cell_ids(grid: Grid, lon: Floats, lat: Floats, *, strict: bool = False) -> Ints:
    """The cell of each point: clamped into the grid, or -1 outside it when ``strict``."""
    ix = np.floor((lon - grid.x0) / grid.cell).astype(np.int64)
    iy = np.floor((lat - grid.y0) / grid.cell).astype(np.int64)
    if strict:
        outside = (ix < 0) | (ix >= grid.nx) | (iy < 0) | (iy >= grid.ny)
        ids: Ints = np.where(outside, -1, iy * grid.nx + ix)
        return ids
    np.clip(ix, 0, grid.nx - 1, out=ix)
    np.clip(iy, 0, grid.ny - 1, out=iy)
    return iy * grid.nx + ix


def cell_at(grid: Grid, lon: float, lat: float) -> int:
    """The cell holding one point, or -1 when the point lies outside the grid."""
    u = math.floor((np.float64(lon) - grid.x0) / grid.cell)
    v = math.floor((np.float64(lat) - grid.y0) / grid.cell)
    if 0 <= u < grid.nx and 0 <= v < grid.ny:
        return int(v * grid.nx + u)
    return -1


def window(grid: Grid, bounds: tuple[float, float, float, float]) -> Window | None:
    """The cells that may hold points within ``bounds``, or None when none can."""
    minx, miny, maxx, maxy = bounds
    fx0 = math.floor((minx - grid.x0) / grid.cell - PAD)
    fx1 = math.floor((maxx - grid.x0) / grid.cell + PAD)
    fy0 = math.floor((miny - grid.y0) / grid.cell - PAD)
    fy1 = math.floor((maxy - grid.y0) / grid.cell + PAD)
    ix0, ix1 = max(fx0, 0), min(fx1, grid.nx - 1)
    iy0, iy1 = max(fy0, 0), min(fy1, grid.ny - 1)
    if ix0 > ix1 or iy0 > iy1:
        return None
    return Window(
        ix0=ix0,
        ix1=ix1,
        iy0=iy0,
        iy1=iy1,
        open_x0=fx0 >= 0,
        open_x1=fx1 <= grid.nx - 1,
        open_y0=fy0 >= 0,
        open_y1=fy1 <= grid.ny - 1,
    )


def _repeat_ranges(lo: Ints, hi: Ints) -> tuple[Ints, Ints]:
    """For inclusive ranges [lo, hi], the owning range index and the value of each element."""
    counts = hi - lo + 1
    owner = np.repeat(np.arange(len(lo), dtype=np.int64), counts)
    firsts = np.cumsum(counts) - counts
    values = np.arange(len(owner), dtype=np.int64) - np.repeat(firsts - lo, counts)
    return owner, values


def edge_cells(grid: Grid, win: Window, x: Floats, y: Floats, ring: Ints,
               pad_x: float = PAD, pad_y: float = PAD) -> tuple[Ints, Ints]:
    """The window cells each ring edge passes through or comes within ``pad_x`` cells of
    across and ``pad_y`` cells of up or down (PAD, or more to mark a band around the edges).

    Edge ``i`` runs from position ``i`` to ``i + 1`` where both belong to the same ring. The
    answer is one (edge, cell) pair per cell an edge marks, cells numbered row-major within
    the window."""
    cols = win.ix1 - win.ix0 + 1
    same = ring[:-1] == ring[1:]
    ids = np.flatnonzero(same)
    u = (x - grid.x0) / grid.cell
    v = (y - grid.y0) / grid.cell
    ua, ub, va, vb = u[:-1][same], u[1:][same], v[:-1][same], v[1:][same]
    umin, umax = np.minimum(ua, ub) - pad_x, np.maximum(ua, ub) + pad_x
    vmin, vmax = np.minimum(va, vb) - pad_y, np.maximum(va, vb) + pad_y
    c_lo = np.maximum(np.floor(umin), win.ix0)
    c_hi = np.minimum(np.floor(umax), win.ix1)
    keep = (c_lo <= c_hi) & (np.floor(vmax) >= win.iy0) & (np.floor(vmin) <= win.iy1)
    if not keep.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ids, ua, ub, va, vb = ids[keep], ua[keep], ub[keep], va[keep], vb[keep]
    umin, umax, vmin, vmax = umin[keep], umax[keep], vmin[keep], vmax[keep]
    du, dv = ub - ua, vb - va
    edge, col = _repeat_ranges(c_lo[keep].astype(np.int64), c_hi[keep].astype(np.int64))
    # The edge's stretch within this column (widened by the pads), and its v extent there.
    sa = np.maximum(col - pad_x, umin[edge])
    sb = np.minimum(col + 1 + pad_x, umax[edge])
    steep = du[edge] == 0.0
    slope = np.divide(dv[edge], du[edge], out=np.zeros_like(sa), where=~steep)
    at_a = va[edge] + (sa - ua[edge]) * slope
    at_b = va[edge] + (sb - ua[edge]) * slope
    lo = np.where(steep, vmin[edge], np.maximum(np.minimum(at_a, at_b) - pad_y, vmin[edge]))
    hi = np.where(steep, vmax[edge], np.minimum(np.maximum(at_a, at_b) + pad_y, vmax[edge]))
    r_lo = np.maximum(np.floor(lo), win.iy0).astype(np.int64)
    r_hi = np.minimum(np.floor(hi), win.iy1).astype(np.int64)
    ok = r_lo <= r_hi
    edge, col, r_lo, r_hi = edge[ok], col[ok], r_lo[ok], r_hi[ok]
    owner, row = _repeat_ranges(r_lo, r_hi)
    cells: Ints = (row - win.iy0) * cols + (col[owner] - win.ix0)
    return ids[edge[owner]], cells


def edge_mask(grid: Grid, win: Window, x: Floats, y: Floats, ring: Ints,
              pad_x: float = PAD, pad_y: float = PAD) -> Bools:
    """The window's cells marked by any ring edge (see :func:`edge_cells`), as a mask."""
    rows, cols = win.shape
    mask = np.zeros(rows * cols, dtype=np.bool_)
    mask[edge_cells(grid, win, x, y, ring, pad_x, pad_y)[1]] = True
    return mask.reshape(rows, cols)


def cell_of_window(grid: Grid, win: Window, local: Ints) -> Ints:
    """Grid cell ids of cells numbered row-major within the window."""
    iy, ix = np.divmod(local, win.ix1 - win.ix0 + 1)
    ids: Ints = (iy + win.iy0) * grid.nx + (ix + win.ix0)
    return ids


def window_of_cell(grid: Grid, win: Window, cells: Ints) -> Ints:
    """Row-major numbers within the window of grid cells, -1 for cells outside it."""
    iy, ix = np.divmod(cells, grid.nx)
    inside = (iy >= win.iy0) & (iy <= win.iy1) & (ix >= win.ix0) & (ix <= win.ix1)
    local: Ints = np.where(inside, (iy - win.iy0) * (win.ix1 - win.ix0 + 1) + (ix - win.ix0), -1)
    return local


def runs(grid: Grid, win: Window, mask: Bools) -> Runs:
    """Split each window row into runs of boundary / clean cells, as grid cell ids."""
    rows, cols = mask.shape
    starts = np.ones((rows, cols), dtype=np.bool_)
    starts[:, 1:] = mask[:, 1:] != mask[:, :-1]
    flat_first = np.flatnonzero(starts)
    flat_last = np.append(flat_first[1:], rows * cols) - 1
    row = flat_first // cols
    c0 = flat_first % cols
    c1 = flat_last % cols
    boundary = mask.ravel()[flat_first]
    # A clean run touching an unclipped side of the window reaches beyond the geometry's
    # bounding box, so it is outside without any test.
    closed = np.zeros(len(flat_first), dtype=np.bool_)
    if win.open_x0:
        closed |= c0 == 0
    if win.open_x1:
        closed |= c1 == cols - 1
    if win.open_y0:
        closed |= row == 0
    if win.open_y1:
        closed |= row == rows - 1
    base = (row + win.iy0) * grid.nx + win.ix0
    return Runs(first=base + c0, last=base + c1, boundary=boundary, closed=closed & ~boundary)


def centres(grid: Grid, cells: Ints) -> tuple[Floats, Floats]:
    """The lon/lat centre of each cell."""
    iy, ix = np.divmod(cells, grid.nx)
    return grid.x0 + (ix + 0.5) * grid.cell, grid.y0 + (iy + 0.5) * grid.cell


def expand(starts: Ints, ends: Ints) -> Ints:
    """Concatenate the half-open index ranges [start, end) into one index array."""
    lengths = ends - starts
    nonempty = lengths > 0
    starts, lengths = starts[nonempty], lengths[nonempty]
    firsts = np.cumsum(lengths) - lengths
    out: Ints = np.arange(int(lengths.sum()), dtype=np.int64)
    out += np.repeat(starts - firsts, lengths)
    return out
