"""Tests for alertd.orders: the pure rules of order values."""

from __future__ import annotations

import pytest

from alertd import orders, settings


@pytest.mark.parametrize(
    ("count", "minimum", "shown"),
    [
        (0, 10, "fewer than 10"),
        (1, 10, "fewer than 10"),
        (9, 10, "fewer than 10"),
        (10, 10, 10),
        (11, 10, 11),
        (0, 1, 0),
        (0, 0, 0),
        (2, 3, "fewer than 3"),
    ],
)
def test_coarse_hides_counts_under_the_minimum(count: int, minimum: int,
                                               shown: int | str) -> None:
    """A preview count is exact from the minimum up and "fewer than N" below (0 included)."""
    assert orders.coarse(count, minimum) == shown


@pytest.mark.parametrize(
    ("body", "small"),
    [
        ({"area": {"circle": {"lat": 37.7, "lon": 140.4, "radius_m": 100}}}, True),
        ({"area": {"type": "Polygon", "coordinates": [[[0, 0]] * 32]}}, True),
        ({"area": {"type": "Polygon", "coordinates": [[[0, 0]] * 33]}}, False),
        ({"level": 5}, True),
        ("not an object", True),
    ],
)
def test_small_areas_are_parsed_inline(body: object, small: bool) -> None:
    """Areas of up to compute.inline_max_positions (32) positions are parsed inline."""
    assert orders.small(body, settings.load(environ={}).compute) is small
