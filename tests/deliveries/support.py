"""Helpers of the deliveries suite: polling a delivery, reading callbacks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from testkit.processes import wait_for
from tests.jobs.receivers import Receiver


def wait_until(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """`testkit.processes.wait_for` with the suite's longer default (archives stream first)."""
    return wait_for(check, timeout=timeout, what=what or "condition")


def events_of(receiver: Receiver) -> list[str]:
    """The `event` of every callback the receiver got, in arrival order."""
    return [json.loads(body)["event"] for _, body in list(receiver.received)]
