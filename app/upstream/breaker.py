"""A small circuit breaker for the upstream API.

Written here rather than taken from a library: pybreaker wraps only synchronous (or Tornado)
calls, aiobreaker has been unmaintained since 2021, and the behaviour needed is a dozen lines —
count consecutive retry-exhausted failures, fail fast for a cool-down, then let calls probe
again and close on the first success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from app.core import metrics
from app.upstream.errors import CircuitOpen

logger = logging.getLogger("app.upstream")


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; stays open for `cooldown` seconds.

    While open, `check()` raises `CircuitOpen` with the seconds left as `retry_after`. After the
    cool-down the circuit is half-open: calls go through, and the first success closes it while
    another failure opens it again at once.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half-open"

    def check(self) -> None:
        """Raise `CircuitOpen` while the circuit is open."""
        if self._opened_at is None:
            return
        remaining = self.cooldown - (self._clock() - self._opened_at)
        if remaining > 0:
            raise CircuitOpen(
                "the Autoenhance API is failing; not calling it for a moment",
                retry_after=remaining,
            )

    def record_success(self) -> None:
        if self._opened_at is not None:
            logger.info("upstream circuit closed")
            metrics.CIRCUIT_OPEN.set(0)
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        half_open = self._opened_at is not None and self.state == "half-open"
        if half_open or (self._opened_at is None and self._failures >= self.failure_threshold):
            if self._opened_at is None or half_open:
                logger.warning("upstream circuit opened after %d failures", self._failures)
            self._opened_at = self._clock()
            metrics.CIRCUIT_OPEN.set(1)
