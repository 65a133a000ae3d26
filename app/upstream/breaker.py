"""Circuit breakers for the upstream API: one shared circuit, and one per credential.

Written here rather than taken from a library: pybreaker wraps only synchronous (or Tornado)
calls, aiobreaker has been unmaintained since 2021, and the behaviour needed is a dozen lines —
count consecutive retry-exhausted failures, fail fast for a cool-down, then let calls probe
again and close on the first success.

Which failure opens which circuit:

- The shared `CircuitBreaker` counts only failures that say the upstream itself is failing:
  5xx answers, timeouts and connection errors. While it is open every caller fails fast.
- `CredentialBreakers` counts failures that belong to the key a call used: 429 (that key is
  over its rate limit) and 401/403 (that key is wrong or out of credits). While a key's
  circuit is open, only calls with that key fail fast, with the kind of failure that opened
  it; the operator and other callers are untouched. The Autoenhance API also answers 429 when
  one address sends over 300 requests a second; that limit then reaches every key, and each
  key backs off on its own, which is the same back-off without punishing anyone twice.

The per-credential table is bounded: entries exist only for keys whose last call failed,
are filed under a one-way hash of the key (never the key), and past `max_entries` the key
that failed longest ago is forgotten (forgetting costs at most a few upstream calls, which
the rate limits bound; an attacker sending endless made-up keys cannot grow the table).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from app.core import metrics
from app.core.security import key_fingerprint
from app.upstream.errors import CircuitOpen, UpstreamError, UpstreamUnauthorized

logger = logging.getLogger("app.upstream")

# Fingerprint under which calls that send no key at all are counted.
NO_KEY = "no-key"

CredentialFailure = Literal["rate_limited", "unauthorized"]


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; stays open for `cooldown` seconds.

    While open, `check()` raises `CircuitOpen` with the seconds left as `retry_after`. After the
    cool-down the circuit is half-open: calls go through, and the first success closes it while
    another failure opens it again at once. `report=False` keeps it out of the logs and the
    `upstream_circuit_open` gauge (per-credential circuits use that).
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        report: bool = True,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._report = report
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half-open"

    @property
    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 when not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def check(self) -> None:
        """Raise `CircuitOpen` while the circuit is open."""
        remaining = self.retry_after
        if remaining > 0:
            raise CircuitOpen(
                "the Autoenhance API is failing; not calling it for a moment",
                retry_after=remaining,
            )

    def record_success(self) -> None:
        if self._opened_at is not None and self._report:
            logger.info("upstream circuit closed")
            metrics.CIRCUIT_OPEN.set(0)
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        half_open = self._opened_at is not None and self.state == "half-open"
        if half_open or (self._opened_at is None and self._failures >= self.failure_threshold):
            if self._report:
                logger.warning("upstream circuit opened after %d failures", self._failures)
                metrics.CIRCUIT_OPEN.set(1)
            self._opened_at = self._clock()


class _Credential:
    __slots__ = ("breaker", "failure")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.failure: CredentialFailure = "rate_limited"


class CredentialBreakers:
    """One circuit per upstream key, for failures that belong to that key (module docstring).

    `check(api_key)` raises, while that key's circuit is open, `CircuitOpen` when 429s opened
    it and `UpstreamUnauthorized` when 401/403 did, so callers map it exactly as they map the
    failure itself.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Credential] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _id(api_key: str | None) -> str:
        return key_fingerprint(api_key) if api_key else NO_KEY

    def state(self, api_key: str | None) -> Literal["closed", "open", "half-open"]:
        entry = self._entries.get(self._id(api_key))
        return "closed" if entry is None else entry.breaker.state

    def check(self, api_key: str | None) -> None:
        """Raise while the circuit of `api_key` is open.

        Raises:
            CircuitOpen: the key's recent calls were rate limited (429).
            UpstreamUnauthorized: the key was recently refused (401/403).
        """
        entry = self._entries.get(self._id(api_key))
        if entry is None:
            return
        remaining = entry.breaker.retry_after
        if remaining <= 0:
            return
        if entry.failure == "unauthorized":
            raise UpstreamUnauthorized(
                "the Autoenhance API refused this key; not asking again for a moment",
                status_code=401,
            )
        raise CircuitOpen(
            "the Autoenhance API is rate limiting this key; not calling it for a moment",
            retry_after=remaining,
        )

    def record_success(self, api_key: str | None) -> None:
        self._entries.pop(self._id(api_key), None)

    def record_failure(self, api_key: str | None, exc: UpstreamError) -> None:
        """Count a failure of this key: a 429 (`UpstreamRateLimited`) or a 401/403."""
        ident = self._id(api_key)
        entry = self._entries.get(ident)
        if entry is None:
            entry = _Credential(
                CircuitBreaker(
                    failure_threshold=self.failure_threshold,
                    cooldown=self.cooldown,
                    clock=self._clock,
                    report=False,
                )
            )
            self._entries[ident] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(ident)
        entry.failure = "unauthorized" if isinstance(exc, UpstreamUnauthorized) else "rate_limited"
        entry.breaker.record_failure()
