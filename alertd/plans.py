"""A household's plan for one alert (pure): what its My Evacuation Sheet says to do now.

For an alert (an order, or a JMA warning at a level equivalent) and one device's live sheets:
which of the household's places the area covers (a home before any other place, of any
sheet), the level at which the household leaves for the hazard (`sheets.advice.trigger`:
members who need time bring it forward to 3), its first destination with its live state, and,
when that destination will not do, the nearest open shelter designated for the hazard.

- A shelter destination is `unsuitable` when not designated for the hazard
  (`sheets.advice.designated`), else `open` (with its crowding), `full` or `not_open`; a
  shelter missing from the shelter list is left out (the nearest open one is named instead).
- Staying in (屋内安全確保) is `safe` only when `sheets.advice.stay` says so for the hazard;
  a relative's home or a hotel is `not_safe` when it lies in the alert's area itself.
- Staying in is the home's plan: when the area covers another place and not the home, the
  household there is pointed to the nearest open shelter instead.
- A device whose sheets have no place in the area (it was matched by where the phone is)
  gets the trigger alone: the destinations were planned from the household's places.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import shapely

from alertd import render
from alertd.shelters import StoredShelter
from geo import areas
from sheets import advice, model

K = TypeVar("K")

# A shelter further than this is no help to a household looking for one nearby: the text says
# that no open shelter is known near it instead.
NEAREST_MAX_M = 20_000.0


@dataclass(frozen=True, slots=True)
class Alert:
    """What a plan needs of an alert: its area (lon/lat geometry: an order's area, a warned
    municipality), its level (a JMA warning's level equivalent) and its hazard."""

    area: shapely.Geometry
    level: int
    hazard: str


@dataclass(frozen=True, slots=True, eq=False)
class Shelters:
    """The shelters plans speak of for one hazard: those the sheets name, by id, and the
    open ones designated for the hazard, for the nearest-shelter search (up to max_m away)."""

    by_id: Mapping[str, StoredShelter]
    hazard: str
    max_m: float
    suitable: tuple[StoredShelter, ...] = ()
    lons: np.ndarray = field(default_factory=lambda: np.empty(0))
    lats: np.ndarray = field(default_factory=lambda: np.empty(0))

    @classmethod
    def of(cls, shelters: Iterable[StoredShelter], hazard: str,
           max_m: float = NEAREST_MAX_M) -> Shelters:
        """The book of these shelters (named ones and open ones, as loaded) for a hazard."""
        by_id = {s.id: s for s in shelters}
        # Sorted by id so that two shelters at the same distance are told apart the same way.
        suitable = tuple(s for _, s in sorted(by_id.items())
                         if s.status == "open" and advice.designated(s.hazards, hazard))
        return cls(by_id=by_id, hazard=hazard, max_m=max_m, suitable=suitable,
                   lons=np.array([s.lon for s in suitable], dtype=np.float64),
                   lats=np.array([s.lat for s in suitable], dtype=np.float64))

    def nearest(self, lat: float, lon: float) -> render.Nearest | None:
        """The nearest open shelter designated for the hazard, if one is within max_m."""
        if not self.suitable:
            return None
        metres = areas.distances_m(lon, lat, self.lons, self.lats)
        best = int(np.argmin(metres))
        if metres[best] > self.max_m:
            return None
        return render.Nearest(self.suitable[best].name, float(metres[best]))


def _inside(area: shapely.Geometry, lon: float | None, lat: float | None) -> bool:
    if lon is None or lat is None:
        return False
    return bool(shapely.intersects_xy(area, lon, lat))


def matched_place(sheets: Sequence[model.Sheet], covered: Sequence[Sequence[bool]]
                  ) -> tuple[model.Sheet, model.Place] | None:
    """The sheet and place the alert is about: a covered home of any sheet first, else the
    first covered place in sheet order; `covered[i][j]` says whether the area covers place j
    of sheet i."""
    for sheet, flags in zip(sheets, covered, strict=True):
        for place, inside in zip(sheet.places, flags, strict=True):
            if inside and place.kind == "home":
                return sheet, place
    for sheet, flags in zip(sheets, covered, strict=True):
        for place, inside in zip(sheet.places, flags, strict=True):
            if inside:
                return sheet, place
    return None


def destination(sheet: model.Sheet, place: model.Place, alert: Alert, shelters: Shelters
                ) -> render.Destination | None:
    """The sheet's first destination with its live state for this alert, None when it has
    none (or none the household can use from this place)."""
    if not sheet.destinations:
        return None
    first = sheet.destinations[0]
    if isinstance(first, model.ShelterDestination):
        found = shelters.by_id.get(first.shelter_id)
        if found is None:
            return None
        if not advice.designated(found.hazards, alert.hazard):
            return render.Destination("shelter", "unsuitable", found.name)
        if found.status == "open":
            return render.Destination("shelter", "open", found.name, found.crowding)
        if found.status == "full":
            return render.Destination("shelter", "full", found.name, "full")
        return render.Destination("shelter", "not_open", found.name)
    if isinstance(first, model.StayDestination):
        if place.kind != "home":
            return None
        safe = advice.stay(sheet, alert.hazard).safe is True
        return render.Destination("stay", "safe" if safe else "not_safe")
    inside = _inside(alert.area, first.lon, first.lat)
    return render.Destination(first.kind, "not_safe" if inside else "safe", first.label or "")


def plan(sheets: Sequence[model.Sheet], covered: Sequence[Sequence[bool]], alert: Alert,
         shelters: Shelters) -> render.Plan | None:
    """The plan of a household (one device's live sheets, `covered` as for `matched_place`)
    for the alert; None without sheets."""
    if not sheets:
        return None
    found = matched_place(sheets, covered)
    if found is None:
        return render.Plan(trigger=advice.trigger(sheets[0], alert.hazard))
    sheet, place = found
    dest = destination(sheet, place, alert, shelters)
    nearest = None
    if dest is None or dest.needs_alternative:
        nearest = shelters.nearest(place.lat, place.lon)
    return render.Plan(place=place.kind, place_label=place.label or "",
                       trigger=advice.trigger(sheet, alert.hazard), destination=dest,
                       nearest=nearest)


def household(sheets: Sequence[model.Sheet], alert: Alert, shelters: Shelters
              ) -> render.Plan | None:
    """The plan of one household (a device's live sheets) for the alert; None without sheets."""
    covered = [[_inside(alert.area, p.lon, p.lat) for p in s.places] for s in sheets]
    return plan(sheets, covered, alert, shelters)


def households(sheets: Mapping[K, Sequence[model.Sheet]], alert: Alert, shelters: Shelters
               ) -> dict[K, render.Plan]:
    """The plans of many households (by device), every place tested against the area in one
    vectorised call; households without sheets are left out."""
    keys = [k for k, mine in sheets.items() if mine]
    lons = [p.lon for k in keys for s in sheets[k] for p in s.places]
    lats = [p.lat for k in keys for s in sheets[k] for p in s.places]
    shapely.prepare(alert.area)
    inside = shapely.intersects_xy(alert.area, np.array(lons, dtype=np.float64),
                                   np.array(lats, dtype=np.float64)).tolist()
    out: dict[K, render.Plan] = {}
    at = 0
    for k in keys:
        covered = []
        for s in sheets[k]:
            covered.append(inside[at:at + len(s.places)])
            at += len(s.places)
        found = plan(sheets[k], covered, alert, shelters)
        if found is not None:
            out[k] = found
    return out
