"""Tests for alertd.orders: the pure rules of order values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alertd import errors, orders, settings
from geo import municipalities


@pytest.mark.parametrize(
    ("count", "minimum", "shown"),
    [
        (0, 10, "fewer than 10"),
        (1, 10, "fewer than 10"),
        (9, 10, "fewer than 10"),
        (10, 10, 10),
        (11, 10, 11),
        (0, 1, 0),
        (0, 0, 0),
        (2, 3, "fewer than 3"),
    ],
)
def test_coarse_hides_counts_under_the_minimum(count: int, minimum: int,
                                               shown: int | str) -> None:
    """A preview count is exact from the minimum up and "fewer than N" below (0 included)."""
    assert orders.coarse(count, minimum) == shown


@pytest.mark.parametrize(
    ("body", "small"),
    [
        ({"area": {"circle": {"lat": 37.7, "lon": 140.4, "radius_m": 100}}}, True),
        ({"area": {"type": "Polygon", "coordinates": [[[0, 0]] * 32]}}, True),
        ({"area": {"type": "Polygon", "coordinates": [[[0, 0]] * 33]}}, False),
        ({"level": 5}, True),
        ("not an object", True),
    ],
)
def test_small_areas_are_parsed_inline(body: object, small: bool) -> None:
    """Areas of up to compute.inline_max_positions (32) positions are parsed inline."""
    assert orders.small(body, settings.load(environ={}).compute) is small


_CFG = settings.load(environ={})
_NOW = datetime(2030, 1, 1, tzinfo=UTC)
_OUTSIDE = ("area: the area lies wholly outside the prefecture served (it touches none of its "
            "municipalities); check the coordinates: GeoJSON positions are [lon, lat], CAP "
            "polygons lat,lon")
TOKYO = {"type": "Polygon", "coordinates": [[
    [139.69, 35.60], [139.80, 35.60], [139.80, 35.70], [139.69, 35.70], [139.69, 35.60]]]}
# Mostly in Miyagi, but its southern edge reaches into 伊達市 and 国見町.
ACROSS_THE_BORDER = {"type": "Polygon", "coordinates": [[
    [140.55, 37.90], [140.75, 37.90], [140.75, 38.10], [140.55, 38.10], [140.55, 37.90]]]}
SENDAI_CIRCLE = {"circle": {"lat": 38.26, "lon": 140.87, "radius_m": 1000}}
HOKKAIDO_FUKUSHIMA = {"circle": {"lat": 41.48, "lon": 140.25, "radius_m": 3000}}  # 福島町


def _body(area: object) -> dict[str, object]:
    return {"level": 4, "hazard": "flood", "area": area, "headline": {"ja": "避難"}}


@pytest.mark.parametrize("area", [TOKYO, SENDAI_CIRCLE, HOKKAIDO_FUKUSHIMA],
                         ids=["tokyo", "sendai-circle", "fukushima-town-hokkaido"])
def test_an_area_outside_the_prefecture_is_refused(table: municipalities.Table,
                                                   area: object) -> None:
    """An order (and so a preview) whose area touches no municipality of the prefecture is
    refused, saying why."""
    with pytest.raises(errors.InvalidInput) as caught:
        orders.parse_spec(_body(area), table, _CFG.orders, _NOW)
    assert caught.value.reason == _OUTSIDE


def test_an_area_across_the_border_is_accepted(table: municipalities.Table) -> None:
    """An area mostly in the next prefecture but reaching into this one is an order."""
    spec = orders.parse_spec(_body(ACROSS_THE_BORDER), table, _CFG.orders, _NOW)
    assert table.intersecting(spec.area.geometry) == ["072133", "073032"]


def test_a_patch_moving_the_area_outside_is_refused(table: municipalities.Table) -> None:
    """A PATCH moving an order's area out of the prefecture is refused; one keeping the
    area and changing the level is not checked again."""
    current = orders.parse_spec(_body(ACROSS_THE_BORDER), table, _CFG.orders, _NOW)
    with pytest.raises(errors.InvalidInput) as caught:
        orders.parse_patch({"area": TOKYO}, current, table, _CFG.orders, _NOW)
    assert caught.value.reason == _OUTSIDE
    raised = orders.parse_patch({"level": 5}, current, table, _CFG.orders, _NOW)
    assert raised.area is current.area


def test_a_stored_area_outside_is_still_read(table: municipalities.Table) -> None:
    """An order stored before the rule (or before the area file changed) is still read
    back, so that it can be shown and lifted."""
    row = {"level": 4, "hazard": "flood", "area": TOKYO, "headline": {"ja": "避難"},
           "instruction": {}, "expires_at": _NOW}
    spec = orders.spec_from_row(row, table, _CFG.orders)
    assert spec.area.geometry.bounds == (139.69, 35.6, 139.8, 35.7)
