"""Waiting on a condition with a deadline: the one way tests synchronise with the system."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

DEADLINE = 30.0
POLL_S = 0.02  # how often a condition is re-checked while waiting on it


async def wait_for(check: Callable[[], Awaitable[Any]], what: str,
                   deadline: float = DEADLINE) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after the deadline."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        last = await check()
        if last:
            return last
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
