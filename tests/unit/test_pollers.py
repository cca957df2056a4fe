"""Poller wiring that needs no network or database."""

from __future__ import annotations

from alertd import settings
from alertd.ingest import pollers


def test_every_configured_feed_kind_has_a_handler() -> None:
    """Each kind of feed the configuration can name is handled by an entry of the table."""
    cfg = settings.load(environ={
        "ALERTD_FEEDS_CAP_URLS": '["https://c.example/cap.xml"]',
        "ALERTD_FEEDS_JMA_URL": "https://j.example/extra.xml",
        "ALERTD_FEEDS_SHELTER_STATUS_URLS": '["https://s.example/status.csv"]'})
    kinds = [spec.kind for spec in pollers.configured(cfg.feeds)]
    assert kinds == ["cap", "jma", "shelter_status"]
    assert set(pollers.HANDLERS) == set(kinds)
