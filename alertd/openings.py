"""Shelter openings: who is told that a shelter opened, and the push rows for them."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import structlog

from alertd import db, households, orders, plans, render, settings, shelters
from alertd.delivery import outbox
from alertd.points import Points
from alertd.shelters import StoredShelter
from geo import areas
from sheets import advice
from sheets import store as sheet_store

log = structlog.get_logger(__name__)

PUSH_TTL = timedelta(hours=12)


async def active_orders(conn: asyncpg.Connection, points: Points, cfg: settings.Settings
                        ) -> list[orders.OrderSpec]:
    """The current versions of the active, unexpired orders (drills left out)."""
    rows = await conn.fetch(
        "SELECT o.id, o.version, o.state, o.source, o.created_at, v.* FROM orders o"
        " JOIN order_versions v ON v.order_id = o.id AND v.version = o.version"
        " WHERE o.state = 'active' AND NOT o.exercise AND v.expires_at > now()")
    return [orders.spec_from_row(row, points.table, cfg.orders) for row in rows]


async def nearby_in_orders(conn: asyncpg.Connection, points: Points, shelter: StoredShelter,
                           cfg: settings.Settings) -> np.ndarray:
    """Devices inside an active order's area, within reach of the shelter, when it suits the
    order's hazard."""
    return _nearby(points, shelter, await active_orders(conn, points, cfg), cfg)


def _nearby(points: Points, shelter: StoredShelter, specs: list[orders.OrderSpec],
            cfg: settings.Settings) -> np.ndarray:
    reach = areas.circle_polygon(shelter.lon, shelter.lat, cfg.shelters.open_push_radius_m,
                                 cfg.orders.circle_segments)
    found = [np.empty(0, np.int64)]
    for spec in specs:
        if not advice.designated(shelter.hazards, spec.hazard):
            continue
        part = spec.area.geometry.intersection(reach)
        if not part.is_empty:
            found.append(points.match(part).seqs)
    return np.unique(np.concatenate(found))


async def covered_holders(conn: asyncpg.Connection, points: Points, shelter: StoredShelter,
                          specs: list[orders.OrderSpec]
                          ) -> dict[uuid.UUID, tuple[render.Plan, plans.Alert]]:
    """The devices whose live sheets name the shelter, wherever they are, that an active order
    covers (their location, watched places or a sheet's place), each with its plan for the
    highest such order, and that order."""
    named = await sheet_store.holders(conn, shelter.id)
    if not named or not specs:
        return {}
    seqs = {r["id"]: r["seq"] for r in await conn.fetch(
        "SELECT id, seq FROM devices WHERE id = ANY($1::uuid[]) AND token_state = 'active'",
        named)}
    sheets = await households.sheets_of(conn, list(seqs))
    wanted = np.array(sorted(seqs.values()), dtype=np.int64)
    out: dict[uuid.UUID, tuple[render.Plan, plans.Alert]] = {}
    for spec in sorted(specs, key=lambda s: -s.level):
        alert = plans.Alert(spec.area.geometry, spec.level, spec.hazard)
        hit = set(np.intersect1d(wanted, points.match(spec.area.geometry,
                                                      spec.area.area_codes).seqs).tolist())
        mine = {dev: sheets.get(dev, []) for dev, seq in seqs.items() if dev not in out}
        found = plans.households(mine, alert, await households.book(conn, mine, spec.hazard))
        for dev, plan in found.items():
            if plan.place is not None or seqs[dev] in hit:
                out[dev] = (_without_news(plan, shelter), alert)
    return out


def _without_news(plan: render.Plan, shelter: StoredShelter) -> render.Plan:
    """The plan less what the opening push already says: that this shelter is open."""
    if plan.destination == render.Destination("shelter", "open", shelter.name, shelter.crowding):
        return dataclasses.replace(plan, destination=None, nearest=None)
    return plan


async def notify(conn: asyncpg.Connection, points: Points, shelter: StoredShelter,
                 cfg: settings.Settings) -> int:
    """Queue one `shelter_opened` push per device for this opening: devices near it in an
    active order's area, and households whose sheet names it that an order covers (told with
    their plan); returns devices queued."""
    specs = await active_orders(conn, points, cfg)
    seqs = _nearby(points, shelter, specs, cfg)
    plan_of = await covered_holders(conn, points, shelter, specs)
    devices = await conn.fetch(
        "SELECT id, platform, locale FROM devices WHERE (seq = ANY($1::bigint[])"
        " OR id = ANY($2::uuid[])) AND token_state = 'active'",
        seqs.tolist(), list(plan_of))
    if not devices:
        return 0
    ref = f"shelter:{shelter.id}:{shelter.openings}"
    expires = datetime.now(UTC) + PUSH_TTL
    texts: dict[tuple[str, render.Plan | None, int, str], render.Text] = {}
    rows = []
    for dev in devices:
        plan, alert = plan_of.get(dev["id"], (None, None))
        level, hazard = (alert.level, alert.hazard) if alert is not None else (0, "")
        key = (dev["locale"], plan, level, hazard)
        text = texts.get(key)
        if text is None:
            text = render.shelter_text(dev["locale"], shelter.name, shelter.address,
                                       shelter.crowding)
            if plan is not None:
                said = render.plan_text(dev["locale"], plan, level, hazard)
                text = render.Text(text.title, f"{text.body}\n{said}".strip())
            texts[key] = text
        rows.append(outbox.NewDelivery(
            device_id=dev["id"], service=outbox.service_for(dev["platform"]),
            kind="shelter_opened", title=text.title, body=text.body, expires_at=expires,
            alert_id=f"shelter-{shelter.id}", ref=ref))
    # The ref names this opening (the count of openings rises with each), so a device is
    # told once per opening.
    queued = await outbox.enqueue(conn, rows)
    log.info("shelter_opened_queued", shelter_id=shelter.id, devices=queued)
    return queued


async def apply_status(conn: asyncpg.Connection, points: Points, cfg: settings.Settings,
                       shelter_id: str, status: str, crowding: str | None,
                       evacuees: int | None, source: str,
                       at: datetime | None = None) -> shelters.StatusChange:
    """Apply a status report and, when it opens the shelter, queue the opening pushes
    in the same transaction (a crash cannot record the opening without its pushes)."""
    async with conn.transaction(), db.bulk(conn):
        change = await shelters.set_status(conn, shelter_id, status, crowding, evacuees, source,
                                           at)
        if change.opened:
            await notify(conn, points, change.shelter, cfg)
    return change
