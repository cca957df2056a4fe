"""CAP ``geocode`` pairs naming Japanese areas, resolved to geometry from the municipality table.

Two kinds of code are understood, told apart by their shape:

- 6 digits: a local-government code (全国地方公共団体コード), the 5-digit code and a check digit
  that must be right; 072010 is 福島市.
- 7 digits: a JMA area code (the 5-digit code and a 2-digit sub-area): a shipped sub-area such as
  0720302 (郡山市湖南), or ``…00`` for the whole municipality (0720300 is all of 郡山市).

The code's shape decides what it is; the ``valueName`` only decides whether the pair is
Japanese at all (:class:`Scheme` ``systems``, from configuration), so that a foreign scheme's
code that happens to look the same (a FIPS6 county, a Canadian census subdivision) is never
read as a Japanese one. Only codes of the prefecture served (``prefecture``, and known to the
table) are ours: a neighbouring prefecture's codes in a feed name no area we serve. JMA's own
6-digit forecast regions (070000, 070010, …) never collide with a municipality: no
municipality code begins with ``0700``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import shapely

from geo import municipalities


@dataclass(frozen=True, slots=True)
class Scheme:
    """Which geocodes are ours: case-insensitive fragments of the ``valueName`` of the systems
    read, and the JIS code of the prefecture served (two digits)."""

    systems: tuple[str, ...]
    prefecture: str

    def reads(self, value_name: str) -> bool:
        """Whether a geocode ``valueName`` names a system whose codes are read."""
        folded = value_name.casefold()
        return any(name.casefold() in folded for name in self.systems)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The union of the geocodes that are ours (None if none is), the ``valueName=value`` of
    codes of a system read that are not ours (another prefecture, unknown), and of the others."""

    geometry: shapely.Geometry | None
    not_ours: tuple[str, ...] = ()
    unread: tuple[str, ...] = ()


def _digits(value: str, count: int) -> bool:
    """Whether ``value`` is exactly ``count`` ASCII digits."""
    return len(value) == count and value.isascii() and value.isdigit()


def code_of(value_name: str, value: str, table: municipalities.Table,
            scheme: Scheme) -> str | None:
    """The table code (6-digit municipality or 7-digit sub-area) a geocode names, or None."""
    code = value.strip()
    if not scheme.reads(value_name) or not code.startswith(scheme.prefecture):
        return None
    if _digits(code, 6):
        if code[5] != municipalities.check_digit(code[:5]):
            return None
        return code if table.is_known(code) else None
    if _digits(code, 7):
        if table.is_known(code):
            return code
        if code.endswith("00"):
            code6 = code[:5] + municipalities.check_digit(code[:5])
            return code6 if table.is_known(code6) else None
    return None


def resolve(value_name: str, value: str, table: municipalities.Table,
            scheme: Scheme) -> shapely.Geometry | None:
    """The geometry of a municipality or JMA sub-area geocode of ours, or None."""
    code = code_of(value_name, value, table, scheme)
    return None if code is None else table.get(code)


def resolve_all(geocodes: Iterable[tuple[str, str]], table: municipalities.Table,
                scheme: Scheme) -> Resolved:
    """The union of every geocode of ours, and the others named by kind, each once."""
    found: dict[str, shapely.Geometry] = {}
    not_ours: dict[str, None] = {}
    unread: dict[str, None] = {}
    for value_name, value in geocodes:
        code = code_of(value_name, value, table, scheme)
        if code is None:
            kind = not_ours if scheme.reads(value_name) else unread
            kind[f"{value_name}={value}"] = None
        elif code not in found:
            found[code] = table.get(code)
    geometry = shapely.union_all(list(found.values())) if found else None
    return Resolved(geometry, tuple(not_ours), tuple(unread))


def municipality_codes(geocodes: Iterable[tuple[str, str]], table: municipalities.Table,
                       scheme: Scheme) -> tuple[str, ...]:
    """The 6-digit codes of the municipalities our geocodes name, in first-seen order."""
    found: dict[str, None] = {}
    for value_name, value in geocodes:
        code = code_of(value_name, value, table, scheme)
        if code is not None:
            found[municipalities.to_code6(code)] = None
    return tuple(found)
