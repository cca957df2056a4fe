"""Trust per CAP source: the staff endpoint and each polled feed, off unless configured."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from alertd import errors, settings
from alertd.ingest import cap_trust
from feeds import cap
from tests import capgen, capsign


def _cfg(**trust_keys: object) -> settings.Settings:
    cfg = settings.load(environ={})
    return replace(cfg, trust=replace(cfg.trust, **trust_keys))  # type: ignore[arg-type]


def test_trust_is_off_by_default() -> None:
    """Without configuration every source is open: any sender, no signature needed."""
    cfg = settings.load(environ={})
    assert cap_trust.for_source(cfg, cap_trust.STAFF) is cap_trust.OPEN
    assert cap_trust.for_source(cfg, "cap:https://a.example/") is cap_trust.OPEN


def test_feed_trust_is_found_by_its_url(tmp_path: Path) -> None:
    """A polled feed gets the senders and anchors of its own table, and only it."""
    pem = tmp_path / "a.pem"
    pem.write_bytes(capsign.signer().cert_pem)
    cfg = _cfg(feeds=(settings.TrustFeed("https://a.example/", ("s@a",), (str(pem),)),))
    trust = cap_trust.for_source(cfg, "cap:https://a.example/")
    assert trust.senders == {"s@a"} and trust.anchors == (capsign.signer().cert_pem,)
    assert cap_trust.for_source(cfg, "cap:https://b.example/") is cap_trust.OPEN


def test_unreadable_anchor_stops_the_start(tmp_path: Path) -> None:
    """An anchor file that is missing or holds no certificate is a ConfigError naming it."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(errors.ConfigError, match=r"bad\.pem"):
        cap_trust.check(_cfg(staff_anchors=(str(bad),)))
    with pytest.raises(errors.ConfigError, match=r"missing\.pem"):
        cap_trust.check(_cfg(staff_anchors=(str(tmp_path / "missing.pem"),)))


def test_sender_outside_the_allowlist_is_refused() -> None:
    """check_sender refuses a sender not listed, and lets a listed one through."""
    trust = cap_trust.Trust(senders=frozenset({capgen.SENDER}))
    trust.check_sender(cap.parse(capgen.message("ok")))
    with pytest.raises(errors.InvalidInput, match="is not allowed for this source"):
        trust.check_sender(cap.parse(capgen.message("no", sender="x@example.org")))


def test_trust_feed_tables(tmp_path: Path) -> None:
    """[[trust.feeds]] tables name a polled URL with its senders and anchors; a list left out
    is empty, an unknown key or a URL not polled stops the start naming it."""
    url = "https://alerts.example.jp/cap.atom"
    good = tmp_path / "good.toml"
    good.write_text(f'[feeds]\ncap_urls = ["{url}"]\n[[trust.feeds]]\nurl = "{url}"\n'
                    'senders = ["bousai@pref.fukushima.lg.jp"]\n')
    (feed,) = settings.load([good], environ={}).trust.feeds
    assert feed == settings.TrustFeed(url, ("bousai@pref.fukushima.lg.jp",), ())
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(f'[feeds]\ncap_urls = ["{url}"]\n[[trust.feeds]]\nurl = "{url}"\n'
                       'anchorz = []\n')
    with pytest.raises(errors.ConfigError, match="unknown key 'anchorz'"):
        settings.load([unknown], environ={})
    stray = tmp_path / "stray.toml"
    stray.write_text('[[trust.feeds]]\nurl = "https://elsewhere.example/"\n')
    with pytest.raises(errors.ConfigError, match=r"not one of feeds\.cap_urls"):
        settings.load([stray], environ={})


def test_trust_from_the_environment() -> None:
    """ALERTD_TRUST_STAFF_ANCHORS and ALERTD_TRUST_FEEDS are JSON, like every list."""
    cfg = settings.load(environ={
        "ALERTD_TRUST_STAFF_ANCHORS": '["/etc/alertd/a.pem"]',
        "ALERTD_FEEDS_CAP_URLS": '["https://a.example/cap"]',
        "ALERTD_TRUST_FEEDS": '[{"url": "https://a.example/cap", "anchors": ["/b.pem"]}]'})
    assert cfg.trust.staff_anchors == ("/etc/alertd/a.pem",)
    assert cfg.trust.feeds == (settings.TrustFeed("https://a.example/cap", (), ("/b.pem",)),)
