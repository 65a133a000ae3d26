"""Units of the deliveries package: byte-range arithmetic, what a body counts as served, the
variants registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.deliveries.models import MAX_RANGES, covers, merged
from app.deliveries.proof import ServedBody
from app.deliveries.variants import UnknownVariant, checked_variants, variant_options
from app.imaging.presets import BUILT_IN


def test_ranges_merge_overlapping_and_adjacent_spans() -> None:
    spans = merged([], 0, 100)
    spans = merged(spans, 200, 300)
    assert spans == [(0, 100), (200, 300)]
    assert not covers(spans, 300)
    spans = merged(spans, 100, 200)  # adjacent on both sides
    assert spans == [(0, 300)]
    assert covers(spans, 300)
    assert merged(spans, 50, 60) == [(0, 300)]
    assert merged([(10, 20)], 5, 5) == [(10, 20)]  # an empty span adds nothing


def test_ranges_stay_bounded_by_dropping_the_smallest() -> None:
    spans: list[tuple[int, int]] = []
    for index in range(MAX_RANGES + 5):
        spans = merged(spans, index * 10, index * 10 + 1 + index % 3)
    assert len(spans) == MAX_RANGES
    assert spans == sorted(spans)


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


def test_a_body_that_runs_to_its_end_reports_every_byte_and_the_size() -> None:
    reports: list[tuple[int, int, int | None]] = []

    async def on_served(start: int, end: int, total: int | None) -> None:
        reports.append((start, end, total))

    async def run() -> None:
        body = ServedBody(
            chunks(10, 100), start=0, total=None, on_served=on_served, flush_bytes=350
        )
        assert [len(c) async for c in body] == [100] * 10

    asyncio.run(run())
    assert reports[-1][2] == 1000
    assert merged_all(reports) == [(0, 1000)]
    assert len(reports) > 1  # flushed on the way


def test_a_client_that_leaves_has_the_chunk_in_flight_not_counted() -> None:
    reports: list[tuple[int, int, int | None]] = []

    async def on_served(start: int, end: int, total: int | None) -> None:
        reports.append((start, end, total))

    async def run() -> None:
        body = ServedBody(chunks(10, 100), start=500, total=2000, on_served=on_served)
        await anext(body)
        await anext(body)
        await anext(body)  # handed out, never confirmed sent
        await body.aclose()
        await body.aclose()  # idempotent

    asyncio.run(run())
    assert reports == [(500, 700, 2000)]


def test_a_flush_cancelled_by_a_leaving_client_is_still_recorded() -> None:
    reports: list[tuple[int, int, int | None]] = []
    writing = asyncio.Event()
    release = asyncio.Event()

    async def slow_store(start: int, end: int, total: int | None) -> None:
        writing.set()
        await release.wait()
        reports.append((start, end, total))

    async def run() -> None:
        body = ServedBody(
            chunks(10, 100), start=0, total=1000, on_served=slow_store, flush_bytes=300
        )

        async def consume() -> None:
            async for _ in body:
                pass

        task = asyncio.create_task(consume())
        await writing.wait()  # the flush of bytes 0-300 is being written
        task.cancel()  # the client leaves: the server cancels the request's task
        with pytest.raises(asyncio.CancelledError):
            await task
        await body.aclose()
        release.set()
        for _ in range(100):  # the write finishes on its own task
            if reports:
                break
            await asyncio.sleep(0)

    asyncio.run(run())
    assert merged_all(reports) == [(0, 300)]


def merged_all(reports: list[tuple[int, int, int | None]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for start, end, _ in reports:
        spans = merged(spans, start, end)
    return spans


def test_variants_are_checked_against_the_presets() -> None:
    assert checked_variants(["print", "mls", "print"], BUILT_IN) == ["print", "mls"]
    with pytest.raises(UnknownVariant) as caught:
        checked_variants(["print", "paragon"], BUILT_IN)
    assert caught.value.name == "paragon"
    options = variant_options("print", ("a", "b"), BUILT_IN)
    assert options.preview is False
    assert options.images == ("a", "b")
    # print stays the plain full-quality archive (its ETags from before presets hold)
    assert options.variants is None
    mls = variant_options("mls", None, BUILT_IN)
    assert (mls.preview, mls.variants, mls.format) == (False, ("mls",), "jpeg")
