"""FairLimiter: slots go round-robin between lanes, whatever order they queued in."""

from __future__ import annotations

import asyncio

import pytest

from app.archive.fairness import FairLimiter


async def test_waiters_of_a_late_small_lane_are_not_starved() -> None:
    limiter = FairLimiter(2)
    order: list[str] = []
    release = asyncio.Event()

    async def job(lane: str, index: int) -> None:
        async with limiter.slot(lane):
            order.append(f"{lane}{index}")
            await release.wait()

    big = [asyncio.create_task(job("big", i)) for i in range(50)]
    await asyncio.sleep(0)
    small = [asyncio.create_task(job("small", i)) for i in range(3)]
    await asyncio.sleep(0)
    # Let slots turn over one at a time and record who gets each.
    for _ in range(10):
        release.set()
        await asyncio.sleep(0)
        release.clear()
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*big, *small)
    first_ten = order[:10]
    # With FIFO the small lane would wait for all 50 big jobs; round-robin serves it early.
    assert {"small0", "small1", "small2"} <= set(first_ten), first_ten
    assert limiter.in_use == 0
    assert limiter.waiting == 0


async def test_capacity_is_never_exceeded() -> None:
    limiter = FairLimiter(3)
    active = 0
    peak = 0

    async def job(lane: int) -> None:
        nonlocal active, peak
        async with limiter.slot(lane):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.001)
            active -= 1

    await asyncio.gather(*(job(i % 4) for i in range(40)))
    assert peak == 3
    assert limiter.in_use == 0


async def test_cancelled_waiter_gives_nothing_away() -> None:
    limiter = FairLimiter(1)
    await limiter.acquire("a")
    waiter = asyncio.create_task(limiter.acquire("b"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.in_use == 0
    await asyncio.wait_for(limiter.acquire("c"), timeout=1)
    assert limiter.in_use == 1


async def test_slot_granted_while_being_cancelled_is_passed_on() -> None:
    limiter = FairLimiter(1)
    await limiter.acquire("a")
    first = asyncio.create_task(limiter.acquire("b"))
    second = asyncio.create_task(limiter.acquire("c"))
    await asyncio.sleep(0)
    limiter.release()  # grants "b" ...
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=1)
    assert limiter.in_use == 1


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FairLimiter(0)
