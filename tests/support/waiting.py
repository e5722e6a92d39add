"""Waiting on a condition with a deadline (never sleep-and-hope), for sync and async tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Call `predicate` until it returns something truthy (exceptions count as not yet); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as error:  # noqa: BLE001 - remembered for the failure message
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    expected: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll `predicate` (sync, run in a thread) until it returns something truthy, or fail after `timeout`.

    An exception of a type in `expected` counts as not yet (and is remembered for the failure message);
    any other fails the test at once.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await asyncio.to_thread(predicate)
        except expected as error:
            last = error
        else:
            if last:
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
