"""Where a device's sync stands in each of its streams (pure): the position a cursor holds, and
which rows the next page of the inbox and shelter streams serves.

A position is 8 integers (sheets.cursor seals them):

    sheets | inbox xid, id | shelters fingerprint, phase, xid, seq | issued (unix seconds)

- sheets: the last sheets.change_seq served (per-device commit order, see migration 0010).
- inbox: the last (change_xid, id) served. Rows are served only below the horizon (the xmin
  of the serving statement's snapshot, migration 0013), where the order is final; a page that
  is not full moves the position up to the horizon.
- shelters: the shelters a device cares about change when it moves or edits a sheet, so the
  position names the set it was computed for (a fingerprint of their ids). A new set (or the
  first sync) starts a catch-up: every shelter of the set in seq order, as it stands below
  the catch-up's horizon h0; then changes from (h0, 0) on in (change_xid, seq) order. A shelter
  that changes during a catch-up is left to the changes (its change_xid is past h0): each state
  of a shelter is served once.
- issued: when the cursor was given out, for the cursor age limit (sync.cursor_max_age_s).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sheets.errors import CursorExpired, CursorUnreadable

NUMBERS: Final = 8
MAX: Final = 2**63 - 1
FRESH, CATCHING_UP, CHANGES = 0, 1, 2  # shelter stream phases

Mark = tuple[int, int]  # (change xid, row number) of a row in its stream's order


@dataclass(frozen=True, slots=True)
class Position:
    """A device's place in each sync stream."""

    sheets: int = 0
    inbox: Mark = (0, 0)
    fingerprint: int = 0
    phase: int = FRESH
    shelters: Mark = (0, 0)  # CATCHING_UP: (h0, last seq served); CHANGES: the last mark
    issued: int = 0

    def numbers(self) -> tuple[int, ...]:
        """The position as the integers a cursor holds."""
        return (self.sheets, *self.inbox, self.fingerprint, self.phase, *self.shelters,
                self.issued)

    @classmethod
    def from_numbers(cls, numbers: Sequence[int]) -> Position:
        """The position a cursor held (CursorUnreadable for another layout)."""
        if len(numbers) != NUMBERS or numbers[4] not in (FRESH, CATCHING_UP, CHANGES):
            raise CursorUnreadable("the cursor is from an older server; sync again without one")
        n = tuple(numbers)
        return cls(n[0], (n[1], n[2]), n[3], n[4], (n[5], n[6]), n[7])


def check_age(position: Position, now: int, max_age_s: int) -> None:
    """CursorExpired when the cursor was given out longer ago than the server keeps serving."""
    if now - position.issued > max_age_s:
        raise CursorExpired(
            f"the cursor is older than {max_age_s} s, longer than this server keeps what changed;"
            " sync again without one")


def fingerprint(ids: Iterable[str]) -> int:
    """A 63-bit fingerprint of a set of ids (the same on every node and across restarts)."""
    digest = hashlib.blake2b("\n".join(sorted(set(ids))).encode("utf-8"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") & MAX


def next_inbox(after: Mark, served: Sequence[Mark], full: bool, horizon: int) -> Mark:
    """The inbox position after a page: its last row when the page was full (more may follow
    below the horizon), otherwise the horizon itself (everything below it was served)."""
    if full:
        return served[-1]
    return max(after, (horizon, 0))



@dataclass(frozen=True, slots=True)
class ShelterPage:
    """The shelters to serve now (indexes into the rows given), where the stream stands after
    them, and whether more wait."""

    served: tuple[int, ...]
    fingerprint: int
    phase: int
    mark: Mark
    more: bool


def shelter_page(position: Position, marks: Sequence[Mark], ids_fingerprint: int,
                 horizon: int, limit: int) -> ShelterPage:
    """The next page of the shelter stream over the device's shelters now (their marks:
    (change_xid, seq), all read with one snapshot whose xmin is `horizon`). A catch-up that
    ends within the page goes on with the changes since it began."""
    phase, (x, s) = position.phase, position.shelters
    if phase == FRESH or position.fingerprint != ids_fingerprint:
        phase, x, s = CATCHING_UP, horizon, 0
    if phase == CHANGES:
        return _changes(marks, ids_fingerprint, (x, s), horizon, limit)
    order = sorted((i for i, m in enumerate(marks) if m[1] > s and m[0] < x),
                   key=lambda i: marks[i][1])
    page = order[:limit]
    if len(order) > limit:
        return ShelterPage(tuple(page), ids_fingerprint, CATCHING_UP,
                           (x, marks[page[-1]][1]), True)
    rest = _changes(marks, ids_fingerprint, (x, 0), horizon, limit - len(page))
    return dataclasses.replace(rest, served=(*page, *rest.served))


def _changes(marks: Sequence[Mark], ids_fingerprint: int, after: Mark, horizon: int,
             limit: int) -> ShelterPage:
    order = sorted((i for i, m in enumerate(marks) if after < m and m[0] < horizon),
                   key=lambda i: marks[i])
    page = order[:limit]
    if len(order) > limit:
        return ShelterPage(tuple(page), ids_fingerprint, CHANGES,
                           marks[page[-1]] if page else after, True)
    return ShelterPage(tuple(page), ids_fingerprint, CHANGES, max(after, (horizon, 0)), False)
