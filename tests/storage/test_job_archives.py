"""Job archives (`app.jobs.store`) on both store backends: the runner's synchronous writer,
the bound, deletion."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from app.jobs.store import JobArchives, StorageFull
from app.storage import Quota
from tests.storage.support import StoreFactory, read_all

JOBS = Quota(namespaces=("jobs",), max_bytes=10_000, evictable=False)


async def write_and_commit(writer: Any, data: bytes) -> None:
    writer.write(data)
    await writer.commit()


async def test_a_job_archive_is_written_published_and_deleted(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    store = make_store(quotas=(JOBS,))
    archives = JobArchives(store, spool_dir=tmp_path / "spool")
    writer = archives.writer("job-1")
    for _ in range(4):
        writer.write(b"z" * 1_000)
    assert await archives.stat("job-1") is None  # nothing visible before commit
    info = await writer.commit()
    writer.discard()  # what the runner does in `finally`: harmless after commit
    assert info.size == 4_000
    assert await read_all(store, "jobs/job-1.zip") == b"z" * 4_000
    assert list((tmp_path / "spool").glob("*")) == []  # no temporary file left anywhere

    archives.remove("job-1")  # the runner's synchronous call

    async def deleted() -> bool:
        return await archives.stat("job-1") is None

    deadline = time.monotonic() + 20
    while not await deleted():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await archives.aclose()


async def test_the_bound_holds_across_writers(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store(quotas=(JOBS,))
    archives = JobArchives(store, spool_dir=tmp_path / "spool")
    first = archives.writer("first")
    first.write(b"a" * 6_000)
    second = archives.writer("second")
    with pytest.raises(StorageFull, match="JOB_STORAGE_MAX_BYTES is 10000"):
        second.write(b"b" * 5_000)  # this process's writers count against each other
    second.write(b"b" * 3_000)
    await first.commit()
    with pytest.raises(StorageFull):  # at the latest when it is published
        await write_and_commit(second, b"b" * 1_001)
    second.discard()
    assert await archives.stat("second") is None
    await archives.refresh()
    assert archives.room() == 4_000
    await archives.aclose()
