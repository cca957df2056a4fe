"""The daemon's shared context: settings, the pool, the point index, the area table."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from alertd import settings
from alertd.compute import Compute
from alertd.points import Points
from geo import municipalities


@dataclass(slots=True)
class Context:
    """What request handlers need: settings, the pool, the point index, the area table, and
    where CPU-heavy steps run."""

    cfg: settings.Settings
    pool: asyncpg.Pool
    points: Points
    table: municipalities.Table
    compute: Compute = field(default_factory=Compute.inline)
