"""Tests for geo.geocodes: Japanese area codes in CAP geocodes resolved against the table."""

from __future__ import annotations

import pytest
import shapely

from alertd import settings
from geo import geocodes
from geo.municipalities import Table

# The configured systems and prefecture (config/alertd.toml), as the intake reads them.
_CFG = settings.load(environ={})
SCHEME = geocodes.Scheme(systems=_CFG.cap.geocode_systems, prefecture=_CFG.feeds.prefecture_code)


@pytest.mark.parametrize(
    ("value_name", "value"),
    [("JIS X 0402", "072010"), ("LGCODE", "072010"), ("全国地方公共団体コード", "072010"),
     ("municipality", " 072010 "), ("JMA", "0720100"), ("気象庁予報区", "0720100"),
     ("jma_area_code", "0720100"), ("市町村コード", "0720100")],
)
def test_fukushima_city_resolves_to_its_table_geometry(
    table: Table, value_name: str, value: str
) -> None:
    """福島市 by its 6-digit or 7-digit code, under any accepted valueName, is the table's area."""
    geometry = geocodes.resolve(value_name, value, table, SCHEME)
    assert geometry is not None
    assert shapely.equals(geometry, table.get("072010"))


def test_split_municipality_sub_area_and_whole(table: Table) -> None:
    """0720302 is the 湖南 sub-area of 郡山市 only; 0720300 and 072036 are the whole city."""
    konan = geocodes.resolve("JMA", "0720302", table, SCHEME)
    whole = geocodes.resolve("JMA", "0720300", table, SCHEME)
    assert konan is not None and whole is not None
    assert table.name("0720302") == "郡山市湖南"
    assert shapely.equals(konan, table.get("0720302"))
    assert shapely.equals(whole, table.get("072036"))
    assert shapely.area(konan) < shapely.area(whole)
    assert shapely.equals(geocodes.resolve("LGCODE", "072036", table, SCHEME), whole)


@pytest.mark.parametrize(
    ("value_name", "value"),
    [
        ("JMA", "0133200"),  # 福島町, Hokkaido: same name, wrong place
        ("LGCODE", "131016"),  # 千代田区, Tokyo
        ("LGCODE", "072011"),  # 福島市 with a wrong check digit
        ("JMA", "0720101"),  # no such sub-area
        ("JMA", "07201"),  # 5 digits
        ("JMA", "０７２０１００"),  # full-width digits
        ("FIPS6", "072010"),  # a foreign scheme, even when the digits match
        ("UGC", "0720100"),
        ("profile:CAP-CP:Location:0.3", "0720100"),
        ("EMMA_ID", "IL043"),
        ("JMA", ""),
    ],
)
def test_unknown_or_foreign_codes_resolve_to_none(
    table: Table, value_name: str, value: str
) -> None:
    """Codes outside the table, with a bad check digit or under a foreign valueName give None."""
    assert geocodes.resolve(value_name, value, table, SCHEME) is None


def test_resolve_all_unions_ours_and_lists_the_rest_by_kind(table: Table) -> None:
    """resolve_all unions every code of ours and names each other pair once: a code of a
    system read that is not ours (Hokkaido's 福島町) apart from a foreign system's."""
    pairs = [("LGCODE", "072010"), ("FIPS6", "030049"), ("JMA", "0720302"),
             ("JMA", "0720100"), ("FIPS6", "030049"), ("JMA", "0133200")]
    found = geocodes.resolve_all(pairs, table, SCHEME)
    assert found.geometry is not None
    expected = shapely.union(table.get("072010"), table.get("0720302"))
    assert shapely.area(shapely.symmetric_difference(found.geometry, expected)) < 1e-12
    assert (found.not_ours, found.unread) == (("JMA=0133200",), ("FIPS6=030049",))


def test_resolve_all_with_nothing_known_is_none(table: Table) -> None:
    """When no geocode resolves, the geometry is None and all of them are listed."""
    assert geocodes.resolve_all([("EMMA_ID", "IL043")], table, SCHEME) == geocodes.Resolved(
        None, (), ("EMMA_ID=IL043",))
    assert geocodes.resolve_all([], table, SCHEME) == geocodes.Resolved(None)


def test_neighbouring_prefecture_codes_are_not_ours(table: Table) -> None:
    """Codes of 宮城県 (04) and 栃木県 (09) beside 福島市 are left out as not ours; alone they
    resolve to nothing, whatever the system."""
    pairs = [("LGCODE", "041009"), ("JMA", "0920100"), ("LGCODE", "072010")]
    found = geocodes.resolve_all(pairs, table, SCHEME)
    assert found.geometry is not None and shapely.equals(found.geometry, table.get("072010"))
    assert found.not_ours == ("LGCODE=041009", "JMA=0920100")
    assert geocodes.resolve_all(pairs[:2], table, SCHEME).geometry is None


def test_the_scheme_decides_which_systems_and_prefecture_are_read(table: Table) -> None:
    """A system left out of the configured ones is not read, and a table code of another
    prefecture code than the configured one is not ours."""
    only_jma = geocodes.Scheme(systems=("jma",), prefecture="07")
    assert geocodes.resolve("LGCODE", "072010", table, only_jma) is None
    assert geocodes.resolve("JMA", "0720100", table, only_jma) is not None
    other = geocodes.Scheme(systems=SCHEME.systems, prefecture="04")
    assert geocodes.resolve("LGCODE", "072010", table, other) is None


def test_municipality_codes_are_six_digit_and_deduplicated(table: Table) -> None:
    """Sub-area and municipality geocodes map to their 6-digit codes, each once, in order."""
    pairs = [("JMA", "0720302"), ("LGCODE", "072010"), ("JMA", "0720301"), ("UGC", "X")]
    assert geocodes.municipality_codes(pairs, table, SCHEME) == ("072036", "072010")
