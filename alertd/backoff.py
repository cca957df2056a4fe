"""The one back-off policy: outbox retries, feed polls and token refreshes all wait by it."""

from __future__ import annotations

import asyncio
import contextlib
import random

# 2 ** 64 times any sane base is far beyond every cap; a larger exponent would only risk an
# OverflowError when it is turned into a float.
_MAX_EXPONENT = 64


def delay(attempt: int, base_s: float, max_s: float, retry_after: float | None = None,
          rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempt`-th failure: exponential with jitter, never above max_s.

    The full delay doubles per attempt from base_s (attempt 1 waits up to base_s) and is capped
    at max_s; "equal jitter" then picks between half of it and all of it, so retries spread out
    yet keep a floor. A Retry-After is a floor too, but never beyond max_s: a server's "come
    back tomorrow" must not park an evacuation order past its expiry or a feed past its cap.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    full = min(max_s, base_s * 2 ** exponent)
    wait = full * (0.5 + (rng or random).random() / 2)
    if retry_after is not None:
        wait = max(wait, min(retry_after, max_s))
    return float(min(max(wait, 0.0), max_s))


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less once `stop` is set (the loops of feeds, scheduler and fan-out
    runners wait by it between rounds and after failures)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
