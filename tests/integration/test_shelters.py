"""Shelters on a real PostgreSQL: CLI import, status changes, opening pushes, nearest search."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from alertd import devices, orders, pipeline, points, staff
from alertd.context import Context

ROOT = Path(__file__).resolve().parents[2]
HEADER = ("全国地方公共団体コード,ID,名称,名称_カナ,名称_英字,住所,方書,緯度,経度,高さ,"
          "災害種別_洪水,災害種別_崖崩れ、土石流及び地滑り,災害種別_高潮,災害種別_地震,"
          "災害種別_津波,災害種別_大規模な火事,災害種別_内水氾濫,災害種別_火山現象,"
          "指定避難所との住所同一,想定収容人数,対象となる町会・自治会,URL,備考")


def row(sid: str, name: str, lat: float, lon: float, flood: bool = True,
        quake: bool = True) -> str:
    """One shelter line in the Digital Agency standard columns."""
    flags = ["1" if flood else "", "", "", "1" if quake else "", "", "", "", ""]
    return (f"072010,{sid},{name},,,福島県福島市{name},,{lat},{lon},,{','.join(flags)},,100,,,")


CSV = "\n".join([
    HEADER,
    row("S-CENTER", "中央小学校", 37.752, 140.452),
    row("S-EAST", "東中学校", 37.755, 140.50),
    row("S-FAR", "遠い公民館", 37.40, 140.38),
    row("S-QUAKE", "耐震体育館", 37.751, 140.451, flood=False),
    "072010,S-BAD,壊れた行,,,住所,,not-a-number,140.4,,1,,,,,,,,,,,,",
]) + "\n"


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTD_")}
    env["ALERTD_DATABASE_URL"] = db_url
    return subprocess.run([sys.executable, "-m", "alertd.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    """The shelter CSV in Shift_JIS, as municipalities publish it."""
    path = tmp_path / "shelters.csv"
    path.write_bytes(CSV.encode("cp932"))
    return path


async def test_cli_import_reports_rows_and_updates_by_id(
        db_url: str, pool: asyncpg.Pool, csv_file: Path) -> None:
    """The CLI imports good rows, names the bad row's line, and re-import updates in place."""
    first = _cli(db_url, "shelters", "import", str(csv_file))
    assert first.returncode == 0, first.stderr
    assert "4 shelters added" in first.stdout
    assert f"{csv_file}:6:" in first.stderr
    second = _cli(db_url, "shelters", "import", str(csv_file))
    assert "0 shelters added, 4 updated" in second.stdout
    assert await pool.fetchval("SELECT count(*) FROM shelters") == 4
    missing = _cli(db_url, "shelters", "import", str(csv_file.parent / "nope.csv"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


async def _import(db_url: str, csv_file: Path) -> None:
    assert _cli(db_url, "shelters", "import", str(csv_file)).returncode == 0


async def _located(c: Context, token: str, lat: float, lon: float) -> None:
    device_id, _ = await devices.register(c.pool, "android", token, "ja")
    dev = await devices.get(c.pool, device_id)
    assert dev is not None
    await devices.set_location(c.pool, dev, lat, lon, None)
    await points.catch_up(c.points)


async def _order(c: Context, hazard: str = "flood") -> None:
    spec = orders.parse_spec(
        {"level": 4, "hazard": hazard, "area": {"area_codes": ["072010"]},
         "headline": {"ja": "避難指示"}}, c.table, c.cfg.orders, datetime.now(UTC))
    async with c.pool.acquire() as conn:
        await pipeline.accept(conn, c.points, spec)


async def _opened_tokens(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT v.push_token FROM deliveries d JOIN devices v ON v.id = d.device_id"
        " WHERE d.kind = 'shelter_opened' ORDER BY 1")
    return [r[0] for r in rows]


async def test_opening_pushes_to_nearby_devices_under_an_order(
        context: Context, db_url: str, csv_file: Path,
        api: TestClient) -> None:  # type: ignore[type-arg]
    """Opening a shelter tells devices in an active order's area near it, once per opening."""
    await _import(db_url, csv_file)
    await _located(context, "near", 37.753, 140.453)
    await _located(context, "city-far", 37.60, 140.30)  # in 福島市, ~20 km away
    await _located(context, "outside", 37.40, 140.38)
    await _order(context)
    op = await staff.create(context.pool, "operator")
    auth = {"Authorization": f"Bearer {op}"}
    r = await api.put("/v1/staff/shelters/S-CENTER/status", json={
        "status": "open", "crowding": "low", "evacuees": 3}, headers=auth)
    body = await r.json()
    assert r.status == 200 and body["opened"] is True and body["status"] == "open"
    assert await _opened_tokens(context.pool) == ["near"]
    r = await api.put("/v1/staff/shelters/S-CENTER/status", json={
        "status": "open", "crowding": "medium"}, headers=auth)
    assert (await r.json())["opened"] is False
    assert await _opened_tokens(context.pool) == ["near"]
    await api.put("/v1/staff/shelters/S-CENTER/status", json={"status": "closed"},
                  headers=auth)
    await api.put("/v1/staff/shelters/S-CENTER/status", json={"status": "open"},
                  headers=auth)
    assert await _opened_tokens(context.pool) == ["near", "near"]


async def test_unsuitable_shelter_is_not_pushed(
        context: Context, db_url: str, csv_file: Path,
        api: TestClient) -> None:  # type: ignore[type-arg]
    """A shelter not designated for the order's hazard opens without pushes."""
    await _import(db_url, csv_file)
    await _located(context, "near", 37.753, 140.453)
    await _order(context, hazard="flood")
    op = await staff.create(context.pool, "operator")
    r = await api.put("/v1/staff/shelters/S-QUAKE/status", json={"status": "open"},
                      headers={"Authorization": f"Bearer {op}"})
    assert (await r.json())["opened"] is True
    assert await _opened_tokens(context.pool) == []


async def test_status_validation_and_roles(
        context: Context, db_url: str, csv_file: Path,
        api: TestClient) -> None:  # type: ignore[type-arg]
    """Bad statuses are 422, unknown shelters 404, viewers 403."""
    await _import(db_url, csv_file)
    op = await staff.create(context.pool, "operator")
    viewer = await staff.create(context.pool, "viewer")
    url = "/v1/staff/shelters/S-CENTER/status"
    r = await api.put(url, json={"status": "ajar"}, headers={"Authorization": f"Bearer {op}"})
    assert (r.status, await r.json()) == (
        422, {"error": "status must be one of not_open, open, full, closed"})
    r = await api.put(url, json={"status": "open", "evacuees": -1},
                      headers={"Authorization": f"Bearer {op}"})
    assert (r.status, await r.json()) == (422, {"error": "evacuees must be a whole number from 0"})
    r = await api.put("/v1/staff/shelters/NOPE/status", json={"status": "open"},
                      headers={"Authorization": f"Bearer {op}"})
    assert (r.status, await r.json()) == (404, {"error": "no shelter 'NOPE'"})
    r = await api.put(url, json={"status": "open"},
                      headers={"Authorization": f"Bearer {viewer}"})
    assert (r.status, await r.json()) == (
        403, {"error": "this action needs the operator role; the token is viewer"})


async def test_nearest_first_with_filters(
        context: Context, db_url: str, csv_file: Path,
        api: TestClient) -> None:  # type: ignore[type-arg]
    """GET /v1/shelters sorts by great-circle distance and filters by hazard and open state."""
    await _import(db_url, csv_file)
    r = await api.get("/v1/shelters", params={"lat": "37.7525", "lon": "140.4525"})
    found = (await r.json())["shelters"]
    assert [s["id"] for s in found][:2] == ["S-CENTER", "S-QUAKE"]
    assert found[-1]["id"] == "S-FAR"
    assert all(a["distance_m"] <= b["distance_m"] for a, b in itertools.pairwise(found))
    assert 40 < found[0]["distance_m"] < 80
    r = await api.get("/v1/shelters", params={"lat": "37.7525", "lon": "140.4525",
                                              "hazard": "flood"})
    assert "S-QUAKE" not in [s["id"] for s in (await r.json())["shelters"]]
    op = await staff.create(context.pool, "operator")
    await api.put("/v1/staff/shelters/S-EAST/status", json={"status": "open"},
                  headers={"Authorization": f"Bearer {op}"})
    r = await api.get("/v1/shelters", params={"lat": "37.7525", "lon": "140.4525",
                                              "open": "true"})
    assert [s["id"] for s in (await r.json())["shelters"]] == ["S-EAST"]
    for status, listed in (("full", ["S-EAST"]), ("closed", [])):
        await api.put("/v1/staff/shelters/S-EAST/status", json={"status": status},
                      headers={"Authorization": f"Bearer {op}"})
        r = await api.get("/v1/shelters", params={"lat": "37.7525", "lon": "140.4525",
                                                  "open": "true"})
        assert [(s["id"], s["status"]) for s in (await r.json())["shelters"]] == [
            (i, status) for i in listed]
    r = await api.get("/v1/shelters", params={"lat": "95", "lon": "140"})
    assert r.status == 422
    r = await api.get("/v1/shelters", params={"lat": "37", "lon": "140", "hazard": "x"})
    assert r.status == 422


async def test_older_status_report_is_ignored(context: Context, db_url: str,
                                              csv_file: Path) -> None:
    """A status report older than the stored one changes nothing."""
    from alertd import openings

    await _import(db_url, csv_file)
    now = datetime.now(UTC)
    async with context.pool.acquire() as conn:
        await openings.apply_status(conn, context.points, context.cfg, "S-EAST", "open", "high",
                                    50, "feed", now)
        change = await openings.apply_status(conn, context.points, context.cfg, "S-EAST",
                                             "closed", None, None, "feed",
                                             now - timedelta(minutes=5))
    assert change.shelter.status == "open" and change.shelter.crowding == "high"


async def test_shelter_without_hazard_flags_serves_every_order(
        context: Context, api: TestClient) -> None:  # type: ignore[type-arg]
    """A 指定避難所 (no hazard flags) opening near a flood order is pushed to residents."""
    await context.pool.execute(
        "INSERT INTO shelters (id, name, lat, lon, kind, source_format) VALUES"
        " ('HALL', '公民館', 37.752, 140.452, 'shelter', 'gsi_shelter')")
    await _located(context, "near", 37.753, 140.453)
    await _order(context)
    op = await staff.create(context.pool, "operator")
    r = await api.put("/v1/staff/shelters/HALL/status", json={"status": "open"},
                      headers={"Authorization": f"Bearer {op}"})
    assert (await r.json())["opened"] is True
    assert await _opened_tokens(context.pool) == ["near"]


async def test_undated_feed_row_does_not_override_staff(context: Context, db_url: str,
                                                        csv_file: Path) -> None:
    """A status-feed row without a time does not undo what staff set; a dated newer one does."""
    from alertd import openings

    await _import(db_url, csv_file)
    async with context.pool.acquire() as conn:
        await openings.apply_status(conn, context.points, context.cfg, "S-EAST", "closed", None,
                                    None, "staff:someone")
        undated = await openings.apply_status(conn, context.points, context.cfg, "S-EAST",
                                              "open", None, None, "feed")
        assert undated.shelter.status == "closed" and not undated.opened
        dated = await openings.apply_status(conn, context.points, context.cfg, "S-EAST",
                                            "open", None, None, "feed",
                                            datetime.now(UTC) + timedelta(seconds=1))
        assert dated.shelter.status == "open" and dated.opened


@pytest.mark.parametrize("value", ["1", "yes", "True", "", "1.7976931348623157e+308"])
async def test_open_filter_is_true_or_false(api: TestClient, value: str) -> None:  # type: ignore[type-arg]
    """GET /v1/shelters takes open=true or open=false (a boolean, as described); anything else
    is a 422 naming it instead of silently listing every shelter."""
    for ok in ("true", "false"):
        r = await api.get("/v1/shelters", params={"lat": "37.75", "lon": "140.45", "open": ok})
        assert r.status == 200
    r = await api.get("/v1/shelters", params={"lat": "37.75", "lon": "140.45", "open": value})
    assert r.status == 422
    assert (await r.json())["error"] == "open must be true or false"
