"""JMA warning states per area: each report restates its prefecture in full (SQL)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from feeds import jma

log = structlog.get_logger(__name__)

_NOT_IN_FORCE = ("解除", "なし")


def ours(report: jma.JmaReport, prefecture: str) -> list[jma.JmaAreaWarning]:
    """The report's municipal (7-digit) areas inside the prefecture, matched by code only."""
    return [w for w in report.warnings
            if len(w.area_code) == 7 and w.area_code.startswith(prefecture)]


def is_in_force(kind: jma.JmaKind) -> bool:
    """Whether a report has this warning kind in force (issued or continued) in its area."""
    return kind.status not in _NOT_IN_FORCE and bool(kind.code)


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a report did: rows in force it wrote, the warning types whose state it
    restated, and those whose state it retracted (取消 of the report in force)."""

    in_force: int = 0
    restated: tuple[str, ...] = field(default=())
    retracted: tuple[str, ...] = field(default=())


async def apply(conn: asyncpg.Connection, report: jma.JmaReport, prefecture: str) -> int:
    """Make the stored state what the report says for the prefecture; returns rows in force
    (see `apply_report`)."""
    return (await apply_report(conn, report, prefecture)).in_force


async def apply_report(conn: asyncpg.Connection, report: jma.JmaReport, prefecture: str
                       ) -> Applied:
    """Make the stored state what the report says for the prefecture; what it did.

    A report about other prefectures (e.g. 福島町 in Hokkaido, 0133200) changes nothing here,
    nor does a report older than the newest applied for its warning type. Drills and tests
    (Control/Status 訓練, 試験) are not state."""
    areas = ours(report, prefecture)
    if report.is_exercise or not areas:
        return Applied()
    in_force = 0
    restated: list[str] = []
    retracted: list[str] = []
    async with conn.transaction():
        for wtype in sorted({w.warning_type for w in areas}):
            mark = await conn.fetchval(
                "SELECT report_datetime FROM jma_watermarks WHERE prefecture = $1"
                " AND warning_type = $2 FOR UPDATE", prefecture, wtype)
            if report.info_type == "取消":
                if mark == report.report_datetime:  # the report in force is retracted
                    await conn.execute(
                        "DELETE FROM area_warnings WHERE warning_type = $1 AND area_code LIKE $2"
                        " AND report_datetime = $3", wtype, prefecture + "%",
                        report.report_datetime)
                    retracted.append(wtype)
                continue
            if mark is not None and report.report_datetime < mark:
                log.info("jma_report_stale", warning_type=wtype,
                         report_datetime=report.report_datetime.isoformat())
                continue
            in_force += await _replace(conn, report, prefecture, wtype,
                                       [w for w in areas if w.warning_type == wtype])
            await conn.execute(
                "INSERT INTO jma_watermarks (prefecture, warning_type, report_datetime)"
                " VALUES ($1, $2, $3) ON CONFLICT (prefecture, warning_type)"
                " DO UPDATE SET report_datetime = EXCLUDED.report_datetime",
                prefecture, wtype, report.report_datetime)
            restated.append(wtype)
    return Applied(in_force, tuple(restated), tuple(retracted))


async def _replace(conn: asyncpg.Connection, report: jma.JmaReport, prefecture: str,
                   wtype: str, areas: list[jma.JmaAreaWarning]) -> int:
    await conn.execute(
        "DELETE FROM area_warnings WHERE warning_type = $1 AND area_code LIKE $2",
        wtype, prefecture + "%")
    rows = [
        (w.area_code, k.code, k.name, k.status, k.level_equivalent, w.area_name,
         w.warning_type, report.event_id, report.report_datetime)
        for w in areas for k in w.kinds if is_in_force(k)
    ]
    unique = list({(r[0], r[1]): r for r in rows}.values())
    if unique:
        await conn.executemany(
            "INSERT INTO area_warnings (area_code, kind_code, kind_name, status,"
            " level_equivalent, area_name, warning_type, event_id, report_datetime)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (area_code, kind_code)"
            " DO UPDATE SET kind_name = EXCLUDED.kind_name, status = EXCLUDED.status,"
            " level_equivalent = EXCLUDED.level_equivalent, warning_type = EXCLUDED.warning_type,"
            " event_id = EXCLUDED.event_id, report_datetime = EXCLUDED.report_datetime,"
            " updated_at = now()", unique)
    log.info("jma_state_applied", warning_type=wtype, areas=len(areas), in_force=len(unique))
    return len(unique)


@dataclass(frozen=True, slots=True)
class StoredWarning:
    """A JMA warning kind in force in one area, as stored (not the parsed report's value)."""

    area_code: str
    area_name: str
    kind_code: str
    kind_name: str
    status: str
    level_equivalent: int | None
    warning_type: str
    report_datetime: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredWarning:
        """Build from an area_warnings row."""
        return cls(area_code=row["area_code"], area_name=row["area_name"],
                   kind_code=row["kind_code"], kind_name=row["kind_name"], status=row["status"],
                   level_equivalent=row["level_equivalent"], warning_type=row["warning_type"],
                   report_datetime=row["report_datetime"])

    def as_json(self) -> dict[str, Any]:
        """The warning as the API shows it."""
        return {"area_code": self.area_code, "area_name": self.area_name,
                "kind": self.kind_name, "kind_code": self.kind_code, "status": self.status,
                "level_equivalent": self.level_equivalent, "warning_type": self.warning_type,
                "report_datetime": self.report_datetime.isoformat()}


async def listing(conn: asyncpg.Connection | asyncpg.Pool) -> list[StoredWarning]:
    """Every warning in force in the prefecture, by area and kind."""
    rows = await conn.fetch("SELECT * FROM area_warnings ORDER BY area_code, kind_code")
    return [StoredWarning.from_row(r) for r in rows]


async def in_municipalities(conn: asyncpg.Connection | asyncpg.Pool,
                            codes: Iterable[str]) -> list[StoredWarning]:
    """Warnings in force in these municipalities (5-digit codes), highest level first."""
    rows = await conn.fetch(
        "SELECT * FROM area_warnings WHERE left(area_code, 5) = ANY($1::text[])"
        " ORDER BY level_equivalent DESC NULLS LAST, area_code", sorted(codes))
    return [StoredWarning.from_row(r) for r in rows]
