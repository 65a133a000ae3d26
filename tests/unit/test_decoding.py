"""The decoding policy alone: scan counting, the budget, and the decode pool's bounds."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from PIL import Image

from app.imaging.decoding import (
    Budget,
    DecodeAbandoned,
    DecodeRefused,
    DecodingPolicy,
    jpeg_scans,
    open_image,
)
from app.imaging.pool import DecodePool, DecoderBusy


def jpeg(*, progressive: bool, restarts: bool = False) -> bytes:
    out = io.BytesIO()
    picture = Image.effect_noise((96, 64), 60).convert("RGB")
    extra = {"restart_marker_blocks": 1} if restarts else {}
    picture.save(out, "JPEG", progressive=progressive, quality=95, **extra)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "scans"),
    [
        (jpeg(progressive=False), 1),
        (jpeg(progressive=True), 10),  # libjpeg's standard progression for colour
        (jpeg(progressive=False, restarts=True), 1),
        (b"\x89PNG\r\n\x1a\n", 0),
        (b"", 0),
        (b"\xff\xd8\xff", 0),
    ],
    ids=["baseline", "progressive", "restart markers", "png", "empty", "truncated"],
)
def test_scans_are_counted(data: bytes, scans: int) -> None:
    assert jpeg_scans(data, stop_after=1000) == scans


def test_counting_stops_past_the_cap() -> None:
    assert jpeg_scans(jpeg(progressive=True), stop_after=3) == 4


def test_a_picture_past_the_scan_cap_is_refused_before_it_is_opened() -> None:
    budget = Budget(DecodingPolicy(max_scans=9))
    with pytest.raises(DecodeRefused) as refused:
        open_image(jpeg(progressive=True), budget=budget, max_pixels=10**6)
    assert refused.value.reason == "scans"
    ten = Budget(DecodingPolicy(max_scans=10))
    open_image(jpeg(progressive=True), budget=ten, max_pixels=10**6).load()


def test_a_picture_past_the_pixel_bound_is_refused_from_its_header() -> None:
    with pytest.raises(DecodeRefused, match="96x64") as refused:
        open_image(jpeg(progressive=False), budget=Budget(DecodingPolicy()), max_pixels=6000)
    assert refused.value.reason == "pixels"


def test_a_passed_deadline_stops_the_decode_at_its_next_read() -> None:
    budget = Budget(DecodingPolicy(deadline=0.000_001))
    picture = open_image(jpeg(progressive=False), budget=budget, max_pixels=10**6)
    budget.start()
    threading.Event().wait(0.01)
    with pytest.raises(DecodeRefused) as refused:
        picture.load()
    assert refused.value.reason == "deadline"


def test_an_abandoned_budget_stops_the_decode() -> None:
    budget = Budget(DecodingPolicy())
    picture = open_image(jpeg(progressive=False), budget=budget, max_pixels=10**6)
    budget.abandon()
    with pytest.raises(DecodeAbandoned):
        picture.load()


async def test_the_pool_refuses_past_its_queue_and_frees_places_when_work_ends() -> None:
    release = threading.Event()
    started = threading.Event()

    def blocking(budget: Budget) -> str:
        started.set()
        release.wait(10)
        return "done"

    pool = DecodePool(workers=1, queue=1, policy=DecodingPolicy())
    try:
        running = asyncio.ensure_future(pool.run(blocking))
        queued = asyncio.ensure_future(pool.run(blocking))
        await asyncio.to_thread(started.wait, 10)
        assert pool.pending == 2
        with pytest.raises(DecoderBusy) as busy:
            await pool.run(blocking)
        assert busy.value.status_code == 503
        assert busy.value.headers["Retry-After"]
        release.set()
        assert await running == "done"
        assert await queued == "done"
        assert pool.pending == 0
    finally:
        release.set()
        pool.close()


async def test_a_cancelled_caller_abandons_a_running_decode_and_a_queued_one_never_runs() -> None:
    started = threading.Event()
    stopped = threading.Event()
    ran: list[str] = []

    def spinning(budget: Budget) -> None:
        started.set()
        try:
            while True:  # stands for a decoder reading its input through the budget
                budget.check()
                threading.Event().wait(0.001)
        finally:
            stopped.set()

    def queued_work(budget: Budget) -> None:
        ran.append("queued")

    pool = DecodePool(workers=1, queue=4, policy=DecodingPolicy(deadline=600))
    try:
        running = asyncio.ensure_future(pool.run(spinning))
        queued = asyncio.ensure_future(pool.run(queued_work))
        await asyncio.to_thread(started.wait, 10)
        queued.cancel()
        running.cancel()
        for task in (running, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await asyncio.to_thread(stopped.wait, 10)
        while pool.pending:
            await asyncio.sleep(0.01)
        assert ran == []
    finally:
        pool.close()
