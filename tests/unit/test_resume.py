"""Resuming a recorded archive from any byte (unit: a scripted upstream, a real local store).

A first stream is broken after `offset` bytes (its iterator closed, as a client that leaves
does), and a second archive resumes from the manifest the first one left: its bytes must be
exactly the rest of the unbroken archive, it must not fetch an image whose entry ended
before the offset, and with a manifest that does not reach the end its size is known before
the first byte.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from app.archive.fairness import FairLimiter
from app.archive.manifest import (
    SEGMENT_ENTRIES,
    ManifestWriter,
    Record,
    read_manifest,
    segment_key,
)
from app.archive.plan import REPORT_NAME, BatchPlan, plan_batch
from app.archive.resume import ResumeMismatch, ResumePoint
from app.archive.stream import BatchArchive
from app.storage import LocalArchiveStore, Quota
from app.upstream.models import Order
from app.upstream.options import DownloadOptions
from tests.unit.fakes import ScriptedClient

KEY = "k" * 64


def make_plan(count: int, *, not_ready: set[int] = frozenset()) -> BatchPlan:  # type: ignore[assignment]
    order = Order.model_validate(
        {
            "order_id": "o",
            "name": "Resume",
            "last_updated_at": "2025-07-05T09:30:00Z",
            "images": [
                {
                    "image_id": f"img-{i}",
                    "image_name": f"Ümage {i}",
                    "status": "processing" if i in not_ready else "processed",
                    "date_added": 1_750_000_000_000 + i * 61_000,
                }
                for i in range(count)
            ],
        }
    )
    return plan_batch(order, DownloadOptions())


def payloads(count: int) -> dict[str, bytes]:
    # Distinct sizes and contents, so an entry taken for another cannot go unnoticed.
    return {f"img-{i}": bytes([i + 1]) * (97 + 31 * i) + f"#{i}".encode() for i in range(count)}


@pytest.fixture
def store(tmp_path: Path) -> LocalArchiveStore:
    quota = Quota(namespaces=("cache", "manifests"), max_bytes=None, evictable=True)
    return LocalArchiveStore(tmp_path / "store", quotas=[quota])


def archive_of(
    plan: BatchPlan,
    client: ScriptedClient,
    tmp_path: Path,
    *,
    manifest: ManifestWriter | None = None,
    resume: ResumePoint | None = None,
) -> BatchArchive:
    return BatchArchive(
        plan,
        client=client,  # type: ignore[arg-type]
        api_key=None,
        limiter=FairLimiter(4),
        concurrency=2,
        spool_dir=tmp_path / "spool",
        spool_memory_bytes=64,
        manifest=manifest,
        resume=resume,
    )


async def read_all(archive: BatchArchive) -> bytes:
    await archive.start()
    return b"".join([chunk async for chunk in archive])


async def break_after(archive: BatchArchive, offset: int) -> None:
    """Consume `offset` bytes, then leave as a client does (the iterator is closed)."""
    await archive.start()
    received = 0
    chunks = aiter(archive)
    try:
        while received < offset:
            received += len(await anext(chunks))
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def entry_ends(data: bytes) -> dict[str, int]:
    """Where each entry's data ends in the archive, by image id (from the entry names)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        ends = {}
        for info in zf.infolist():
            header = 30 + len(info.filename.encode()) + len(info.extra)
            ends[info.filename] = info.header_offset + header + info.file_size
        return ends


def interesting_offsets(data: bytes) -> list[int]:
    """Every byte around each record boundary (headers, data, report, directory, end record),
    and every 11th byte between them."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        marks = {zf.start_dir, len(data) - 22}
        for info in zf.infolist():
            data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
            marks |= {info.header_offset, data_start, data_start + info.file_size}
    near = {mark + delta for mark in marks for delta in (-2, -1, 0, 1, 2)}
    return sorted(o for o in near | set(range(1, len(data), 11)) if 0 < o < len(data))


async def test_every_offset_of_a_broken_stream_resumes_to_identical_bytes(
    tmp_path: Path, store: LocalArchiveStore
) -> None:
    plan = make_plan(5, not_ready={3})
    images = payloads(5)
    reference = await read_all(archive_of(plan, ScriptedClient(images), tmp_path))
    ends = entry_ends(reference)
    names = {p.image.image_id: p.entry_name for p in plan.images}
    for offset in interesting_offsets(reference):
        first = ScriptedClient(images)
        writer = ManifestWriter(store, KEY, stream=f"s{offset}")
        await break_after(archive_of(plan, first, tmp_path, manifest=writer), offset)
        manifest = await read_manifest(store, KEY)
        assert manifest is not None
        assert manifest.stream == f"s{offset}"
        point = ResumePoint(
            offset=offset,
            records=manifest.records,
            complete=manifest.complete,
            prefetch=not manifest.complete,
        )
        second = ScriptedClient(images)
        resumed = archive_of(
            plan,
            second,
            tmp_path,
            manifest=ManifestWriter(
                store, KEY, stream=manifest.stream, persisted=len(manifest.records)
            ),
            resume=point,
        )
        await resumed.start()
        if point.prefetch:
            assert resumed.expected_size() == len(reference), offset
        rest = b"".join([chunk async for chunk in resumed])
        assert rest == reference[offset:], offset
        for image_id, count in second.fetches.items():
            assert ends[names[image_id]] > offset, f"{image_id} refetched for offset {offset}"
            assert count == 1


async def test_a_skip_is_reproduced_by_the_resume_with_the_same_report(
    tmp_path: Path, store: LocalArchiveStore
) -> None:
    plan = make_plan(4)
    images = payloads(4)
    first = ScriptedClient(images, failing={"img-1"})
    writer = ManifestWriter(store, KEY, stream="s")
    broken = archive_of(plan, first, tmp_path, manifest=writer)
    unbroken = await read_all(archive_of(plan, ScriptedClient(images, {"img-1"}), tmp_path))
    offset = entry_ends(unbroken)[plan.images[2].entry_name] + 3
    await break_after(broken, offset)
    manifest = await read_manifest(store, KEY)
    assert manifest is not None
    assert manifest.records[1].skipped == "upstream answered 500"
    second = ScriptedClient(images)
    resumed = archive_of(
        plan,
        second,
        tmp_path,
        resume=ResumePoint(offset=offset, records=manifest.records, complete=False, prefetch=True),
    )
    rest = await read_all(resumed)
    assert rest == unbroken[offset:]
    assert "img-1" not in second.fetches  # the skip is reproduced, not retried
    with zipfile.ZipFile(io.BytesIO(unbroken[:offset] + rest)) as zf:
        assert zf.testzip() is None
        assert b"img-1" in zf.read(REPORT_NAME)


async def test_a_changed_image_is_a_mismatch_before_the_first_byte(
    tmp_path: Path, store: LocalArchiveStore
) -> None:
    plan = make_plan(3)
    images = payloads(3)
    reference = await read_all(
        archive_of(
            plan, ScriptedClient(images), tmp_path, manifest=ManifestWriter(store, KEY, stream="s")
        )
    )
    manifest = await read_manifest(store, KEY)
    assert manifest is not None
    assert manifest.complete
    changed = {**images, "img-1": images["img-1"][::-1]}  # same size, other bytes
    offset = entry_ends(reference)[plan.images[1].entry_name] - 5
    resumed = archive_of(
        plan,
        ScriptedClient(changed),
        tmp_path,
        resume=ResumePoint(offset=offset, records=manifest.records, complete=True),
    )
    with pytest.raises(ResumeMismatch):
        await resumed.start()


async def test_a_record_of_another_plan_or_an_offset_past_it_cannot_be_resumed(
    tmp_path: Path,
) -> None:
    plan = make_plan(3)
    records = (Record("img-0", plan.images[0].entry_name, 10, 1),)
    with pytest.raises(ResumeMismatch):  # the client has bytes the record does not describe
        archive_of(
            plan,
            ScriptedClient(payloads(3)),
            tmp_path,
            resume=ResumePoint(offset=10_000, records=records, complete=False),
        )
    foreign = (Record("img-9", "other.jpg", 10, 1),)
    with pytest.raises(ResumeMismatch):
        archive_of(
            plan,
            ScriptedClient(payloads(3)),
            tmp_path,
            resume=ResumePoint(offset=5, records=foreign, complete=False),
        )


async def test_manifest_segments_follow_one_stream_only(store: LocalArchiveStore) -> None:
    records = [Record(f"img-{i}", f"{i}.jpg", i, i) for i in range(SEGMENT_ENTRIES + 5)]
    first = ManifestWriter(store, KEY, stream="a")
    for count in range(1, len(records) + 1):
        await first.save(records[:count], complete=False)
    await first.aclose()
    manifest = await read_manifest(store, KEY)
    assert manifest is not None
    assert list(manifest.records) == records
    # Another stream rewrites the first segment: the second one (stream "a") is not followed.
    second = ManifestWriter(store, KEY, stream="b")
    await second.save(records[:3], complete=False)
    await second.aclose()
    manifest = await read_manifest(store, KEY)
    assert manifest is not None
    assert manifest.stream == "b"
    assert len(manifest.records) == 3
    await store.put_bytes(segment_key(KEY, 0), b"{not json")
    assert await read_manifest(store, KEY) is None
