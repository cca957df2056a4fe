"""The staff order routes in-process on a real PostgreSQL: previews, and where they compute."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import app, devices, points, staff
from alertd.api import routes
from alertd.compute import Compute
from alertd.context import Context
from geo import areas
from tests import described, shapes

HOME = (37.7608, 140.4747)  # (lat, lon) in 福島市 (072010)
NEIGHBOUR = (37.7608, 140.4748)  # about 9 m east
HEADLINE = {"ja": "避難指示"}


async def _locate(c: Context, n: int, lat: float, lon: float) -> None:
    """Register n devices located at (lat, lon)."""
    for i in range(n):
        device_id, _ = await devices.register(c.pool, "ios", f"tok-{lat}-{lon}-{i}", "ja")
        dev = await devices.get(c.pool, device_id)
        assert dev is not None
        await devices.set_location(c.pool, dev, lat, lon, None)
    await points.catch_up(c.points)


def _circle(lat: float, lon: float, radius_m: float) -> dict[str, Any]:
    return {"level": 4, "hazard": "flood", "headline": HEADLINE,
            "area": {"circle": {"lat": lat, "lon": lon, "radius_m": radius_m}}}


async def _preview(client: TestClient, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    r = await client.post("/v1/staff/orders:preview", json=body,
                          headers={"Authorization": f"Bearer {token}"})
    return r.status, await r.json()


async def test_small_previews_do_not_locate_residents(api: TestClient,
                                                      context: Context) -> None:
    """A 0.01 m circle on a resident's home and one 11 m away both answer "fewer than 10",
    in all and per municipality: a viewer cannot tell where the one resident lives."""
    await _locate(context, 1, *HOME)
    viewer = await staff.create(context.pool, "viewer")
    hidden = {"devices": "fewer than 10", "by_area": {"072010": "fewer than 10"}}
    assert await _preview(api, viewer, _circle(*HOME, 0.01)) == (200, hidden)
    assert await _preview(api, viewer, _circle(HOME[0] + 0.0001, HOME[1], 0.01)) == (
        200, hidden)


async def test_previews_at_the_minimum_show_the_number(api: TestClient,
                                                       context: Context) -> None:
    """From orders.preview_min_count (10) up a preview shows exact counts; 9 are hidden."""
    await _locate(context, 9, *HOME)
    viewer = await staff.create(context.pool, "viewer")
    assert await _preview(api, viewer, _circle(*HOME, 50)) == (
        200, {"devices": "fewer than 10", "by_area": {"072010": "fewer than 10"}})
    await _locate(context, 1, *NEIGHBOUR)
    assert await _preview(api, viewer, _circle(*HOME, 50)) == (
        200, {"devices": 10, "by_area": {"072010": 10}})


async def test_tangled_star_preview_is_refused(api: TestClient,
                                               context: Context) -> None:
    """The 800-vertex star of issue 7 sent by a viewer answers 422 saying why."""
    viewer = await staff.create(context.pool, "viewer")
    body = {"level": 4, "hazard": "flood", "headline": HEADLINE, "area": shapes.star_polygon(800)}
    assert await _preview(api, viewer, body) == (422, {"error": (
        "area: the polygon intersects itself at more than 1000 points; repairing it would take "
        "too long: please redraw it without crossing edges")})


@pytest.fixture
async def jobs(context: Context) -> AsyncIterator[Compute]:
    """One worker process for the large areas."""
    jobs = Compute(dataclasses.replace(context.cfg.compute, workers=1),
                   app.areas_path(context.cfg))
    await jobs.start()
    yield jobs
    await jobs.close()


@pytest.fixture
async def worker_client(context: Context, jobs: Compute) -> AsyncIterator[TestClient]:
    """A test client whose large areas are parsed in the worker process."""
    c = TestClient(TestServer(routes.build_app(dataclasses.replace(context, compute=jobs))))
    await c.start_server()
    yield c
    await c.close()


async def test_large_areas_are_parsed_in_a_worker(worker_client: TestClient, jobs: Compute,
                                                  context: Context) -> None:
    """A 400-vertex area goes through a worker process and gives the same answers: a preview,
    an order, a refusal."""
    await _locate(context, 10, *HOME)
    operator = await staff.create(context.pool, "operator")
    ring = shapes.circle_ring(400, radius_deg=0.01)
    ring = [[lon - shapes.CENTRE[0] + HOME[1], lat - shapes.CENTRE[1] + HOME[0]]
            for lon, lat in ring]
    body = {"level": 4, "hazard": "flood", "headline": HEADLINE,
            "area": {"type": "Polygon", "coordinates": [ring]}}
    assert await _preview(worker_client, operator, body) == (
        200, {"devices": 10, "by_area": {"072010": 10}})
    r = await worker_client.post("/v1/staff/orders", json=body,
                                 headers={"Authorization": f"Bearer {operator}"})
    assert r.status == 201 and (await r.json())["devices"] == 10
    body["area"] = shapes.star_polygon(800)
    status, answer = await _preview(worker_client, operator, body)
    assert status == 422 and "more than 1000 points" in answer["error"]
    assert jobs.finished == 3


async def test_accuracy_circles_count_in_previews_and_orders(context: Context) -> None:
    """Two devices 100 m outside a 500 m circle: the one whose location is accurate to 150 m
    is counted by the preview and gets the order, the one accurate to 50 m neither; a fresh
    load of the point index agrees with the follower."""
    cfg = dataclasses.replace(context.cfg, orders=dataclasses.replace(
        context.cfg.orders, preview_min_count=1))
    client = TestClient(TestServer(routes.build_app(dataclasses.replace(context, cfg=cfg))))
    await client.start_server()
    try:
        # Bearing 90 is a vertex of the 64-gon, 500.3 m out: 600 m is 99.7 m beyond it.
        lon, lat = areas.destination(HOME[1], HOME[0], 90.0, 600.0)
        seqs = {}
        for token, accuracy in (("wide", 150.0), ("narrow", 50.0)):
            device_id, _ = await devices.register(context.pool, "ios", token, "ja")
            dev = await devices.get(context.pool, device_id)
            assert dev is not None
            await devices.set_location(context.pool, dev, float(lat), float(lon), accuracy)
            seqs[token] = dev.seq
        await points.catch_up(context.points)
        operator = await staff.create(context.pool, "operator")
        body = _circle(*HOME, 500)
        assert await _preview(client, operator, body) == (
            200, {"devices": 1, "by_area": {"072010": 1}})
        r = await client.post("/v1/staff/orders", json=body,
                              headers={"Authorization": f"Bearer {operator}"})
        assert r.status == 201 and (await r.json())["devices"] == 1
        got = await context.pool.fetch(
            "SELECT v.push_token FROM deliveries d JOIN devices v ON v.id = d.device_id")
        assert [g["push_token"] for g in got] == ["wide"]
        fresh = points.Points(index=points.new_index(context.cfg), table=context.table)
        async with context.pool.acquire() as conn:
            await points.load(conn, fresh)
        circle = areas.circle_polygon(HOME[1], HOME[0], 500.0, context.cfg.orders.circle_segments)
        assert fresh.match(circle).seqs.tolist() == [seqs["wide"]]
        assert context.points.match(circle).seqs.tolist() == [seqs["wide"]]
    finally:
        await client.close()


TOKYO = {"type": "Polygon", "coordinates": [[
    [139.69, 35.60], [139.80, 35.60], [139.80, 35.70], [139.69, 35.70], [139.69, 35.60]]]}
# Mostly in Miyagi, but its southern edge reaches into 伊達市 and 国見町.
ACROSS_THE_BORDER = {"type": "Polygon", "coordinates": [[
    [140.55, 37.90], [140.75, 37.90], [140.75, 38.10], [140.55, 38.10], [140.55, 37.90]]]}
OUTSIDE = ("area: the area lies wholly outside the prefecture served (it touches none of its "
           "municipalities); check the coordinates: GeoJSON positions are [lon, lat], CAP "
           "polygons lat,lon")


async def test_areas_outside_the_prefecture_are_refused(api: TestClient,
                                                        context: Context) -> None:
    """A preview, an order and a PATCH with an area wholly outside the prefecture answer 422
    saying why, and nothing is stored; an area across the border is issued."""
    operator = await staff.create(context.pool, "operator")
    auth = {"Authorization": f"Bearer {operator}"}
    far = {"level": 4, "hazard": "flood", "headline": HEADLINE, "area": TOKYO}
    assert await _preview(api, operator, far) == (422, {"error": OUTSIDE})
    r = await api.post("/v1/staff/orders", json=far, headers=auth)
    assert (r.status, await r.json()) == (422, {"error": OUTSIDE})
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0
    near = dict(far, area=ACROSS_THE_BORDER)
    status, answer = await _preview(api, operator, near)
    assert status == 200 and answer["devices"] == "fewer than 10"
    r = await api.post("/v1/staff/orders", json=near, headers=auth)
    assert r.status == 201
    order_id = (await r.json())["id"]
    r = await api.patch(f"/v1/staff/orders/{order_id}", json={"area": TOKYO}, headers=auth)
    assert (r.status, await r.json()) == (422, {"error": OUTSIDE})
    assert await context.pool.fetchval("SELECT max(version) FROM order_versions") == 1


async def test_a_retried_order_gets_the_first_answer_with_its_location(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """An order retried with its Idempotency-Key answers the first 201, body and Location
    (the description says a 201 carries it), issuing nothing more."""
    operator = await staff.create(context.pool, "operator")
    headers = {"Authorization": f"Bearer {operator}", "Idempotency-Key": "order-1"}
    first = await api.post("/v1/staff/orders", json=_circle(*HOME, 500), headers=headers)
    again = await api.post("/v1/staff/orders", json=_circle(*HOME, 500), headers=headers)
    assert (first.status, again.status) == (201, 201)
    body = await first.json()
    assert await again.json() == body
    assert first.headers["Location"] == again.headers["Location"] == (
        f"/v1/staff/orders/{body['id']}")
    assert again.headers["Idempotent-Replayed"] == "true"
    await described.answer_conforms(again, "/v1/staff/orders")
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 1
