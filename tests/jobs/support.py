"""Helpers of the jobs suite: polling a job's state."""

from __future__ import annotations

import time
from typing import Any

import httpx


def wait_state(
    client: httpx.Client,
    status_url: str,
    *,
    until: set[str] | None = None,
    timeout: float = 20.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll a job until its state is in `until` (default: any final state)."""
    until = until or {"complete", "failed", "cancelled", "expired"}
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(status_url, headers=headers)
        assert response.status_code == 200, response.text
        status = response.json()
        if status["state"] in until:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job did not reach {until} in {timeout}s: {status}")
