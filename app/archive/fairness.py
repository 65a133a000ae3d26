"""Fair sharing of the upstream connection budget between concurrent downloads.

`UPSTREAM_MAX_CONNECTIONS` caps image fetches across all requests. A plain semaphore would
serve waiters first-come-first-served, so one 1,000-image order that queued first would
starve ten small orders behind it. `FairLimiter` instead hands each freed slot to the next
*lane* (one lane per download) in round-robin order, so every active download progresses at
the same rate whatever its size.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class FairLimiter:
    """A counting semaphore whose waiters are served round-robin by lane."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._free = capacity
        self._lanes: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def in_use(self) -> int:
        return self.capacity - self._free

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._lanes.values())

    async def acquire(self, lane: Hashable) -> None:
        """Wait for a slot on behalf of `lane`. Cancellation while waiting gives nothing away."""
        if self._free > 0 and not self._lanes:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lanes.setdefault(lane, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # The slot was granted just as we were cancelled: pass it on.
                self.release()
            else:
                queue = self._lanes.get(lane)
                if queue is not None and future in queue:
                    queue.remove(future)
                    if not queue:
                        del self._lanes[lane]
            raise

    def release(self) -> None:
        """Give a slot back: to the next lane in turn if any is waiting, else to the pool."""
        while self._lanes:
            lane, queue = next(iter(self._lanes.items()))
            future = queue.popleft()
            if queue:
                self._lanes.move_to_end(lane)
            else:
                del self._lanes[lane]
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    @asynccontextmanager
    async def slot(self, lane: Hashable) -> AsyncIterator[None]:
        await self.acquire(lane)
        try:
            yield
        finally:
            self.release()
