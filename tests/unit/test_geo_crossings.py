"""Tests for geo.crossings: counting where polygon edges meet, with an early stop."""

from __future__ import annotations

from geo import crossings
from tests import shapes

SQUARE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
BOW_TIE = [(0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)]


def test_simple_ring_has_no_crossing() -> None:
    """A square counts 0: consecutive edges, first and last included, share a vertex only."""
    assert crossings.count([SQUARE], 10) == 0


def test_bow_tie_crosses_once() -> None:
    """A bow-tie's two diagonals cross once."""
    assert crossings.count([BOW_TIE], 10) == 1


def test_repeated_vertices_count_nothing() -> None:
    """A ring with a vertex repeated is as simple as without it."""
    ring = [SQUARE[0], SQUARE[1], SQUARE[1], SQUARE[2], SQUARE[3], SQUARE[0]]
    assert crossings.count([ring], 10) == 0


def test_star_counts_every_crossing() -> None:
    """The star {n/k} crosses itself n * (k - 1) times: 7 for a heptagram, 318,400 for 800."""
    assert crossings.count([shapes.star(7)], 100) == 7 * (shapes.star_step(7) - 1) == 7
    assert crossings.count([shapes.star(800)], 10**6) == 800 * (399 - 1) == 318_400


def test_counting_stops_past_the_limit() -> None:
    """Past the limit counting stops: the answer exceeds the limit, far short of the total."""
    found = crossings.count([shapes.star(800)], 1000)
    assert 1000 < found < 318_400 // 10


def test_rings_crossing_each_other_count() -> None:
    """Two overlapping squares (two rings) cross at 2 points."""
    other = [(x + 0.5, y + 0.5) for x, y in SQUARE]
    assert crossings.count([SQUARE, other], 10) == 2
