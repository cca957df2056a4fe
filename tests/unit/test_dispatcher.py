"""What the dispatcher refuses to send even though it holds the claim (pure rules)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from alertd import settings
from alertd.delivery import outbox
from alertd.delivery.dispatcher import Batch, Dispatcher, Slots
from alertd.delivery.push import Outcome, PushMessage

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
CFG = settings.load(environ={})


class PausedFor:
    """A sender whose only observable state here is how long it is paused."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def start(self) -> None:
        """Nothing to start."""

    async def send(self, msg: PushMessage) -> Outcome:
        """Never reached by these rules."""
        raise AssertionError("must not send")

    def paused_for(self) -> float:
        """Seconds left in the pause."""
        return self.seconds

    async def close(self) -> None:
        """Nothing to close."""


def claimed(kind: str = "order", order_state: str | None = "active",
            lease_left: float = 30.0) -> outbox.Claimed:
    """A claimed delivery."""
    return outbox.Claimed(
        id=7, apns_id=uuid.uuid4(), order_id=uuid.uuid4(), alert_id="o", device_id=uuid.uuid4(),
        kind=kind, service="apns", level=4, title="t", body="b", priority=10,
        expires_at=NOW + timedelta(hours=1), attempts=1, push_token="x", token_state="active",
        created_at=NOW, order_state=order_state,
        lease_until=NOW + timedelta(seconds=lease_left))


def rule(c: outbox.Claimed, pause: float = 0.0, holding: bool = True) -> outbox.Result | None:
    """The dispatcher's decision for a claim, before any send."""
    sender = PausedFor(pause)
    d = Dispatcher(None, CFG, {"apns": (sender, 10)})  # type: ignore[arg-type]
    if holding:
        d.presence.holding.set()
    return d._without_sending(c, sender, NOW)


def test_order_of_a_lifted_order_is_cancelled() -> None:
    """An order push claimed before its order was lifted is cancelled, not sent."""
    result = rule(claimed(order_state="lifted"))
    assert result is not None and result.state == "cancelled"


def test_lifting_push_of_a_lifted_order_is_sent() -> None:
    """The 解除 itself is still sent for a lifted order."""
    assert rule(claimed(kind="order_lifted", order_state="lifted")) is None


def test_claim_with_lease_nearly_gone_is_handed_back() -> None:
    """A claim held past its lease margin goes back to the outbox without counting."""
    result = rule(claimed(lease_left=0.5))
    assert result is not None and result.state == "pending" and result.refund


def test_paused_service_hands_back_until_the_pause_ends() -> None:
    """During a quota pause a claim is handed back for when it ends, not counted."""
    result = rule(claimed(), pause=20.0)
    assert result is not None and result.refund and result.due_at == NOW + timedelta(seconds=20)


def test_pause_is_capped() -> None:
    """An absurd pause is capped at backoff_max_s."""
    result = rule(claimed(), pause=10 ** 6)
    assert result is not None and result.due_at == NOW + timedelta(
        seconds=CFG.dispatch.backoff_max_s)


def test_healthy_claim_is_sent() -> None:
    """A fresh claim of an active order on a running service goes out."""
    assert rule(claimed()) is None


def test_claim_is_not_sent_once_the_lock_is_lost() -> None:
    """A claim not yet sent when the dispatcher lost its lock is handed back unsent (peers may
    own it already), without counting as an attempt."""
    assert rule(claimed(), holding=False) == outbox.Result(
        7, "pending", NOW, None, "dispatcher lost its lock", refund=True)


def test_a_batch_holds_one_slot_per_outcome_and_the_refused_tokens() -> None:
    """Each outcome in a batch holds one send slot of its service; refused tokens ride along."""
    batch = Batch()
    ios, android = claimed(), dataclasses.replace(claimed(), id=8, service="fcm",
                                                  push_token="y")
    batch.add(ios, outbox.Result(ios.id, "sent", None, "p", None))
    batch.add(android, outbox.Result(android.id, "invalid_token", None, None, "UNREGISTERED"))
    batch.add(ios, outbox.Result(9, "pending", NOW, None, "503"))
    assert batch.slots == {"apns": 2, "fcm": 1}
    assert batch.invalid == [(android.device_id, "y")]
    assert [r.id for r in batch.results] == [7, 8, 9]


def test_a_batch_put_back_keeps_its_place_before_newer_outcomes() -> None:
    """A batch whose commit failed goes before outcomes that arrived meanwhile, slots summed."""
    older, newer = Batch(), Batch()
    older.add(claimed(), outbox.Result(7, "sent", None, None, None))
    newer.add(claimed(), outbox.Result(8, "sent", None, None, None))
    both = older.before(newer)
    assert ([r.id for r in both.results], both.slots) == ([7, 8], {"apns": 2})
    assert not Batch() and both


def test_slots_never_exceed_their_size() -> None:
    """Slots are taken while free, refused beyond, and giving back never adds any."""
    slots = Slots(2)
    slots.take()
    slots.take()
    with pytest.raises(RuntimeError):
        slots.take()
    slots.give_back(5)
    assert slots.free == 2
