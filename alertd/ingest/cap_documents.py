"""CAP documents as they arrive (posted or polled): one message, or an EDXL-DE distribution of
several, each message then handled on its own by :mod:`alertd.ingest.cap_intake`."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from alertd import errors, settings
from alertd.context import Context
from alertd.ingest import cap_intake, quarantine
from feeds import edxl
from feeds import errors as feed_errors
from geo import municipalities

log = structlog.get_logger(__name__)

# The root element's name is near the start of a document, in one of the encodings XML allows
# without a declaration: a cheap look that spares single CAP messages a second parse.
_MARKS = tuple(edxl.ROOT.encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be"))
_LOOK = 8192


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one message of a document: its intake, or its refusal (quarantined)."""

    intake: cap_intake.Intake | None = None
    rejected: cap_intake.Rejected | None = None


def _may_be_distribution(raw: bytes) -> bool:
    head = raw[:_LOOK]
    return any(mark in head for mark in _MARKS)


def unwrap(_table: municipalities.Table, arg: tuple[bytes, int]) -> edxl.Distribution | None:
    """The distribution a document is, or None when it is not one: a compute job."""
    raw, max_bytes = arg
    return edxl.unwrap(raw, max_bytes=max_bytes)


async def _one(c: Context, raw: bytes, source: str) -> Handled:
    try:
        return Handled(intake=await cap_intake.ingest(c, raw, source))
    except cap_intake.Rejected as exc:
        return Handled(rejected=exc)


def envelope_limit(cfg: settings.Settings) -> int:
    """The largest distribution read: a posted one is bounded by cap.max_bytes already."""
    return max(cfg.cap.max_bytes, cfg.feeds.max_bytes)


async def ingest(c: Context, raw: bytes, source: str) -> list[Handled]:
    """Handle a document: a CAP message, or each CAP message of an EDXL-DE distribution.

    An envelope that cannot be read, or carries no CAP message, is quarantined as a whole; each
    message in it is checked, applied or quarantined on its own."""
    if not _may_be_distribution(raw):
        return [await _one(c, raw, source)]
    try:
        distribution = await c.compute.run(
            unwrap, c.table, (raw, envelope_limit(c.cfg)),
            inline=len(raw) <= c.cfg.compute.inline_max_bytes, what="the distribution")
    except (feed_errors.FeedError, errors.InvalidInput) as exc:
        reason = f"EDXL-DE: {exc.reason}"
        qid = await quarantine.put(c.pool, source, raw, reason)
        return [Handled(rejected=cap_intake.Rejected(reason, qid))]
    if distribution is None:
        return [await _one(c, raw, source)]
    log.info("edxl_unwrapped", source=source, version=distribution.version,
             distribution_id=distribution.distribution_id[:200],
             messages=len(distribution.alerts), others=distribution.others)
    return [await _one(c, alert, source) for alert in distribution.alerts]
