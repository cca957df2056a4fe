"""sheets.merge: who may write a sheet, as which version; If-Match parsing; tombstones."""

from __future__ import annotations

import uuid

import pytest

from sheets import merge
from sheets.errors import BadIfMatch, IfMatchRequired, SheetMissing, StaleVersion, TooManySheets
from sheets.merge import IfMatch, Write
from sheets.model import Place, Sheet, StoredSheet

ID = uuid.UUID("0b9a3c4e-5d6f-4a1b-8c2d-3e4f5a6b7c8d")
SHEET = Sheet(name="家", places=(Place("home", 37.75, 140.47),))
LIVE = StoredSheet(ID, 3, False, SHEET)
TOMBSTONE = StoredSheet(ID, 4, True, None)


@pytest.mark.parametrize(("header", "parsed"), [
    (None, None),
    ("*", IfMatch(any=True)),
    (' * ', IfMatch(any=True)),
    ('"3"', IfMatch(versions=frozenset({3}))),
    ('"2", "3" ,"9"', IfMatch(versions=frozenset({2, 3, 9}))),
    ('W/"3"', IfMatch()),
    ('"abc", "03", "0", ""', IfMatch()),
    ('"9223372036854775807"', IfMatch(versions=frozenset({2**63 - 1}))),
    ('"99999999999999999999"', IfMatch()),
])
def test_if_match_parsing(header: str | None, parsed: IfMatch | None) -> None:
    """If-Match gives `*` or the versions named by strong tags; weak tags and foreign tags name
    nothing (they never match by strong comparison)."""
    assert merge.parse_if_match(header) == parsed


@pytest.mark.parametrize("header", ["3", "", '"3', '"3",', "*, \"3\"", '"a b"', 'W/3'])
def test_malformed_if_match_is_refused(header: str) -> None:
    """An If-Match that is neither `*` nor a list of quoted tags is refused."""
    with pytest.raises(BadIfMatch):
        merge.parse_if_match(header)


def test_etag_round_trips_through_if_match() -> None:
    """The ETag of a version, sent back as If-Match, names that version."""
    assert merge.etag(7) == '"7"'
    assert merge.parse_if_match(merge.etag(7)) == IfMatch(versions=frozenset({7}))


def test_creating_needs_no_if_match_and_starts_at_version_1() -> None:
    """A PUT under a new id creates version 1."""
    assert merge.put(None, None, live_sheets=0) == Write(1, created=True)


def test_creating_with_if_match_on_a_never_written_id_is_stale() -> None:
    """If-Match names a state; an id never written has none, so it is stale with no copy."""
    with pytest.raises(StaleVersion) as caught:
        merge.put(None, IfMatch(versions=frozenset({1})), live_sheets=0)
    assert caught.value.current is None
    with pytest.raises(StaleVersion):
        merge.put(None, IfMatch(any=True), live_sheets=0)


def test_replacing_needs_if_match() -> None:
    """A PUT over a live sheet without If-Match is refused (the API answers 428)."""
    with pytest.raises(IfMatchRequired):
        merge.put(LIVE, None, live_sheets=1)


def test_replacing_with_the_current_version_or_star_writes_the_next() -> None:
    """If-Match naming the current version (alone, in a list, or `*`) gives version + 1."""
    for if_match in (IfMatch(versions=frozenset({3})), IfMatch(versions=frozenset({1, 3})),
                     IfMatch(any=True)):
        assert merge.put(LIVE, if_match, live_sheets=1) == Write(4, created=False)


def test_a_stale_version_carries_the_servers_copy() -> None:
    """If-Match naming an older version is stale, and the error holds the current sheet."""
    with pytest.raises(StaleVersion) as caught:
        merge.put(LIVE, IfMatch(versions=frozenset({2})), live_sheets=1)
    assert caught.value.current == LIVE


def test_writing_after_a_delete_continues_the_count() -> None:
    """Over a tombstone, a PUT without If-Match or naming the tombstone recreates the sheet
    with the next version; naming an older version or `*` is stale (the phone missed the
    delete) and carries the tombstone."""
    assert merge.put(TOMBSTONE, None, live_sheets=0) == Write(5, created=True)
    assert merge.put(TOMBSTONE, IfMatch(versions=frozenset({4})), 0) == Write(5, created=True)
    for stale in (IfMatch(versions=frozenset({3})), IfMatch(any=True)):
        with pytest.raises(StaleVersion) as caught:
            merge.put(TOMBSTONE, stale, live_sheets=0)
        assert caught.value.current == TOMBSTONE


def test_at_most_ten_live_sheets() -> None:
    """A device with 10 live sheets cannot create an 11th; replacing one is still allowed."""
    assert merge.MAX_SHEETS == 10
    assert merge.put(None, None, live_sheets=9) == Write(1, created=True)
    with pytest.raises(TooManySheets):
        merge.put(None, None, live_sheets=10)
    with pytest.raises(TooManySheets):
        merge.put(TOMBSTONE, None, live_sheets=10)
    assert merge.put(LIVE, IfMatch(versions=frozenset({3})), live_sheets=9).version == 4


def test_delete_leaves_a_tombstone_with_the_next_version() -> None:
    """DELETE of a live sheet, with no If-Match or the current one, gives the tombstone
    version + 1; a stale If-Match is refused with the server's copy."""
    assert merge.delete(LIVE, None) == 4
    assert merge.delete(LIVE, IfMatch(versions=frozenset({3}))) == 4
    with pytest.raises(StaleVersion) as caught:
        merge.delete(LIVE, IfMatch(versions=frozenset({2})))
    assert caught.value.current == LIVE


def test_deleting_a_tombstone_changes_nothing_and_an_unknown_id_is_missing() -> None:
    """A second DELETE (any If-Match) is a no-op; a DELETE of an id never written is missing."""
    assert merge.delete(TOMBSTONE, None) is None
    assert merge.delete(TOMBSTONE, IfMatch(versions=frozenset({1}))) is None
    with pytest.raises(SheetMissing):
        merge.delete(None, None)
