"""The staff shelter list on a real PostgreSQL: search, filters, paging and totals."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from alertd import shelters, staff
from alertd.context import Context

# (id, name, address, municipality, hazards)
ROWS = [
    ("F-1", "福島第一小学校", "福島市杉妻町１－１", "072010", ["flood", "earthquake"]),
    ("F-2", "福島市民会館", "福島市霞町1-52", "072010", ["earthquake"]),
    ("F-3", "渡利体育館", "福島市渡利字七社宮", "072010", ["flood", "landslide"]),
    ("K-1", "郡山市総合体育館", "郡山市豊田町3-5", "072036", ["earthquake", "fire"]),
    ("K-2", "100%避難所_テスト", "郡山市", "072036", ["volcano"]),
]


@pytest.fixture
async def viewer(context: Context) -> str:
    """A viewer's token, with the five shelters above imported (all not open)."""
    await shelters.upsert(context.pool, [SimpleNamespace(
        id=sid, name=name, address=addr, lat=37.75 + i / 100, lon=140.45, hazards=hz,
        capacity=100 * (i + 1), municipality_code=muni, kind="shelter", source_format="test")
        for i, (sid, name, addr, muni, hz) in enumerate(ROWS)])
    return await staff.create(context.pool, "viewer")


async def _list(api: TestClient, token: str, query: str = "") -> Any:  # type: ignore[type-arg]
    r = await api.get(f"/v1/staff/shelters{query}", headers={"Authorization": f"Bearer {token}"})
    body = await r.json()
    assert r.status == 200, body
    return body


def _ids(body: Any) -> list[str]:
    return [s["id"] for s in body["shelters"]]


async def test_words_match_name_address_or_id_whatever_the_width(
        api: TestClient, viewer: str) -> None:  # type: ignore[type-arg]
    """Words are found in the name, the address or the id, 全角 and 半角 alike, and the
    characters % and _ are taken as themselves."""
    assert _ids(await _list(api, viewer, "?q=体育館")) == ["F-3", "K-1"]  # by municipality
    assert _ids(await _list(api, viewer, "?q=杉妻町1-1")) == ["F-1"]  # stored 全角
    assert _ids(await _list(api, viewer, "?q=霞町１")) == ["F-2"]  # stored 半角
    assert _ids(await _list(api, viewer, "?q=k-2")) == ["K-2"]
    assert _ids(await _list(api, viewer, "?q=100%25")) == ["K-2"]
    assert _ids(await _list(api, viewer, "?q=_")) == ["K-2"]
    assert _ids(await _list(api, viewer, "?q=%25%25")) == []


async def test_filters_and_totals(api: TestClient, context: Context,  # type: ignore[type-arg]
                                  viewer: str) -> None:
    """Status, hazard and municipality filter the list; the totals count every status of what
    the other filters match, with the evacuees and capacity of the open and full ones."""
    operator = await staff.create(context.pool, "operator")
    for sid, body in (("F-1", {"status": "open", "crowding": "medium", "evacuees": 40}),
                      ("F-3", {"status": "full", "evacuees": 300}),
                      ("K-1", {"status": "open", "evacuees": 7}),
                      ("F-2", {"status": "closed"})):
        r = await api.put(f"/v1/staff/shelters/{sid}/status", json=body,
                          headers={"Authorization": f"Bearer {operator}"})
        assert r.status == 200, await r.text()
    flood = await _list(api, viewer, "?hazard=flood")
    assert sorted(_ids(flood)) == ["F-1", "F-3"]
    assert flood["totals"] == {"shelters": 2, "by_status": {
        "not_open": 0, "open": 1, "full": 1, "closed": 0}, "evacuees": 340,
        "open_capacity": 100 + 300}
    opened = await _list(api, viewer, "?status=open,full&municipality=07201")
    assert sorted(_ids(opened)) == ["F-1", "F-3"] and opened["matched"] == 2
    assert opened["totals"]["by_status"] == {"not_open": 0, "open": 1, "full": 1, "closed": 1}
    first = next(s for s in opened["shelters"] if s["id"] == "F-1")
    assert (first["status"], first["crowding"], first["evacuees"], first["status_by"],
            first["municipality_code"]) == ("open", "medium", 40, "staff", "072010")
    everything = await _list(api, viewer, "?sort=evacuees")
    assert _ids(everything)[:3] == ["F-3", "F-1", "K-1"]
    assert everything["totals"]["evacuees"] == 347
    assert everything["totals"]["by_status"] == {"not_open": 1, "open": 2, "full": 1,
                                                 "closed": 1}


async def test_pages_walk_every_match_once(api: TestClient,  # type: ignore[type-arg]
                                           viewer: str) -> None:
    """Paging by offset walks every match once, in order, and says when it is done."""
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await _list(api, viewer, f"?limit=2&offset={offset}")
        assert page["matched"] == 5 and len(page["shelters"]) <= 2
        seen += _ids(page)
        offset = page["next_offset"]
    assert sorted(seen) == ["F-1", "F-2", "F-3", "K-1", "K-2"]
    assert [s[0] for s in seen] == ["F", "F", "F", "K", "K"]  # by municipality first


@pytest.mark.parametrize(("query", "reason"), [
    ("?status=opened", "status must be one or more (comma-separated) of not_open, open, full, "
                       "closed"),
    ("?status=open,", "status must be one or more (comma-separated) of not_open, open, full, "
                      "closed"),
    ("?hazard=", "hazard must be one of flood, landslide, storm_surge, earthquake, "
                 "tsunami, fire, inland_flood, volcano"),
    ("?hazard=meteor", "hazard must be one of flood, landslide, storm_surge, earthquake, "
                       "tsunami, fire, inland_flood, volcano"),
    ("?municipality=07201x", "municipality: area code '07201x' must be a string of 5, 6 or 7 "
                             "digits"),
    ("?limit=1001", "limit must be between 1 and 1000"),
    ("?offset=-1", "offset must be between 0 and 100000"),
    ("?sort=size", "sort must be one of name, status_at, evacuees"),
    ("?q=" + "あ" * 101, "q must be at most 100 characters"),
])
async def test_bad_arguments_are_422_with_the_reason(
        api: TestClient, viewer: str, query: str, reason: str) -> None:  # type: ignore[type-arg]
    """A wrong argument answers 422 naming it."""
    r = await api.get(f"/v1/staff/shelters{query}", headers={"Authorization": f"Bearer {viewer}"})
    assert (r.status, (await r.json())["error"]) == (422, reason)


async def test_needs_a_staff_token(api: TestClient) -> None:  # type: ignore[type-arg]
    """Without a staff token the list is refused."""
    assert (await api.get("/v1/staff/shelters")).status == 401
