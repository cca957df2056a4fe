"""Schedules: the latest scheduled time at or before a moment, and APScheduler's agreement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as clock

import pytest

from alertd import scheduler, settings

JST = "Asia/Tokyo"
MONDAY_10 = scheduler.Weekly(0, clock(10, 0), JST)


@pytest.mark.parametrize(("now", "latest"), [
    # Monday 10:00 JST is Monday 01:00 UTC.
    ("2026-11-30T01:00:00+00:00", "2026-11-30T01:00:00+00:00"),  # exactly at the time
    ("2026-11-30T00:59:59+00:00", "2026-11-23T01:00:00+00:00"),  # a second before: last week
    ("2026-12-06T23:00:00+00:00", "2026-11-30T01:00:00+00:00"),  # Monday 08:00 JST, next week
    ("2026-12-07T01:00:01+00:00", "2026-12-07T01:00:00+00:00"),
    ("2026-11-29T16:30:00+00:00", "2026-11-23T01:00:00+00:00"),  # Monday 01:30 JST
])
def test_weekly_latest_is_in_the_configured_zone(now: str, latest: str) -> None:
    """A weekly schedule's latest time is the last Monday 10:00 in Tokyo at or before now."""
    assert MONDAY_10.latest(datetime.fromisoformat(now)) == datetime.fromisoformat(latest)


def test_weekly_agrees_with_apscheduler() -> None:
    """APScheduler's trigger fires at exactly the times `latest` names, a week apart."""
    trigger = MONDAY_10.trigger()
    now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    fired = trigger.get_next_fire_time(None, now)
    assert fired is not None
    assert MONDAY_10.latest(fired) == fired.astimezone(UTC)
    assert MONDAY_10.latest(fired - timedelta(microseconds=1)) == fired - timedelta(days=7)
    assert MONDAY_10.latest(now) == fired - timedelta(days=7)


def test_every_is_aligned_and_agrees_with_apscheduler() -> None:
    """An interval schedule's times are whole multiples of it since the epoch, as fired."""
    every = scheduler.Every(3600)
    now = datetime(2026, 12, 2, 15, 42, 7, tzinfo=UTC)
    assert every.latest(now) == datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    fired = every.trigger().get_next_fire_time(None, now)
    assert fired == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


def test_configured_schedule_and_words() -> None:
    """The shipped tips schedule is Monday 10:00 in Asia/Tokyo, described in words."""
    cfg = settings.load(environ={})
    week = scheduler.weekly(cfg.scheduler, cfg.scheduler.tips_day, cfg.scheduler.tips_time)
    assert week == MONDAY_10
    assert week.describe() == "weekly on Monday at 10:00 Asia/Tokyo"
    assert scheduler.Every(60).describe() == "every 1 min"
    assert scheduler.Every(86400).describe() == "every 1 d"
    assert scheduler.Every(1.5).describe() == "every 1.5 s"


@pytest.mark.parametrize(("env", "names"), [
    ({"ALERTD_SCHEDULER_TIMEZONE": "Mars/Olympus"}, "scheduler.timezone"),
    ({"ALERTD_SCHEDULER_TIPS_TIME": "25:00"}, "scheduler.tips_time"),
    ({"ALERTD_SCHEDULER_TIPS_DAY": "monday"}, "scheduler.tips_day"),
    ({"ALERTD_HOUSEKEEPING_BATCH_SIZE": "0"}, "housekeeping.batch_size"),
])
def test_bad_schedules_are_refused(env: dict[str, str], names: str) -> None:
    """A schedule that cannot be read stops the start with the key's name."""
    from alertd import errors

    with pytest.raises(errors.ConfigError, match=names.replace(".", r"\.")):
        settings.load(environ=env)
