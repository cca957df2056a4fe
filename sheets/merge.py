"""The version rules of sheet writes (pure): If-Match, server-assigned versions, tombstones.

A sheet's version is an integer the server assigns: 1 at its first write, then one more at
every write, a delete included. A delete leaves a tombstone (the id, its version, ``deleted``)
that sync reports, and the next write after it continues the count, so a version never repeats
for one id and an ETag (``"<version>"``) names exactly one state of it.

- Creating (no live sheet under the id) needs no If-Match. An If-Match there names a state the
  phone saw: for a tombstone it must be the tombstone's version (the phone saw the delete and
  writes the sheet again); for an id never written, no state can match.
- Replacing a live sheet needs If-Match naming its current version (or ``*``); without one the
  write is refused (`IfMatchRequired`), with another version it is stale (`StaleVersion`, which
  carries the server's copy).
- Deleting needs no If-Match; one that is given must match. Deleting a tombstone again changes
  nothing (the phone's goal is reached), whatever If-Match says.
- A device keeps at most `MAX_SHEETS` live sheets; tombstones do not count.

The functions decide; storage applies the decision inside the transaction that read `current`
(``SELECT ... FOR UPDATE``), so two writers cannot both pass the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sheets.errors import BadIfMatch, IfMatchRequired, SheetMissing, StaleVersion, TooManySheets
from sheets.model import StoredSheet

MAX_SHEETS: Final = 10
MAX_VERSION: Final = 2**63 - 1
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')
_VERSION = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class IfMatch:
    """A parsed If-Match header: ``*`` (any current state), or the versions it names."""

    any: bool = False
    versions: frozenset[int] = frozenset()

    def matches(self, current: StoredSheet) -> bool:
        """Whether the header names this state (``*`` names any live sheet, not a tombstone)."""
        if current.deleted:
            return current.version in self.versions
        return self.any or current.version in self.versions


@dataclass(frozen=True, slots=True)
class Write:
    """A permitted write: the version it stores, and whether it (re)creates the sheet."""

    version: int
    created: bool


def etag(version: int) -> str:
    """The ETag of a sheet version."""
    return f'"{version}"'


def parse_if_match(header: str | None) -> IfMatch | None:
    """The If-Match header (RFC 9110): ``*`` or a list of entity tags. Weak tags and tags that
    are not versions of ours are kept out: they can never match by strong comparison."""
    if header is None:
        return None
    if header.strip() == "*":
        return IfMatch(any=True)
    versions: set[int] = set()
    for part in header.split(","):
        tag = _TAG.fullmatch(part)
        if tag is None:
            raise BadIfMatch
        if tag.group(1) is None and _VERSION.fullmatch(tag.group(2)):
            versions.add(int(tag.group(2)))
    return IfMatch(versions=frozenset(versions))


def put(current: StoredSheet | None, if_match: IfMatch | None, live_sheets: int) -> Write:
    """Whether a PUT may write, and as which version; `live_sheets` counts the device's live
    sheets other than this one."""
    if current is None or current.deleted:
        if if_match is not None and (current is None or not if_match.matches(current)):
            raise StaleVersion(current)
        if live_sheets >= MAX_SHEETS:
            raise TooManySheets(f"a device keeps at most {MAX_SHEETS} sheets; delete one first")
        return Write(_next(current), created=True)
    if if_match is None:
        raise IfMatchRequired
    if not if_match.matches(current):
        raise StaleVersion(current)
    return Write(_next(current), created=False)


def delete(current: StoredSheet | None, if_match: IfMatch | None) -> int | None:
    """The version of the tombstone a DELETE leaves, or None when the sheet is already one."""
    if current is None:
        raise SheetMissing
    if current.deleted:
        return None
    if if_match is not None and not if_match.matches(current):
        raise StaleVersion(current)
    return _next(current)


def _next(current: StoredSheet | None) -> int:
    return 1 if current is None else current.version + 1
