"""Heads-up from JMA warnings: a household whose sheet leaves at the 警戒レベル a JMA warning is
equivalent to, for that hazard, with a sheet place in a warned area, gets one `warning` push.

Called in the transaction that applies the report (`jma_states.apply_report`), so a crash
loses or repeats neither the state nor its pushes, and a retried report finds its episodes
open and its devices told (`warning_notices`): nothing is pushed twice. A device is told once
per episode (`jma_hazards`), and not while an active order covers it: the order speaks then.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import shapely
import structlog

from alertd import db, households, orders, plans, render, settings
from alertd.delivery import outbox
from alertd.ingest import jma_hazards, jma_states
from feeds import jma
from geo import municipalities
from sheets import advice, model, validate
from sheets import errors as sheet_errors

log = structlog.get_logger(__name__)

PUSH_TTL = timedelta(hours=12)
MIN_LEVEL = 3  # sheets leave at 3, 4 or 5


@dataclass(frozen=True, slots=True)
class Episode:
    """An open warning episode, as stored."""

    id: int
    area_code: str
    area_name: str
    kind_name: str
    hazard: str
    level: int


@dataclass(frozen=True, slots=True)
class Match:
    """A device's sheet place in an episode's area, and the level its sheet leaves at."""

    device_id: uuid.UUID
    episode: Episode
    sheet: model.Sheet
    place: model.Place
    trigger: int

    @property
    def rank(self) -> tuple[int, bool, int]:
        """Which match a device's one push speaks of: the highest level, home first."""
        return (-self.episode.level, self.place.kind != "home", self.episode.id)


async def apply(conn: asyncpg.Connection, report: jma.JmaReport, table: municipalities.Table,
                cfg: settings.Settings) -> int:
    """Apply a JMA report's warning state and queue the heads-ups it calls for, in one
    transaction; returns pushes queued."""
    async with conn.transaction(), db.bulk(conn):
        applied = await jma_states.apply_report(conn, report, cfg.feeds.prefecture_code)
        return await on_report(conn, report, applied, table, cfg)


async def on_report(conn: asyncpg.Connection, report: jma.JmaReport,
                    applied: jma_states.Applied, table: municipalities.Table,
                    cfg: settings.Settings) -> int:
    """Bring the report's warning episodes up to date and queue the heads-ups they call for
    (inside the caller's transaction); returns pushes queued. Tests (試験) do nothing; drills
    (訓練) keep episodes of their own and reach devices enrolled in drills only."""
    prefecture = cfg.feeds.prefecture_code
    if report.control_status == "試験":
        return 0
    exercise = report.is_exercise
    if exercise:  # drills are not stored as state: the report itself says what is in force
        types = tuple(sorted({w.warning_type for w in jma_states.ours(report, prefecture)}))
        retracting = report.info_type == "取消"
        applied = jma_states.Applied(0, () if retracting else types, types if retracting else ())
    if not applied.restated and not applied.retracted:
        return 0  # stale, or not about us: nothing changed
    await _sync(conn, report, applied, prefecture, exercise)
    return await notify(conn, table, cfg, exercise)


async def _sync(conn: asyncpg.Connection, report: jma.JmaReport, applied: jma_states.Applied,
                prefecture: str, exercise: bool) -> None:
    types = [*applied.restated, *applied.retracted]
    rows = await conn.fetch(
        "SELECT id, area_code, warning_type, kind_code, hazard, level FROM warning_episodes"
        " WHERE ended_at IS NULL AND exercise = $1 AND warning_type = ANY($2::text[])"
        " AND area_code LIKE $3 || '%' FOR UPDATE",
        exercise, types, prefecture)
    current = [jma_hazards.OpenEpisode(
        r["id"], (r["area_code"], r["warning_type"], r["kind_code"], r["hazard"]), r["level"])
        for r in rows if r["warning_type"] in applied.restated]
    change = jma_hazards.changes(
        current, jma_hazards.in_force(report, prefecture, applied.restated))
    ended = [*change.ended, *(r["id"] for r in rows if r["warning_type"] in applied.retracted)]
    if ended:
        await conn.execute("UPDATE warning_episodes SET ended_at = now()"
                           " WHERE id = ANY($1::bigint[])", ended)
    if change.leveled:
        await conn.executemany("UPDATE warning_episodes SET level = $2 WHERE id = $1",
                               change.leveled)
    if change.started:
        await conn.executemany(
            "INSERT INTO warning_episodes (area_code, area_name, warning_type, kind_code,"
            " kind_name, hazard, level, exercise, started_report)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [(w.area_code, w.area_name, w.warning_type, w.kind_code, w.kind_name, w.hazard,
              w.level, exercise, report.report_datetime) for w in change.started])
    log.info("jma_episodes", exercise=exercise, started=len(change.started),
             leveled=len(change.leveled), ended=len(ended))


async def notify(conn: asyncpg.Connection, table: municipalities.Table, cfg: settings.Settings,
                 exercise: bool = False) -> int:
    """Queue a heads-up for every device with a match in an open episode that it was not
    told of, and that no active order covers; returns pushes queued."""
    episodes = await _open(conn, cfg.feeds.prefecture_code, exercise)
    if not episodes:
        return 0
    candidates = await _candidates(conn, episodes, table, exercise)
    matches = [m for row in candidates for m in _matches(row, episodes, table)]
    covered = await _covered(conn, matches, table, cfg, exercise)
    matches = [m for m in matches if m.device_id not in covered]
    new = await _tell(conn, matches)
    best: dict[uuid.UUID, Match] = {}
    for m in new:
        if m.device_id not in best or m.rank < best[m.device_id].rank:
            best[m.device_id] = m
    devices = {r["device_id"]: r for r in candidates}
    household_plans = await _plans(conn, best.values(), table)
    expires = datetime.now(UTC) + PUSH_TTL
    rows = []
    for device_id, m in sorted(best.items()):
        dev = devices[device_id]
        plan = household_plans.get(device_id)
        text = render.warning_text(dev["locale"], m.episode.level, m.episode.hazard,
                                   m.episode.kind_name, _area_name(table, m.episode), plan)
        rows.append(outbox.NewDelivery(
            device_id=device_id, service=outbox.service_for(dev["platform"]), kind="warning",
            title=text.title, body=text.body, expires_at=expires, level=m.episode.level,
            alert_id=f"jma-{m.episode.id}", ref=f"jma:{m.episode.id}"))
    queued = await outbox.enqueue(conn, rows)
    log.info("jma_headsup_queued", exercise=exercise, devices=queued,
             covered=len(covered), episodes=len(episodes))
    return queued


def _area_name(table: municipalities.Table, episode: Episode) -> str:
    """The warned area by our table's name for its code (JMA's name for codes it lacks)."""
    return table.name(episode.area_code) if table.is_known(episode.area_code) else (
        episode.area_name)


async def _open(conn: asyncpg.Connection, prefecture: str, exercise: bool) -> list[Episode]:
    rows = await conn.fetch(
        "SELECT id, area_code, area_name, kind_name, hazard, level FROM warning_episodes"
        " WHERE ended_at IS NULL AND exercise = $1 AND level >= $2 AND area_code LIKE $3 || '%'"
        " ORDER BY id", exercise, MIN_LEVEL, prefecture)
    return [Episode(r["id"], r["area_code"], r["area_name"], r["kind_name"], r["hazard"],
                    r["level"]) for r in rows]


async def _candidates(conn: asyncpg.Connection, episodes: Sequence[Episode],
                      table: municipalities.Table, exercise: bool) -> list[asyncpg.Record]:
    """Live sheets of reachable devices that leave, for a hazard of an open episode, at or
    below its level, with a place within the bounding box of a warned area."""
    top: dict[str, int] = {}
    for e in episodes:
        top[e.hazard] = max(top.get(e.hazard, 0), e.level)
    boxes = sorted({tuple(shapely.bounds(table.get(e.area_code)).tolist())
                    for e in episodes if table.is_known(e.area_code)})
    if not boxes:
        return []
    return list(await conn.fetch(
        "SELECT s.device_id, s.body, d.platform, d.locale FROM sheets s"
        " JOIN devices d ON d.id = s.device_id"
        " WHERE NOT s.deleted AND d.token_state = 'active' AND ($3::boolean IS FALSE OR d.drill)"
        " AND (EXISTS (SELECT 1 FROM jsonb_each(s.body -> 'triggers') t(hazard, level)"
        "   JOIN unnest($1::text[], $2::int[]) w(hazard, level) ON w.hazard = t.hazard"
        "   WHERE jsonb_typeof(t.level) = 'number' AND t.level::numeric <= w.level)"
        # A member who needs time brings the household's trigger forward to 3 (advice.trigger)
        "   OR jsonb_typeof(s.body -> 'members') = 'array'"
        "   AND jsonb_array_length(s.body -> 'members') > 0)"
        " AND EXISTS (SELECT 1 FROM jsonb_array_elements(s.body -> 'places') p,"
        "   unnest($4::float8[], $5::float8[], $6::float8[], $7::float8[])"
        "     b(min_lon, min_lat, max_lon, max_lat)"
        "   WHERE jsonb_typeof(p -> 'lat') = 'number' AND jsonb_typeof(p -> 'lon') = 'number'"
        "   AND (p ->> 'lon')::float8 BETWEEN b.min_lon AND b.max_lon"
        "   AND (p ->> 'lat')::float8 BETWEEN b.min_lat AND b.max_lat)"
        " ORDER BY s.device_id, s.change_seq FOR KEY SHARE OF d",
        list(top), list(top.values()), exercise, *(list(c) for c in zip(*boxes, strict=True))))


def _matches(row: asyncpg.Record, episodes: Iterable[Episode], table: municipalities.Table
             ) -> list[Match]:
    try:
        sheet = validate.parse(row["body"])
    except sheet_errors.SheetError:  # stored bodies were validated; a rule may have tightened
        return []
    found = []
    for e in episodes:
        trigger = advice.trigger(sheet, e.hazard)
        if trigger is None or trigger > e.level or not table.is_known(e.area_code):
            continue
        area = table.get(e.area_code)
        found += [Match(row["device_id"], e, sheet, p, trigger) for p in sheet.places
                  if shapely.intersects_xy(area, p.lon, p.lat)]
    return found


async def _covered(conn: asyncpg.Connection, matches: Sequence[Match],
                   table: municipalities.Table, cfg: settings.Settings,
                   exercise: bool) -> set[uuid.UUID]:
    """The devices an active order already speaks to: it reached them (and was not lifted
    for them), or its area covers a place of their sheets."""
    devices = sorted({m.device_id for m in matches})
    if not devices:
        return set()
    held = await conn.fetch(
        "SELECT d.device_id FROM deliveries d JOIN orders o ON o.id = d.order_id"
        " WHERE o.state = 'active' AND o.exercise = $2 AND d.device_id = ANY($1::uuid[])"
        " AND d.state <> 'cancelled' AND d.kind IN ('order', 'order_update')"
        " AND NOT EXISTS (SELECT 1 FROM deliveries l WHERE l.order_id = d.order_id"
        "   AND l.device_id = d.device_id AND l.kind = 'order_lifted' AND l.id > d.id)",
        devices, exercise)
    covered = {r["device_id"] for r in held}
    rows = await conn.fetch(
        "SELECT o.id, v.* FROM orders o"
        " JOIN order_versions v ON v.order_id = o.id AND v.version = o.version"
        " WHERE o.state = 'active' AND o.exercise = $1 AND v.expires_at > now()", exercise)
    areas = [_area(r, table, cfg) for r in rows]
    for m in matches:
        if m.device_id not in covered and any(
                a is not None and shapely.intersects_xy(a, p.lon, p.lat)
                for a in areas for p in m.sheet.places):
            covered.add(m.device_id)
    return covered


def _area(row: asyncpg.Record, table: municipalities.Table, cfg: settings.Settings
          ) -> Any:
    try:
        return orders.spec_from_row(row, table, cfg.orders).area.geometry
    except Exception:  # a stored area that no longer parses covers no one here
        log.warning("headsup_order_area_unreadable", order_id=str(row["id"]))
        return None


async def _tell(conn: asyncpg.Connection, matches: Sequence[Match]) -> list[Match]:
    """Record who is told of which episode; the matches not told before."""
    pairs = sorted({(m.episode.id, m.device_id) for m in matches})
    if not pairs:
        return []
    rows = await conn.fetch(
        "INSERT INTO warning_notices (episode_id, device_id)"
        " SELECT * FROM unnest($1::bigint[], $2::uuid[]) ON CONFLICT DO NOTHING"
        " RETURNING episode_id, device_id",
        [e for e, _ in pairs], [d for _, d in pairs])
    new = {(r["episode_id"], r["device_id"]) for r in rows}
    return [m for m in matches if (m.episode.id, m.device_id) in new]


async def _plans(conn: asyncpg.Connection, matches: Iterable[Match],
                 table: municipalities.Table) -> dict[uuid.UUID, render.Plan]:
    """The plan of each told household for the episode its push speaks of (`alertd.plans`:
    its place in the warned area, its trigger, its first destination's state, the nearest
    open suitable shelter), one call per episode."""
    by_episode: dict[int, list[Match]] = {}
    for m in matches:
        by_episode.setdefault(m.episode.id, []).append(m)
    out: dict[uuid.UUID, render.Plan] = {}
    for group in by_episode.values():
        e = group[0].episode
        alert = plans.Alert(table.get(e.area_code), e.level, e.hazard)
        out.update(await households.plans_for(conn, [m.device_id for m in group], alert))
    return out
