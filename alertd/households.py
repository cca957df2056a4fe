"""The households an alert reaches, loaded in bulk: their live sheets and the shelters those
name (one query each, never one per device), turned into plans by `alertd.plans`.

The one call for every kind of alert: orders (the pipeline), shelter openings and JMA
warnings (a warned municipality's geometry, the warning's level equivalent, its hazard).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import asyncpg

from alertd import plans, render, shelters
from sheets import model
from sheets import store as sheet_store


async def sheets_of(conn: asyncpg.Connection | asyncpg.Pool, device_ids: Sequence[uuid.UUID]
                    ) -> dict[uuid.UUID, list[model.Sheet]]:
    """The live sheets of these devices, by device (devices without one left out)."""
    if not device_ids:
        return {}
    stored = await sheet_store.live(conn, device_ids)
    return {dev: [s.sheet for s in mine if s.sheet is not None]
            for dev, mine in stored.items()}


async def book(conn: asyncpg.Connection | asyncpg.Pool,
               sheets: Mapping[uuid.UUID, Sequence[model.Sheet]], hazard: str
               ) -> plans.Shelters:
    """The shelters these households' plans speak of, for the hazard."""
    named = {sid for mine in sheets.values() for s in mine for sid in s.shelter_ids}
    return plans.Shelters.of(await shelters.for_plans(conn, named), hazard)


async def plans_for(conn: asyncpg.Connection | asyncpg.Pool, device_ids: Sequence[uuid.UUID],
                    alert: plans.Alert) -> dict[uuid.UUID, render.Plan]:
    """The plan of each of these devices that has a live sheet, for the alert (devices
    without one are left out: they get the text of their language)."""
    sheets = await sheets_of(conn, device_ids)
    if not sheets:
        return {}
    return plans.households(sheets, alert, await book(conn, sheets, alert.hazard))
