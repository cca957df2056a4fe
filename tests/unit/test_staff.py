"""alertd.staff: reading token lifetimes and expiry times (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alertd import errors, staff

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "lifetime"), [
    ("45s", timedelta(seconds=45)), ("90m", timedelta(minutes=90)), ("12h", timedelta(hours=12)),
    ("30d", timedelta(days=30)), ("2w", timedelta(weeks=2)), (" 7d ", timedelta(days=7)),
])
def test_lifetimes_are_a_number_and_a_unit(text: str, lifetime: timedelta) -> None:
    """A lifetime is a positive number followed by s, m, h, d or w."""
    assert staff.parse_duration(text) == lifetime


@pytest.mark.parametrize("text", ["30", "0d", "-1d", "1.5d", "3 days", "d", "", "1y"])
def test_other_lifetimes_are_refused(text: str) -> None:
    """Anything else is refused, naming the text and the expected form."""
    with pytest.raises(errors.InvalidInput, match="is not a lifetime: give a positive number"):
        staff.parse_duration(text)


def test_instants_keep_their_offset() -> None:
    """An ISO time with an offset is read as that instant."""
    when = staff.parse_instant("2026-03-31T17:00:00+09:00", NOW)
    assert when == datetime(2026, 3, 31, 8, 0, tzinfo=UTC)
    assert when.utcoffset() == timedelta(hours=9)


@pytest.mark.parametrize(("text", "reason"), [
    ("2026-03-31T17:00:00", "needs its UTC offset"),
    ("2026-01-31T12:00:00Z", "is in the past"),
    ("next tuesday", "is not an ISO 8601 time"),
])
def test_bad_instants_are_refused(text: str, reason: str) -> None:
    """A time without offset, not after now, or unreadable is refused with the reason."""
    with pytest.raises(errors.InvalidInput, match=reason):
        staff.parse_instant(text, NOW)
