"""Tests for geo.grid: grid fitting, cell arithmetic and edge rasterisation."""

from __future__ import annotations

import numpy as np

from geo import grid


def _points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(139.16, 141.05, n), rng.uniform(36.79, 37.98, n)


def test_fit_uses_cell_deg_for_sparse_points() -> None:
    """With few points the cell is cell_deg and the grid spans the points' bbox."""
    lon, lat = _points(1000, 1)
    g = grid.fit(lon, lat, 0.01, 2.0)
    assert g.cell == 0.01
    assert g.x0 == lon.min() and g.y0 == lat.min()
    assert g.x0 + g.nx * g.cell > lon.max() and g.y0 + g.ny * g.cell > lat.max()


def test_fit_refines_for_dense_points() -> None:
    """With many points the cell shrinks to about points_per_cell points per cell."""
    lon, lat = _points(1_000_000, 2)
    g = grid.fit(lon, lat, 0.01, 2.0)
    assert g.cell < 0.01
    assert 2.5 >= len(lon) / g.size >= 1.5


def test_fit_caps_the_cell_count_for_spread_out_points() -> None:
    """Two points on opposite sides of the world do not make a huge grid."""
    g = grid.fit(np.array([-179.0, 179.0]), np.array([-80.0, 80.0]), 0.01, 2.0)
    assert g.size <= 1 << 16


def test_cell_at_agrees_with_cell_ids_and_rejects_outside() -> None:
    """cell_at gives the same cell as cell_ids inside the grid and -1 outside it."""
    lon, lat = _points(1000, 3)
    g = grid.fit(lon, lat, 0.01, 2.0)
    ids = grid.cell_ids(g, lon, lat)
    assert all(
        grid.cell_at(g, float(x), float(y)) == i for x, y, i in zip(lon, lat, ids, strict=True)
    )
    assert grid.cell_at(g, 138.0, 37.0) == -1
    assert grid.cell_at(g, 140.0, 39.0) == -1


def test_window_clips_and_reports_open_sides() -> None:
    """A window is clipped to the grid; clipped sides are not open; disjoint bounds give None."""
    g = grid.Grid(x0=0.0, y0=0.0, cell=1.0, nx=10, ny=10)
    win = grid.window(g, (2.5, -3.0, 4.5, 3.5))
    assert win is not None
    assert (win.ix0, win.ix1, win.iy0, win.iy1) == (2, 4, 0, 3)
    assert win.open_x0 and win.open_x1 and not win.open_y0 and win.open_y1
    assert grid.window(g, (20.0, 20.0, 30.0, 30.0)) is None


def test_edge_mask_marks_every_cell_an_edge_crosses() -> None:
    """Every point sampled along any edge (steep, flat, on grid lines) lies in a marked cell."""
    g = grid.Grid(x0=0.0, y0=0.0, cell=0.1, nx=100, ny=100)
    rng = np.random.default_rng(4)
    ring = np.vstack(
        [
            rng.uniform(0, 10, (40, 2)),
            [[5.0, 1.0], [5.0, 9.0], [1.0, 9.0], [9.0, 9.0], [3.0, 3.0000001], [7.0, 3.0]],
        ]
    )
    ring = np.vstack([ring, ring[:1]])
    win = grid.window(g, (0.0, 0.0, 10.0, 10.0))
    assert win is not None
    mask = grid.edge_mask(g, win, ring[:, 0], ring[:, 1], np.zeros(len(ring), dtype=np.int64))
    t = np.linspace(0, 1, 2001)[:, None]
    samples = (ring[:-1, None, :] * (1 - t[None]) + ring[1:, None, :] * t[None]).reshape(-1, 2)
    cells = grid.cell_ids(g, samples[:, 0], samples[:, 1])
    assert mask.ravel()[cells].all()
    assert mask.mean() < 0.5


def test_edge_mask_ignores_edges_between_rings() -> None:
    """No edge joins the last vertex of one ring to the first of the next."""
    g = grid.Grid(x0=0.0, y0=0.0, cell=1.0, nx=10, ny=10)
    win = grid.window(g, (0.0, 0.0, 10.0, 10.0))
    assert win is not None
    x = np.array([0.5, 1.5, 1.5, 0.5, 8.5, 9.5, 9.5, 8.5])
    y = np.array([0.5, 0.5, 1.5, 0.5, 8.5, 8.5, 9.5, 8.5])
    mask = grid.edge_mask(g, win, x, y, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert not mask[5, 5]
    assert mask[0, 0] and mask[9, 9]


def test_runs_split_rows_and_close_runs_at_open_sides() -> None:
    """Runs follow the mask row by row; clean runs at an open side are known outside."""
    g = grid.Grid(x0=0.0, y0=0.0, cell=1.0, nx=10, ny=10)
    win = grid.Window(2, 5, 3, 4, True, True, True, True)
    mask = np.array([[False, True, False, False], [False, False, False, False]])
    r = grid.runs(g, win, mask)
    assert r.first.tolist() == [32, 33, 34, 42]
    assert r.last.tolist() == [32, 33, 35, 45]
    assert r.boundary.tolist() == [False, True, False, False]
    assert r.closed.tolist() == [True, False, True, True]


def test_expand_concatenates_ranges() -> None:
    """expand lists the indices of half-open ranges in order, skipping empty ones."""
    got = grid.expand(np.array([5, 9, 0, 2]), np.array([7, 9, 1, 4]))
    assert got.tolist() == [5, 6, 0, 2, 3]
