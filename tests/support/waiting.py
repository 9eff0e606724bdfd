"""Waiting on a condition instead of sleeping a fixed time.

A fixed sleep is either too short on a busy machine (the test fails though nothing is wrong)
or too long everywhere else. Polling with a generous deadline is neither: it returns as soon
as the condition holds, and the deadline only bounds how long a real failure takes to show."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 60.0, interval_s: float = 0.1) -> T:
    """Call `condition` until it returns something truthy, and return that; raise
    TimeoutError naming `what` once `timeout_s` has passed without it."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline_s:
            raise TimeoutError(f"after {timeout_s:.0f} s still waiting for {what}")
        time.sleep(interval_s)
