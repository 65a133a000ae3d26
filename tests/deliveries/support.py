"""Helpers of the deliveries suite: polling a delivery, reading callbacks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.jobs.receivers import Receiver


def wait_until(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        time.sleep(0.05)


def events_of(receiver: Receiver) -> list[str]:
    """The `event` of every callback the receiver got, in arrival order."""
    return [json.loads(body)["event"] for _, body in list(receiver.received)]
