"""alertd.positions: the sync position a cursor holds, the cursor age limit, and the paging of
the inbox and shelter streams (each state served once, none missed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertd import positions
from alertd.positions import CATCHING_UP, CHANGES, FRESH, Position
from sheets import cursor
from sheets.errors import CursorExpired, CursorUnreadable

KEY = bytes(range(32))


def test_a_position_round_trips_through_a_cursor() -> None:
    """Every field of a position comes back from its cursor's integers."""
    p = Position(7, (900, 12), positions.MAX, CHANGES, (901, 3), 1_700_000_000)
    text = cursor.encode(p.numbers(), KEY, b"dev")
    assert Position.from_numbers(cursor.decode(text, KEY, b"dev")) == p


@pytest.mark.parametrize("numbers", [(5,), (0,) * 7, (0,) * 4 + (3,) + (0,) * 3])
def test_another_layout_is_unreadable(numbers: tuple[int, ...]) -> None:
    """A cursor of an older server (another count of integers) or an unknown phase is
    unreadable, with a reason that says so."""
    with pytest.raises(CursorUnreadable):
        Position.from_numbers(numbers)


def test_a_cursor_older_than_the_limit_has_expired() -> None:
    """A cursor issued more than max_age_s ago is refused; one just within it is not."""
    positions.check_age(Position(issued=1000), now=1100, max_age_s=100)
    with pytest.raises(CursorExpired, match="older than 100 s"):
        positions.check_age(Position(issued=1000), now=1101, max_age_s=100)


def test_fingerprints_name_a_set() -> None:
    """The fingerprint ignores order and repeats, tells other sets apart and fits a cursor."""
    a = positions.fingerprint(["s1", "s2", "s2"])
    assert a == positions.fingerprint(["s2", "s1"])
    assert a != positions.fingerprint(["s1"]) != positions.fingerprint([])
    assert 0 <= a <= positions.MAX


def test_the_inbox_moves_to_the_horizon_after_a_short_page() -> None:
    """A full page leaves the position at its last row; a short one at the horizon, never
    behind where it was."""
    assert positions.next_inbox((5, 1), [(6, 2), (7, 1)], True, 9) == (7, 1)
    assert positions.next_inbox((5, 1), [(6, 2)], False, 9) == (9, 0)
    assert positions.next_inbox((5, 1), [], False, 4) == (5, 1)


def test_a_first_sync_catches_up_then_follows_changes() -> None:
    """Fresh: every shelter below the horizon in seq order, a page at a time; a shelter
    changed at or past the catch-up's start comes with the changes that follow it."""
    marks = [(3, 1), (8, 2), (4, 3)]  # (change_xid, seq)
    fp = positions.fingerprint(["a", "b", "c"])
    first = positions.shelter_page(Position(), marks, fp, 6, 1)
    assert (first.served, first.phase, first.mark, first.more) == ((0,), CATCHING_UP, (6, 1),
                                                                   True)
    at = Position(fingerprint=fp, phase=first.phase, shelters=first.mark)
    second = positions.shelter_page(at, marks, fp, 9, 5)
    assert second.served == (2, 1) and second.phase == CHANGES and not second.more
    assert second.mark == (9, 0)


def test_another_set_starts_again() -> None:
    """A position computed for another set of shelters starts a new catch-up."""
    marks = [(3, 1)]
    at = Position(fingerprint=1, phase=CHANGES, shelters=(50, 0))
    page = positions.shelter_page(at, marks, 2, 60, 10)
    assert page.served == (0,) and page.fingerprint == 2 and page.phase == CHANGES


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.sampled_from(["change", "sync"]),
                                             st.integers(0, 5), st.integers(1, 3),
                                             st.integers(0, 3)), max_size=40))
def test_each_state_of_each_shelter_is_served_once_and_the_last_one_arrives(
        n: int, steps: list[tuple[str, int, int, int]]) -> None:
    """Changes interleaved with syncs of random page sizes, with a horizon lagging behind the
    commits: no shelter state is served twice, and syncing at the end leaves the phone with
    every shelter's latest state."""
    xid = 10
    versions: dict[int, list[int]] = {seq: [seq] for seq in range(1, n + 1)}  # seq -> xids
    horizon = xid
    at = Position()
    served: list[tuple[int, int]] = []
    phone: dict[int, int] = {}
    fp = positions.fingerprint(str(s) for s in versions)

    def sync(limit: int, lag: int) -> bool:
        nonlocal at, horizon
        horizon = max(horizon, xid + 1 - lag)
        seqs = sorted(versions)
        # What a snapshot sees: the latest version of each shelter (all committed), marked.
        marks = [(versions[s][-1], s) for s in seqs]
        page = positions.shelter_page(at, marks, fp, horizon, limit)
        for i in page.served:
            served.append(marks[i])
            phone[marks[i][1]] = marks[i][0]
        at = Position(fingerprint=page.fingerprint, phase=page.phase, shelters=page.mark)
        return page.more

    for what, which, limit, lag in steps:
        if what == "change":
            xid += 1
            versions[which % n + 1].append(xid)
        else:
            sync(limit, lag)
    for _ in range(100):
        if not sync(2, 0):
            break
    assert len(served) == len(set(served))
    assert phone == {s: v[-1] for s, v in versions.items()}
    assert at.phase == CHANGES and at.phase != FRESH
