"""Shelter openings: who is told that a shelter opened, and the push rows for them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import structlog

from alertd import db, orders, render, settings, shelters
from alertd.delivery import outbox
from alertd.points import Points
from alertd.shelters import StoredShelter
from geo import areas

log = structlog.get_logger(__name__)

PUSH_TTL = timedelta(hours=12)

# Devices whose saved sheet names a shelter (the sheets issue provides it).
SheetHolders = Callable[[asyncpg.Connection, str], Awaitable[list[uuid.UUID]]]


async def no_sheet_holders(_conn: asyncpg.Connection, _shelter_id: str) -> list[uuid.UUID]:
    """Until sheets exist, no device names a shelter in a sheet."""
    return []


async def nearby_in_orders(conn: asyncpg.Connection, points: Points, shelter: StoredShelter,
                           cfg: settings.Settings) -> np.ndarray:
    """Devices inside an active order's area, within reach of the shelter, when it suits the
    order's hazard."""
    rows = await conn.fetch(
        "SELECT o.id, o.version, o.state, o.source, o.created_at, v.* FROM orders o"
        " JOIN order_versions v ON v.order_id = o.id AND v.version = o.version"
        " WHERE o.state = 'active' AND NOT o.exercise AND v.expires_at > now()"
        # A shelter without hazard flags (a 指定避難所) serves whatever the hazard.
        " AND (cardinality($1::text[]) = 0 OR v.hazard = ANY($1::text[]))",
        list(shelter.hazards),
    )
    reach = areas.circle_polygon(shelter.lon, shelter.lat, cfg.shelters.open_push_radius_m,
                                 cfg.orders.circle_segments)
    found = [np.empty(0, np.int64)]
    for row in rows:
        spec = orders.spec_from_row(row, points.table, cfg.orders)
        part = spec.area.geometry.intersection(reach)
        if not part.is_empty:
            found.append(points.match(part).seqs)
    return np.unique(np.concatenate(found))


async def notify(conn: asyncpg.Connection, points: Points, shelter: StoredShelter,
                 cfg: settings.Settings,
                 sheet_holders: SheetHolders = no_sheet_holders) -> int:
    """Queue one `shelter_opened` push per device for this opening; returns devices queued."""
    seqs = await nearby_in_orders(conn, points, shelter, cfg)
    named = await sheet_holders(conn, shelter.id)
    devices = await conn.fetch(
        "SELECT id, platform, locale FROM devices WHERE (seq = ANY($1::bigint[])"
        " OR id = ANY($2::uuid[])) AND token_state = 'active'",
        seqs.tolist(), named,
    )
    if not devices:
        return 0
    ref = f"shelter:{shelter.id}:{shelter.openings}"
    expires = datetime.now(UTC) + PUSH_TTL
    texts: dict[str, render.Text] = {}
    rows = []
    for dev in devices:
        text = texts.get(dev["locale"])
        if text is None:
            text = render.shelter_text(dev["locale"], shelter.name, shelter.address,
                                       shelter.crowding)
            texts[dev["locale"]] = text
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
