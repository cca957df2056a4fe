"""JMA warning states per area: each report restates its prefecture in full (SQL)."""

from __future__ import annotations

import asyncpg
import structlog

from feeds import jma

log = structlog.get_logger(__name__)

_NOT_IN_FORCE = ("解除", "なし")


def ours(report: jma.JmaReport, prefecture: str) -> list[jma.JmaAreaWarning]:
    """The report's municipal (7-digit) areas inside the prefecture, matched by code only."""
    return [w for w in report.warnings
            if len(w.area_code) == 7 and w.area_code.startswith(prefecture)]


async def apply(conn: asyncpg.Connection, report: jma.JmaReport, prefecture: str) -> int:
    """Make the stored state what the report says for the prefecture; returns rows in force.

    A report about other prefectures (e.g. 福島町 in Hokkaido, 0133200) changes nothing here.
    Drills and tests (Control/Status 訓練, 試験) are not state."""
    if report.control_status != "通常":
        return 0
    if report.info_type == "取消":
        status = await conn.execute(
            "DELETE FROM area_warnings WHERE report_datetime = $1 AND area_code LIKE $2",
            report.report_datetime, prefecture + "%")
        log.info("jma_report_retracted", rows=str(status))
        return 0
    areas = ours(report, prefecture)
    if not areas:
        return 0
    types = sorted({w.warning_type for w in areas})
    async with conn.transaction():
        newer = await conn.fetchval(
            "SELECT count(*) FROM area_warnings WHERE warning_type = ANY($1::text[])"
            " AND area_code LIKE $2 AND report_datetime > $3",
            types, prefecture + "%", report.report_datetime)
        if newer:
            log.info("jma_report_stale", report_datetime=report.report_datetime.isoformat())
            return 0
        await conn.execute(
            "DELETE FROM area_warnings WHERE warning_type = ANY($1::text[]) AND area_code LIKE $2",
            types, prefecture + "%")
        rows = [
            (w.area_code, k.code, k.name, k.status, k.level_equivalent, w.area_name,
             w.warning_type, report.event_id, report.report_datetime)
            for w in areas for k in w.kinds if k.status not in _NOT_IN_FORCE and k.code
        ]
        unique = list({(r[0], r[1]): r for r in rows}.values())
        if unique:
            await conn.copy_records_to_table(
                "area_warnings", records=unique,
                columns=("area_code", "kind_code", "kind_name", "status", "level_equivalent",
                         "area_name", "warning_type", "event_id", "report_datetime"))
    log.info("jma_state_applied", areas=len(areas), in_force=len(unique))
    return len(unique)
