"""JMA warning state on a real PostgreSQL: full restatement, order of reports, retractions."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from alertd.ingest import jma_states
from feeds import jma

JMA = Path(__file__).resolve().parent.parent / "fixtures" / "jma"
SHIMANE = (JMA / "10_jmaxml_VPWW55_R06_heavyrain_level_warning.xml").read_bytes()
SHIMANE_WARNINGS = 15  # warnings in force that sample 10 sets (one row per area and kind)


def report(raw: bytes, when: str | None = None, info_type: str | None = None,
           lift_all: bool = False) -> jma.JmaReport:
    """Sample 10 moved to prefecture 07, optionally re-timed, retracted, or all lifted."""
    text = raw.replace(b"<Code>32", b"<Code>07").decode()
    if when:
        import re

        text = re.sub(r"<ReportDateTime>[^<]+</ReportDateTime>",
                      f"<ReportDateTime>{when}</ReportDateTime>", text)
    if info_type:
        text = text.replace("<InfoType>発表</InfoType>", f"<InfoType>{info_type}</InfoType>")
    if lift_all:
        for status in ("継続", "発表"):
            text = text.replace(f"<Status>{status}</Status>", "<Status>解除</Status>")
    return jma.parse(text.encode())


async def test_older_report_does_not_bring_back_lifted_warnings(pool: asyncpg.Pool) -> None:
    """A report older than the newest applied one changes nothing."""
    async with pool.acquire() as conn:
        assert await jma_states.apply(conn, report(SHIMANE, "2026-06-01T12:00:00+09:00",
                                                 lift_all=True), "07") == 0
        assert await jma_states.apply(conn, report(SHIMANE, "2026-06-01T11:00:00+09:00"),
                                    "07") == 0
    assert await pool.fetchval("SELECT count(*) FROM area_warnings") == 0


async def test_newer_report_replaces_the_state(pool: asyncpg.Pool) -> None:
    """A newer report restates the prefecture: what it lifts is gone."""
    async with pool.acquire() as conn:
        first = await jma_states.apply(conn, report(SHIMANE, "2026-06-01T11:00:00+09:00"), "07")
        assert first == SHIMANE_WARNINGS
        await jma_states.apply(conn, report(SHIMANE, "2026-06-01T12:00:00+09:00", lift_all=True),
                             "07")
    assert await pool.fetchval("SELECT count(*) FROM area_warnings") == 0


async def test_other_prefectures_retraction_leaves_ours(pool: asyncpg.Pool) -> None:
    """A 取消 about another prefecture (same minute) does not wipe Fukushima's state."""
    async with pool.acquire() as conn:
        n = await jma_states.apply(conn, report(SHIMANE, "2026-06-01T11:00:00+09:00"), "07")
        shimane_cancel = jma.parse(SHIMANE.decode().replace(
            "<InfoType>発表</InfoType>", "<InfoType>取消</InfoType>").encode())
        await jma_states.apply(conn, shimane_cancel, "07")
        assert n == SHIMANE_WARNINGS
    assert await pool.fetchval("SELECT count(*) FROM area_warnings") == n


async def test_retraction_of_the_report_in_force(pool: asyncpg.Pool) -> None:
    """A 取消 of the report in force for our prefecture removes what it set."""
    when = "2026-06-01T11:00:00+09:00"
    async with pool.acquire() as conn:
        assert await jma_states.apply(conn, report(SHIMANE, when), "07") == SHIMANE_WARNINGS
        await jma_states.apply(conn, report(SHIMANE, when, info_type="取消"), "07")
    assert await pool.fetchval("SELECT count(*) FROM area_warnings") == 0
