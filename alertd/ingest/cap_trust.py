"""Trust in CAP sources: the senders a source may speak for, the keys its messages are signed with.

A source is the staff endpoint (``staff-api``, configured by ``trust.staff_senders`` and
``trust.staff_anchors``) or a polled feed (``cap:<url>``, by its table in ``trust.feeds``).
Both checks are off by default. Anchor files are read once per process; :func:`check` reads
them all at start, so that an unreadable one stops the start instead of refusing every message.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alertd import errors, settings
from alertd.ingest import cap_mapping
from feeds import cap, signatures
from geo import municipalities

STAFF = "staff-api"  # the quarantine and cap_messages source of posted messages
FEED_PREFIX = "cap:"  # polled CAP feeds are named cap:<url> (alertd.ingest.pollers)


@dataclass(frozen=True, slots=True)
class Trust:
    """What a source's messages must prove: an allowed sender, a signature by an anchor's key."""

    senders: frozenset[str] = frozenset()
    anchors: tuple[bytes, ...] = ()  # PEM certificates

    def check_sender(self, alert: cap.CapAlert) -> None:
        """Refuse (InvalidInput) a message whose sender this source may not speak for."""
        if self.senders and alert.sender not in self.senders:
            raise errors.InvalidInput(
                f"sender {alert.sender[:200]!r} is not allowed for this source (allowed: "
                f"{', '.join(sorted(self.senders))[:500]})")


OPEN = Trust()


@functools.lru_cache(maxsize=64)
def _anchor(path: str) -> bytes:
    try:
        pem = Path(path).read_bytes()
        signatures.anchors_from_pem(pem, path)
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"trust anchor {path}: {exc}") from exc
    return pem


def _trust(senders: tuple[str, ...], anchors: tuple[str, ...]) -> Trust:
    if not senders and not anchors:
        return OPEN
    return Trust(frozenset(senders), tuple(_anchor(p) for p in anchors))


def for_source(cfg: settings.Settings, source: str) -> Trust:
    """The trust a source's messages must earn (OPEN for sources without any configured)."""
    if source == STAFF:
        return _trust(cfg.trust.staff_senders, cfg.trust.staff_anchors)
    if source.startswith(FEED_PREFIX):
        url = source[len(FEED_PREFIX):]
        for feed in cfg.trust.feeds:
            if feed.url == url:
                return _trust(feed.senders, feed.anchors)
    return OPEN


def check(cfg: settings.Settings) -> None:
    """Read every configured trust anchor: ConfigError naming the first unreadable one."""
    for source in (STAFF, *(FEED_PREFIX + f.url for f in cfg.trust.feeds)):
        for_source(cfg, source)


def prepare(table: municipalities.Table,
            arg: tuple[bytes, settings.Settings, datetime, tuple[bytes, ...]]
            ) -> cap_mapping.Prepared:
    """Verify the message's signature when the source has anchors, then prepare **the signed
    content** (see :func:`cap_mapping.prepare`): a compute job."""
    raw, cfg, now, anchors = arg
    data = signatures.check_message(raw, anchors, max_bytes=cfg.cap.max_bytes)
    return cap_mapping.prepare(table, (data, cfg, now))
