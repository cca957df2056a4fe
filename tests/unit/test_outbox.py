"""Retry decisions of the outbox (pure; the delays themselves are tests/unit/test_backoff.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from alertd.delivery import outbox
from alertd.delivery.push import Outcome

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def _claimed(attempts: int, expires_in: float = 3600) -> outbox.Claimed:
    return outbox.Claimed(
        id=1, apns_id=uuid.uuid4(), order_id=uuid.uuid4(), alert_id="o-1", device_id=uuid.uuid4(),
        kind="order",
        service="apns", level=4, title="t", body="b", priority=10,
        expires_at=NOW + timedelta(seconds=expires_in), attempts=attempts, push_token="x",
        token_state="active", created_at=NOW, order_state="active",
        lease_until=NOW + timedelta(seconds=30),
    )


def test_retry_becomes_pending_with_due_time() -> None:
    """A retryable outcome puts the row back as pending with a later due time."""
    r = outbox.decide(_claimed(1), Outcome("retry", reason="503"), NOW, max_attempts=5,
                      base_s=1.0, max_s=60.0)
    assert (r.state, r.reason) == ("pending", "503")
    # the first retry waits base_s (1 s), jittered between half and the full value
    assert r.due_at is not None
    assert NOW + timedelta(seconds=0.5) <= r.due_at <= NOW + timedelta(seconds=1.0)


def test_gives_up_after_max_attempts() -> None:
    """The last allowed attempt failing turns the row failed with the reason kept."""
    r = outbox.decide(_claimed(5), Outcome("retry", reason="503 ServiceUnavailable"), NOW,
                      max_attempts=5, base_s=1.0, max_s=60.0)
    assert (r.state, r.reason) == ("failed", "gave up after 5 attempts: 503 ServiceUnavailable")


def test_never_retries_past_expiry() -> None:
    """A retry that would fall after the order's expiry fails instead."""
    r = outbox.decide(_claimed(1, expires_in=0.2), Outcome("retry", retry_after=10.0), NOW,
                      max_attempts=5, base_s=1.0, max_s=60.0)
    assert (r.state, r.reason) == ("failed", "expired before a retry could be sent: ")


def test_final_outcomes_pass_through() -> None:
    """Sent and invalid-token outcomes are recorded as they are."""
    sent = outbox.decide(_claimed(1), Outcome("sent", provider_id="abc"), NOW, max_attempts=5,
                         base_s=1.0, max_s=60.0)
    assert (sent.state, sent.provider_id) == ("sent", "abc")
    bad = outbox.decide(_claimed(1), Outcome("invalid_token", reason="Unregistered"), NOW,
                        max_attempts=5, base_s=1.0, max_s=60.0)
    assert bad.state == "invalid_token"
