"""Hostile shapes for tests: the self-intersecting star of issue 7, as GeoJSON and as CAP text."""

from __future__ import annotations

import math
from typing import Any

CENTRE = (140.47, 37.75)  # Fukushima City, lon/lat


def star_step(n: int) -> int:
    """The step k of the star {n/k}: the largest below n/2 - 0.5 that is coprime with n."""
    k = n // 2 - 1
    while math.gcd(n, k) != 1:
        k -= 1
    return k


def star(n: int, radius_deg: float = 0.05) -> list[list[float]]:
    """A closed ring of n vertices on a circle, each joined to one almost opposite: its edges
    cross n * (k - 1) times (k = star_step(n)), e.g. 318,400 times for 800 vertices."""
    k = star_step(n)
    ring = [[CENTRE[0] + radius_deg * math.cos(2 * math.pi * i * k / n),
             CENTRE[1] + radius_deg * math.sin(2 * math.pi * i * k / n)] for i in range(n)]
    return [*ring, ring[0]]


def star_polygon(n: int) -> dict[str, Any]:
    """The star as a GeoJSON Polygon."""
    return {"type": "Polygon", "coordinates": [star(n)]}


def star_cap(n: int) -> str:
    """The star as the text of a CAP <polygon>: "lat,lon" pairs."""
    return " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in star(n))


def circle_ring(n: int, radius_deg: float = 0.05) -> list[list[float]]:
    """A closed, convex ring of n vertices around the centre (valid, no crossings)."""
    ring = [[CENTRE[0] + radius_deg * math.cos(2 * math.pi * i / n),
             CENTRE[1] + radius_deg * math.sin(2 * math.pi * i / n)] for i in range(n)]
    return [*ring, ring[0]]
