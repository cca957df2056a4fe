"""alertd.points keys: one key space for locations, watched places and sheet places."""

from __future__ import annotations

import numpy as np

from alertd import points


def test_sheet_slots_follow_the_places_and_fit_the_key_space() -> None:
    """Sheet places take slots 4-53 (ten blocks of five), after the location and 3 places."""
    slots = [points.sheet_slot(b, p) for b in range(10) for p in range(5)]
    assert slots == list(range(4, 54))
    assert max(slots) < points.SLOTS
    assert points.key(7, 53) // points.SLOTS == 7


def test_a_match_names_each_device_once_and_those_reached_through_a_sheet() -> None:
    """Keys of one device's location, place and sheet places give that device once; only
    devices with a sheet-place key are in sheet_seqs."""
    keys = np.array([points.key(3, 0), points.key(3, 2), points.key(3, points.sheet_slot(0, 0)),
                     points.key(3, points.sheet_slot(9, 4)), points.key(1, 0),
                     points.key(2, points.sheet_slot(4, 1)), points.key(1, 3)], dtype=np.int64)
    match = points.matched(keys)
    assert match.seqs.tolist() == [1, 2, 3]
    assert match.sheet_seqs().tolist() == [2, 3]
    assert points.Match(seqs=np.array([5])).sheet_seqs().tolist() == []
