"""A bounded pool of decode workers, apart from the event loop's shared thread pool.

Decoding is CPU-bound C code that runs in threads (Pillow releases the GIL while it decodes).
Sent to the default thread pool, slow decodes would hold the threads every synchronous
dependency and file call of the service waits for (`/health` among them); so decodes get
their own `workers` threads and at most `queue` more wait for one. Past that a decode is
refused at once (`DecoderBusy`, a 503 with Retry-After) instead of piling up.

A caller that stops waiting (its client left: its task is cancelled) abandons its decode: one
still queued never starts, one running stops at its next read (`Budget`). Either way it holds
its place in the pool until it has really stopped, so the bound counts work actually done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from app.core import metrics
from app.core.errors import ServiceUnavailable
from app.imaging.decoding import Budget, DecodeAbandoned, DecodeRefused, DecodingPolicy

T = TypeVar("T")

# Seconds a refused caller is told to wait: a queue drains in about a deadline at worst.
BUSY_RETRY_AFTER = 5


class DecoderBusy(ServiceUnavailable):
    code = "decoder_busy"

    def __init__(self) -> None:
        super().__init__(
            "Too many pictures are being decoded right now; try again shortly.",
            headers={"Retry-After": str(BUSY_RETRY_AFTER)},
        )


class DecodePool:
    """Runs `work(budget)` in one of `workers` threads, at most `workers + queue` at once.

    Owned by the application's lifespan; `close` stops the threads (abandoning what runs).
    """

    def __init__(self, *, workers: int, queue: int, policy: DecodingPolicy) -> None:
        self.policy = policy
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self._lock = threading.Lock()
        self._pending = 0
        self._budgets: set[Budget] = set()

    @property
    def pending(self) -> int:
        """Decodes queued or running (abandoned ones included until they stopped)."""
        with self._lock:
            return self._pending

    async def run(self, work: Callable[[Budget], T]) -> T:
        """`work(budget)` in a decode thread, under this pool's policy.

        Raises:
            DecoderBusy: the pool and its queue are full.
            DecodeRefused: from `work` (also when the deadline passed).
            asyncio.CancelledError: the caller was cancelled; the decode is abandoned.
        """
        budget = Budget(self.policy)
        with self._lock:
            if self._pending >= self.capacity:
                metrics.IMAGE_DECODES.labels("busy").inc()
                raise DecoderBusy()
            self._pending += 1
            self._budgets.add(budget)
        metrics.IMAGE_DECODES_PENDING.inc()
        try:
            future = self._executor.submit(self._run, work, budget)
        except RuntimeError:  # shut down
            self._release(budget)
            raise DecoderBusy() from None
        future.add_done_callback(lambda done: self._finished(done, budget))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # wrap_future has cancelled the future if it had not started; if it had, the
            # budget stops it at its next read.
            budget.abandon()
            raise

    def close(self) -> None:
        """Abandon every decode and stop the threads (without waiting for them)."""
        with self._lock:
            budgets = list(self._budgets)
        for budget in budgets:
            budget.abandon()
        self._executor.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _run(work: Callable[[Budget], T], budget: Budget) -> T:
        budget.start()
        budget.check()
        return work(budget)

    def _finished(self, future: Future[T], budget: Budget) -> None:
        self._release(budget)
        if future.cancelled():
            metrics.IMAGE_DECODES.labels("abandoned").inc()
            return
        exc = future.exception()
        if exc is None:
            outcome = "ok"
        elif isinstance(exc, DecodeRefused):
            outcome = exc.reason
        elif isinstance(exc, DecodeAbandoned):
            outcome = "abandoned"
        else:
            outcome = "error"
        metrics.IMAGE_DECODES.labels(outcome).inc()

    def _release(self, budget: Budget) -> None:
        with self._lock:
            self._pending -= 1
            self._budgets.discard(budget)
        metrics.IMAGE_DECODES_PENDING.dec()
