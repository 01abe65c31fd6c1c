"""Waiting in tests for what another thread or process does, without a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(check: Callable[[], bool], within: float) -> bool:
    """Whether ``check`` holds before ``within`` seconds from now (asked every 20 ms)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
