"""Staff routes for shelters: the searchable list with its totals (status changes are in
staff_feeds, with the other feed inputs)."""

from __future__ import annotations

from aiohttp import web

from alertd import errors, shelters
from alertd.api import plumbing
from alertd.orders import HAZARDS
from geo import errors as geo_errors
from geo import municipalities

routes = web.RouteTableDef()

MAX_TEXT = 100  # characters of a search's words
MAX_LIMIT = 1000  # shelters a page (the prefecture's map fits in a few pages)
MAX_OFFSET = 100_000


def _search(request: web.Request) -> shelters.Search:
    """The search a request asks for (422 naming the argument when one is wrong)."""
    q = request.query
    text = q.get("q", "")
    if len(text) > MAX_TEXT:
        raise errors.InvalidInput(f"q must be at most {MAX_TEXT} characters")
    # An argument given is an argument to check: an empty one is no wildcard.
    statuses = tuple(q["status"].split(",")) if "status" in q else ()
    if any(s not in shelters.STATUSES for s in statuses):
        raise errors.InvalidInput(
            f"status must be one or more (comma-separated) of {', '.join(shelters.STATUSES)}")
    hazard = q.get("hazard")
    if hazard is not None and hazard not in HAZARDS:
        raise errors.InvalidInput(f"hazard must be one of {', '.join(HAZARDS)}")
    municipality = q.get("municipality")
    if municipality is not None:
        try:
            municipality = municipalities.to_code6(municipality)
        except geo_errors.GeoError as exc:
            raise errors.InvalidInput(f"municipality: {exc.reason}") from exc
    sort = q.get("sort", "name")
    if sort not in shelters.SORTS:
        raise errors.InvalidInput(f"sort must be one of {', '.join(shelters.SORTS)}")
    return shelters.Search(
        text=text, statuses=statuses, hazard=hazard, municipality=municipality, sort=sort,
        limit=plumbing.int_arg(request, "limit", 100, 1, MAX_LIMIT),
        offset=plumbing.int_arg(request, "offset", 0, 0, MAX_OFFSET))


@routes.get("/v1/staff/shelters")
async def list_shelters(request: web.Request) -> web.Response:
    """Shelters matching the search (words in name/address/id, status, hazard suitability,
    municipality), a page of them, with the counts by status and the evacuees in all."""
    await plumbing.staff_member(request, "viewer")
    want = _search(request)
    found = await shelters.search(plumbing.ctx(request).pool, want)
    more = want.offset + len(found.shelters) < found.matched
    return plumbing.json_response({
        "shelters": [s.as_json() for s in found.shelters],
        "matched": found.matched,
        "offset": want.offset,
        "next_offset": want.offset + len(found.shelters) if more else None,
        "totals": found.totals.as_json(),
    })
