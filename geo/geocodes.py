"""CAP ``geocode`` pairs naming Japanese areas, resolved to geometry from the municipality table.

Two kinds of code are understood, told apart by their shape:

- 6 digits: a local-government code (全国地方公共団体コード), the 5-digit code and a check digit
  that must be right; 072010 is 福島市.
- 7 digits: a JMA area code (the 5-digit code and a 2-digit sub-area): a shipped sub-area such as
  0720302 (郡山市湖南), or ``…00`` for the whole municipality (0720300 is all of 郡山市).

The code's shape decides what it is; the ``valueName`` only decides whether the pair is
Japanese at all, so that a foreign scheme's code that happens to look the same (a FIPS6 county,
a Canadian census subdivision) is never read as a Japanese one. JMA's own 6-digit forecast
regions (070000, 070010, …) never collide with a municipality: no municipality code begins
with ``0700``.
"""

from __future__ import annotations

from collections.abc import Iterable

import shapely

from geo import municipalities

# Case-insensitive fragments of the valueNames that Japanese senders use for area codes.
MUNICIPALITY_NAMES = ("jis", "lgcode", "地方公共団体", "municipality", "市町村")
JMA_NAMES = ("jma", "気象庁", "area")
_NAMES = MUNICIPALITY_NAMES + JMA_NAMES


def is_japanese(value_name: str) -> bool:
    """Whether a geocode ``valueName`` names a Japanese area-code scheme."""
    folded = value_name.casefold()
    return any(name in folded for name in _NAMES)


def _digits(value: str, count: int) -> bool:
    """Whether ``value`` is exactly ``count`` ASCII digits."""
    return len(value) == count and value.isascii() and value.isdigit()


def code_of(value_name: str, value: str, table: municipalities.Table) -> str | None:
    """The table code (6-digit municipality or 7-digit sub-area) a geocode names, or None."""
    code = value.strip()
    if not is_japanese(value_name):
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


def resolve(
    value_name: str, value: str, table: municipalities.Table
) -> shapely.Geometry | None:
    """The geometry of a Japanese municipality or JMA sub-area geocode, or None if unknown."""
    code = code_of(value_name, value, table)
    return None if code is None else table.get(code)


def resolve_all(
    geocodes: Iterable[tuple[str, str]], table: municipalities.Table
) -> tuple[shapely.Geometry | None, list[str]]:
    """The union of every resolvable geocode, and the ``valueName=value`` of the others."""
    found: dict[str, shapely.Geometry] = {}
    unresolved: dict[str, None] = {}
    for value_name, value in geocodes:
        code = code_of(value_name, value, table)
        if code is None:
            unresolved[f"{value_name}={value}"] = None
        elif code not in found:
            found[code] = table.get(code)
    if not found:
        return None, list(unresolved)
    return shapely.union_all(list(found.values())), list(unresolved)


def municipality_codes(
    geocodes: Iterable[tuple[str, str]], table: municipalities.Table
) -> tuple[str, ...]:
    """The 6-digit codes of the municipalities the resolvable geocodes name, in first-seen order."""
    found: dict[str, None] = {}
    for value_name, value in geocodes:
        code = code_of(value_name, value, table)
        if code is not None:
            found[municipalities.to_code6(code)] = None
    return tuple(found)
