"""The staff tips routes and the device's time zone, in-process on a real PostgreSQL."""

from __future__ import annotations

import uuid

from aiohttp.test_utils import TestClient

from alertd import devices, staff, tips
from alertd.context import Context

NO_DEVICE = "00000000-0000-0000-0000-000000000000"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_viewers_list_the_catalogue(api: TestClient, context: Context) -> None:
    """GET /v1/staff/tips lists every tip with its hazards, months, audience and texts."""
    viewer = await staff.create(context.pool, "viewer")
    r = await api.get("/v1/staff/tips", headers=auth(viewer))
    listed = (await r.json())["tips"]
    assert r.status == 200
    assert len(listed) == len(tips.catalogue(context.cfg).tips) >= 52
    level4 = next(t for t in listed if t["id"] == "level-4")
    assert set(level4) == {"id", "hazards", "months", "audience", "link", "texts"}
    assert level4["months"] == [] and {"ja", "ja-easy", "en"} <= set(level4["texts"])


async def test_next_previews_without_recording(api: TestClient, context: Context) -> None:
    """GET /v1/staff/tips/next shows the device's next tip in its language and records
    nothing: asking twice shows the same tip."""
    viewer = await staff.create(context.pool, "viewer")
    device_id, _ = await devices.register(context.pool, "android", "tok", "en-US")
    answers = []
    for _ in range(2):
        r = await api.get(f"/v1/staff/tips/next?device_id={device_id}", headers=auth(viewer))
        assert r.status == 200
        answers.append(await r.json())
    assert answers[0] == answers[1]
    # Without a sheet, the first tip is the one asking for it.
    assert answers[0]["tip"]["id"] == "sheet-make"
    assert answers[0]["language"] == "en" and answers[0]["reason"] is None
    assert answers[0]["body"].startswith("You have not made your My Evacuation Sheet yet.")
    assert await context.pool.fetchval("SELECT count(*) FROM tip_rotation") == 0


async def test_next_refuses_bad_and_unknown_devices(api: TestClient, context: Context) -> None:
    """A missing or malformed device_id is a 422, an unknown device a 404."""
    viewer = await staff.create(context.pool, "viewer")
    for query, status in (("", 422), ("?device_id=nope", 422),
                          (f"?device_id={NO_DEVICE}", 404)):
        r = await api.get(f"/v1/staff/tips/next{query}", headers=auth(viewer))
        assert r.status == status, query
        assert (await r.json())["error"]


async def test_admins_send_a_tip_operators_cannot(api: TestClient, context: Context) -> None:
    """POST /v1/staff/tips/send answers 202 for an admin and queues one tip push; an
    operator gets 403 and nothing is queued."""
    admin = await staff.create(context.pool, "admin")
    operator = await staff.create(context.pool, "operator")
    device_id, _ = await devices.register(context.pool, "ios", "tok", "ja")
    body = {"device_id": str(device_id), "tip_id": "volcano-adatara-gas"}
    r = await api.post("/v1/staff/tips/send", json=body, headers=auth(operator))
    assert r.status == 403
    assert await context.pool.fetchval("SELECT count(*) FROM deliveries") == 0
    r = await api.post("/v1/staff/tips/send", json=body, headers=auth(admin))
    answer = await r.json()
    assert r.status == 202
    assert (answer["device_id"], answer["tip_id"], answer["language"]) == (
        str(device_id), "volcano-adatara-gas", "ja")
    row = await context.pool.fetchrow("SELECT kind, priority, alert_id, body FROM deliveries")
    assert (row["kind"], row["priority"], row["alert_id"]) == ("tip", 5,
                                                               "tip-volcano-adatara-gas")
    assert "沼ノ平" in row["body"]


async def test_send_refusals_have_reasons(api: TestClient, context: Context) -> None:
    """An unknown tip is 422, an unknown device 404, a device with tips off 409, unknown
    fields 422; nothing is queued."""
    admin = await staff.create(context.pool, "admin")
    device_id, _ = await devices.register(context.pool, "ios", "tok", "ja")
    off, _ = await devices.register(context.pool, "ios", "tok2", "ja")
    await devices.update(context.pool, off, {"tips": False})
    for body, status, reason in (
        ({"device_id": str(device_id), "tip_id": "no-such-tip"}, 422,
         "tip_id: no tip 'no-such-tip' in the catalogue"),
        ({"device_id": NO_DEVICE}, 404, f"no device {NO_DEVICE}"),
        ({"device_id": str(off)}, 409, "the device turned tips off"),
        ({"device_id": str(device_id), "extra": 1}, 422, None),
        ({"device_id": 5}, 422, "device_id must be a device id (a UUID)"),
        ({"device_id": str(device_id), "tip_id": 5}, 422, "tip_id must be a tip's id"),
    ):
        r = await api.post("/v1/staff/tips/send", json=body, headers=auth(admin))
        answer = await r.json()
        assert r.status == status, (body, answer)
        if reason is not None:
            assert answer["error"] == reason
    assert await context.pool.fetchval("SELECT count(*) FROM deliveries") == 0


async def test_a_device_names_its_time_zone(api: TestClient, context: Context) -> None:
    """PATCH /v1/me takes an IANA time_zone (null goes back to the default) and refuses an
    unknown one with 422."""
    r = await api.post("/v1/devices", json={"platform": "ios", "push_token": "t",
                                            "locale": "ja"})
    registered = await r.json()
    headers = auth(registered["device_secret"])
    r = await api.patch("/v1/me", json={"time_zone": "Europe/Berlin",
                                         "quiet_hours": {"start": "22:00", "end": "07:00"}},
                        headers=headers)
    assert r.status == 200 and (await r.json())["time_zone"] == "Europe/Berlin"
    for bad in ("Mars/Olympus", "../../etc/passwd", 9, "", "asia/tokyo"):
        r = await api.patch("/v1/me", json={"time_zone": bad}, headers=headers)
        assert r.status == 422, bad
        assert "time_zone must be an IANA time zone" in (await r.json())["error"]
    r = await api.patch("/v1/me", json={"time_zone": None}, headers=headers)
    assert (await r.json())["time_zone"] is None
    stored = await devices.get(context.pool, uuid.UUID(registered["device_id"]))
    assert stored is not None and stored.time_zone is None
