"""Weekly tips (防災知識の定期配信): the weekly send the scheduler runs, a staff member's send
to one device, and the preview of a device's next tip (SQL; the rules are in tip_catalogue).

A device gets one tip a week: the next one of its rotation that fits the month, its sheets'
household and its language, queued as a `tip` push (priority 5, a day to live, an inbox entry)
due outside its quiet hours. Devices with tips off or an active order over their places get
none that week. `tip_rotation.last_week` makes a week's send happen once per device however
often it runs and on however many nodes (the runs take turns through an advisory lock).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import asyncpg
import structlog

from alertd import errors, render, settings
from alertd import tip_catalogue as tc
from alertd.delivery import outbox
from sheets import store as sheet_store

log = structlog.get_logger(__name__)

# The two-int advisory lock (class, 0) taken by every transaction that moves a rotation:
# weekly batches and staff sends take turns, whichever node runs them.
_LOCK_CLASS: Final = 0x74697073  # "tips"
PRIORITY: Final = 5


def catalogue(cfg: settings.Settings) -> tc.Catalogue:
    """The configured catalogue, checked (ConfigError naming every problem)."""
    return tc.load(Path(cfg.tips.catalogue_dir) if cfg.tips.catalogue_dir else None)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A device as tip selection needs it."""

    id: uuid.UUID
    seq: int
    platform: str
    locale: str
    tips: bool
    token_state: str
    quiet_start: time | None
    quiet_end: time | None
    time_zone: str | None
    round: int
    seen: frozenset[str]
    last_week: date | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Candidate:
        """Build from a row of _DEVICES."""
        return cls(row["id"], row["seq"], row["platform"], row["locale"], row["tips"],
                   row["token_state"], row["quiet_start"], row["quiet_end"], row["time_zone"],
                   row["round"] or 1, frozenset(row["seen"] or ()), row["last_week"])


_DEVICES = """
SELECT d.id, d.seq, d.platform, d.locale, d.tips, d.token_state, d.quiet_start, d.quiet_end,
       d.time_zone, r.round, r.seen, r.last_week
FROM devices d LEFT JOIN tip_rotation r ON r.device_id = d.id
"""

# Devices holding an order that is still active (not lifted, not expired, not a drill): its
# area covers one of their places, so a tip would only distract them.
_UNDER_ORDER = """
SELECT DISTINCT x.device_id FROM deliveries x
JOIN orders o ON o.id = x.order_id
JOIN order_versions v ON v.order_id = o.id AND v.version = o.version
WHERE x.device_id = ANY($1::uuid[]) AND x.kind IN ('order', 'order_update')
  AND x.state <> 'cancelled' AND o.state = 'active' AND NOT o.exercise AND v.expires_at > $2
"""

_RECORD = """
INSERT INTO tip_rotation AS r (device_id, round, seen, last_week, last_tip, last_at)
SELECT u.device_id, u.round, string_to_array(u.seen, ' '), u.week, u.tip, $6
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::date[], $5::text[])
     AS u(device_id, round, seen, week, tip)
ON CONFLICT (device_id) DO UPDATE
SET round = excluded.round, seen = excluded.seen,
    last_week = coalesce(excluded.last_week, r.last_week),
    last_tip = coalesce(excluded.last_tip, r.last_tip),
    last_at = CASE WHEN excluded.last_tip IS NULL THEN r.last_at ELSE excluded.last_at END
"""


@dataclass(frozen=True, slots=True)
class Planned:
    """What a device gets: a push to queue (None: nothing this week) and its rotation after."""

    device: Candidate
    choice: tc.Choice | None
    reason: str | None  # why nothing is sent


@lru_cache(maxsize=1024)
def _language(locale: str) -> str:
    return render.language(locale)


async def _lock(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1::int, 0)", _LOCK_CLASS)


async def _plan(conn: asyncpg.Connection, cat: tc.Catalogue, devices: Sequence[Candidate],
                now: datetime, month: int) -> list[Planned]:
    ids = [d.id for d in devices]
    under = {r["device_id"] for r in await conn.fetch(_UNDER_ORDER, ids, now)}
    sheets = await sheet_store.live(conn, ids)
    planned = []
    for dev in devices:
        if not dev.tips:
            planned.append(Planned(dev, None, "the device turned tips off"))
            continue
        if dev.token_state != "active":
            planned.append(Planned(dev, None, "the device's push token was refused"))
            continue
        if dev.id in under:
            planned.append(Planned(dev, None, "an active order covers one of its places"))
            continue
        audience = tc.audiences(s.sheet for s in sheets.get(dev.id, ()) if s.sheet)
        choice = tc.choose(cat, month, audience, _language(dev.locale), dev.seen)
        planned.append(Planned(dev, choice, None if choice else "no tip fits the device"))
    return planned


def _delivery(cfg: settings.Settings, cat: tc.Catalogue, dev: Candidate, choice: tc.Choice,
              start: datetime, offset: timedelta, ref: str) -> outbox.NewDelivery:
    """The push of a chosen tip, due `offset` after `start` (the pacing), or as long after
    the end of the device's quiet hours when that time falls in them: the devices whose quiet
    hours end at 07:00 are paced too, not all due at 07:00 sharp."""
    zone = tc.zone(dev.time_zone or cfg.scheduler.timezone)
    paced = start + offset
    due = tc.after_quiet(paced, dev.quiet_start, dev.quiet_end, zone)
    if due != paced:
        due += offset
    return outbox.NewDelivery(
        device_id=dev.id, service=outbox.service_for(dev.platform), kind="tip",
        title=cat.title(choice.language), body=choice.tip.body(choice.language),
        expires_at=due + timedelta(seconds=cfg.tips.ttl_s), priority=PRIORITY,
        alert_id=tc.alert_id_for(choice.tip), ref=ref, due_at=due)


async def _record(conn: asyncpg.Connection, plans: Sequence[Planned], week: date | None,
                  now: datetime) -> None:
    rows = [p for p in plans if p.choice is not None or week is not None]
    if not rows:
        return
    await conn.execute(
        _RECORD, [p.device.id for p in rows],
        [p.device.round + (1 if p.choice and p.choice.restarted else 0) for p in rows],
        [" ".join(sorted(p.choice.seen if p.choice else p.device.seen)) for p in rows],
        [week for _ in rows], [p.choice.tip.id if p.choice else None for p in rows], now)


async def _weekly_batch(conn: asyncpg.Connection, cfg: settings.Settings, cat: tc.Catalogue,
                        after: int, week: date, now: datetime, queued: int) -> tuple[int, int]:
    """One batch of a weekly send in its own transaction: (last device seq seen, tips queued);
    the seq is -1 when no device was left."""
    local = now.astimezone(tc.zone(cfg.scheduler.timezone))
    async with conn.transaction():
        await _lock(conn)
        rows = await conn.fetch(
            _DEVICES + " WHERE d.seq > $1 AND d.tips AND d.token_state = 'active'"
            " AND (r.last_week IS NULL OR r.last_week < $2) ORDER BY d.seq LIMIT $3",
            after, week, cfg.tips.batch_size)
        if not rows:
            return -1, 0
        devices = [Candidate.from_row(r) for r in rows]
        plans = await _plan(conn, cat, devices, now, local.month)
        pushes: list[outbox.NewDelivery] = []
        for plan in plans:
            if plan.choice is None:
                continue
            # Paced: the n-th tip of the run is due n / rate seconds after its start.
            offset = timedelta(seconds=(queued + len(pushes)) / cfg.tips.rate_per_s)
            pushes.append(_delivery(cfg, cat, plan.device, plan.choice, now, offset,
                                    f"tip:{week.isoformat()}"))
        await outbox.enqueue(conn, pushes)
        await _record(conn, plans, week, now)
    return devices[-1].seq, len(pushes)


async def send_weekly(pool_or_conn: asyncpg.Pool | asyncpg.Connection, cfg: settings.Settings,
                      now: datetime) -> int:
    """Queue this week's tip for every eligible device; the number queued.

    `now` is the current time: it names the week and the month (in scheduler.timezone) and the due
    times (paced at tips.rate_per_s, moved past each device's quiet hours). Idempotent per
    device per week: a re-run, a catch-up or a second node queues nothing twice.
    """
    cat = catalogue(cfg)
    week = tc.week_of(now, tc.zone(cfg.scheduler.timezone))
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            return await _send_weekly(conn, cfg, cat, week, now)
    return await _send_weekly(pool_or_conn, cfg, cat, week, now)


async def _send_weekly(conn: asyncpg.Connection, cfg: settings.Settings, cat: tc.Catalogue,
                       week: date, now: datetime) -> int:
    after, queued = 0, 0
    while True:
        after, count = await _weekly_batch(conn, cfg, cat, after, week, now, queued)
        if after < 0:
            break
        queued += count
    log.info("tips_queued", week=week.isoformat(), tips=queued)
    return queued


@dataclass(frozen=True, slots=True)
class Preview:
    """The tip a device would get next, or why it would get none."""

    device_id: uuid.UUID
    choice: tc.Choice | None
    reason: str | None
    handled_this_week: bool

    def as_json(self, cat: tc.Catalogue) -> dict[str, Any]:
        """The preview as the staff API shows it."""
        c = self.choice
        return {"device_id": str(self.device_id), "tip": c.tip.as_json() if c else None,
                "language": c.language if c else None,
                "title": cat.title(c.language) if c else None,
                "body": c.tip.body(c.language) if c else None,
                "rotation_restarts": bool(c and c.restarted),
                "handled_this_week": self.handled_this_week, "reason": self.reason}


async def _device(conn: asyncpg.Connection | asyncpg.Pool,
                  device_id: uuid.UUID) -> Candidate:
    row = await conn.fetchrow(_DEVICES + " WHERE d.id = $1", device_id)
    if row is None:
        raise errors.NotFound(f"no device {device_id}")
    return Candidate.from_row(row)


async def preview(pool: asyncpg.Pool, cfg: settings.Settings, device_id: uuid.UUID,
                  now: datetime) -> Preview:
    """The tip the device would get next (nothing is recorded); NotFound for no device."""
    cat = catalogue(cfg)
    local = now.astimezone(tc.zone(cfg.scheduler.timezone))
    async with pool.acquire() as conn:
        dev = await _device(conn, device_id)
        (plan,) = await _plan(conn, cat, [dev], now, local.month)
    week = tc.week_of(now, tc.zone(cfg.scheduler.timezone))
    return Preview(device_id, plan.choice, plan.reason, dev.last_week == week)


@dataclass(frozen=True, slots=True)
class Sent:
    """A tip queued for one device by a staff member."""

    device_id: uuid.UUID
    tip_id: str
    language: str
    due_at: datetime

    def as_json(self) -> dict[str, Any]:
        """As the staff API answers it."""
        return {"device_id": str(self.device_id), "tip_id": self.tip_id,
                "language": self.language, "due_at": self.due_at.isoformat()}


async def send_one(pool: asyncpg.Pool, cfg: settings.Settings, device_id: uuid.UUID,
                   tip_id: str | None, now: datetime) -> Sent:
    """Queue one tip push to one device now (quiet hours still apply): the named tip, else its
    next one, which then counts as seen in its rotation (the weekly send is not affected).
    NotFound (device), InvalidInput (unknown tip), Conflict (tips off, token refused, nothing
    fits)."""
    cat = catalogue(cfg)
    tip = cat.get(tip_id) if tip_id is not None else None
    if tip_id is not None and tip is None:
        raise errors.InvalidInput(f"tip_id: no tip {tip_id!r} in the catalogue")
    local = now.astimezone(tc.zone(cfg.scheduler.timezone))
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn)
        dev = await _device(conn, device_id)
        if not dev.tips:
            raise errors.Conflict("the device turned tips off")
        if dev.token_state != "active":
            raise errors.Conflict("the device's push token was refused; it gets no push")
        if tip is None:
            (plan,) = await _plan(conn, cat, [dev], now, local.month)
            if plan.choice is None:
                raise errors.Conflict(plan.reason or "no tip fits the device")
            choice = plan.choice
        else:
            lang = tip.language(render.language(dev.locale))
            choice = tc.Choice(tip, lang, False, dev.seen | {tip.id})
        push = _delivery(cfg, cat, dev, choice, now, timedelta(0), f"tip:staff:{uuid.uuid4()}")
        await outbox.enqueue(conn, [push])
        await _record(conn, [Planned(dev, choice, None)], None, now)
    assert push.due_at is not None
    log.info("tip_sent_by_staff", device_id=str(device_id), tip_id=choice.tip.id)
    return Sent(device_id, choice.tip.id, choice.language, push.due_at)
