"""The `ArchiveStore` contract, run against both backends: a local directory and a real
S3-protocol server (moto on loopback, a fresh bucket per test)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from app.storage import (
    ArchiveStore,
    InvalidKey,
    LocalArchiveStore,
    ObjectInfo,
    ObjectMissing,
    Quota,
)
from app.storage._writer import Upload
from tests.storage.support import StoreFactory, cache_quota, commit, keys, read_all, until


async def test_nothing_is_visible_until_commit_and_ranges_read_back(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    data = os.urandom(700_000)
    writer = store.writer("cache/a.zip")
    await writer.write(data[:300_000])
    assert await store.stat("cache/a.zip") is None
    assert await keys(store) == set()
    await writer.write(data[300_000:])
    info = await writer.commit()
    assert info is not None
    assert info.size == len(data)
    assert info.etag
    assert info.last_modified.tzinfo is not None
    stat = await store.stat("cache/a.zip")
    assert stat is not None
    assert (stat.size, stat.etag) == (info.size, info.etag)

    assert await read_all(store, "cache/a.zip") == data
    assert await read_all(store, "cache/a.zip", 1000, 2000) == data[1000:2000]
    assert await read_all(store, "cache/a.zip", 699_990) == data[699_990:]
    assert await read_all(store, "cache/a.zip", 5, 5) == b""
    assert await read_all(store, "cache/a.zip", len(data)) == b""
    with pytest.raises(ObjectMissing):
        await store.read("cache/missing.zip")
    assert await store.stat("cache/missing.zip") is None


async def test_abort_leaves_nothing(make_store: StoreFactory, backend: str) -> None:
    store = make_store()
    writer = store.writer("cache/a.zip")
    await writer.write(os.urandom(6 * 1024 * 1024))  # more than one multipart part
    await writer.abort()
    await writer.commit()  # after abort: a no-op, nothing published
    assert await store.stat("cache/a.zip") is None
    assert await keys(store) == set()
    location = make_store.location  # type: ignore[attr-defined]
    if backend == "local":
        assert os.listdir(location["root"] / ".tmp") == []
    else:
        assert "<Upload>" not in location["server"].multipart_uploads(location["bucket"])


async def test_no_reader_ever_sees_half_an_object(make_store: StoreFactory) -> None:
    store = make_store()
    versions = [bytes([65 + n]) * (200_000 + n * 10_000) for n in range(4)]
    await commit(store, "cache/a.zip", versions[0])
    seen: list[bytes] = []

    async def overwrite() -> None:
        for round_ in range(12):
            await commit(store, "cache/a.zip", versions[round_ % len(versions)], pieces=5)

    async def read_repeatedly(done: asyncio.Event) -> None:
        while not done.is_set():
            seen.append(await read_all(store, "cache/a.zip"))

    done = asyncio.Event()
    readers = [asyncio.create_task(read_repeatedly(done)) for _ in range(3)]
    await overwrite()
    done.set()
    await asyncio.gather(*readers)
    assert seen
    assert all(body in versions for body in seen)


async def test_small_objects_overwrite_atomically(make_store: StoreFactory) -> None:
    store = make_store()
    assert await store.get_bytes("manifests/a.json") is None
    first = await store.put_bytes("manifests/a.json", b'{"entries": 1}')
    second = await store.put_bytes("manifests/a.json", b'{"entries": 2, "more": true}')
    assert await store.get_bytes("manifests/a.json") == b'{"entries": 2, "more": true}'
    assert first.etag != second.etag
    stat = await store.stat("manifests/a.json")
    assert stat is not None
    assert stat.size == len(b'{"entries": 2, "more": true}')
    await store.delete("manifests/a.json")
    await store.delete("manifests/a.json")  # idempotent
    assert await store.get_bytes("manifests/a.json") is None


async def test_least_recently_used_is_evicted_first(make_store: StoreFactory) -> None:
    store = make_store(quotas=(cache_quota(300),))
    for name in "abc":
        await commit(store, f"cache/{name}.zip", name.encode() * 100)
    assert await read_all(store, "cache/a.zip") == b"a" * 100  # a is now the most recent
    await store.settle()
    await commit(store, "cache/d.zip", b"d" * 100)
    assert await keys(store) == {"cache/a.zip", "cache/c.zip", "cache/d.zip"}
    await commit(store, "cache/e.zip", b"e" * 150)  # needs two victims: c, then a
    assert await keys(store) == {"cache/d.zip", "cache/e.zip"}


async def test_eviction_spares_leased_and_served_objects(make_store: StoreFactory) -> None:
    store = make_store(quotas=(cache_quota(300),))
    for name in "abc":
        await commit(store, f"cache/{name}.zip", name.encode() * 100)
    reading = await store.read("cache/a.zip", 0, 100)  # served: open, not yet consumed
    async with store.lease("cache/b.zip"):
        await commit(store, "cache/d.zip", b"d" * 100)  # a and b are older, but in use
        assert await keys(store) == {"cache/a.zip", "cache/b.zip", "cache/d.zip"}
        async with store.lease("cache/d.zip"):
            writer = store.writer("cache/e.zip")
            await writer.write(b"e" * 100)
            # Every other object is in use: no room, and nothing is evicted.
            assert await writer.commit() is None
            assert writer.full
            assert await keys(store) == {"cache/a.zip", "cache/b.zip", "cache/d.zip"}
    assert b"".join([chunk async for chunk in reading]) == b"a" * 100
    for name in "fgh":  # the read and the leases ended: every old object may go now
        await commit(store, f"cache/{name}.zip", name.encode() * 100)
    assert await keys(store) == {"cache/f.zip", "cache/g.zip", "cache/h.zip"}


async def test_a_lease_on_one_node_protects_from_eviction_by_another(
    make_store: StoreFactory,
) -> None:
    idle = 1.5
    node_a = make_store(quotas=(cache_quota(300),), min_idle=idle)
    node_b = make_store(quotas=(cache_quota(300),), min_idle=idle)
    for name in "abc":
        await commit(node_a, f"cache/{name}.zip", name.encode() * 100)
    written = time.time()

    async def idle_enough() -> bool:
        return time.time() - written > idle

    await until(idle_enough)
    async with node_a.lease("cache/a.zip"):  # a is the oldest; node B knows nothing of this
        await node_a.settle()
        await commit(node_b, "cache/d.zip", b"d" * 100)
        assert await keys(node_b) == {"cache/a.zip", "cache/c.zip", "cache/d.zip"}


async def test_an_object_bigger_than_the_quota_is_not_stored_and_evicts_nothing(
    make_store: StoreFactory,
) -> None:
    store = make_store(quotas=(cache_quota(300),))
    await commit(store, "cache/a.zip", b"a" * 100)
    await commit(store, "cache/b.zip", b"b" * 100)
    writer = store.writer("cache/big.zip")
    for _ in range(4):
        await writer.write(b"x" * 100)
    assert writer.full
    assert writer.gave_up
    assert not writer.active
    assert await writer.commit() is None
    hinted = store.writer("cache/hinted.zip", size_hint=301)
    assert hinted.full
    await hinted.write(b"x")
    assert await hinted.commit() is None
    assert await keys(store) == {"cache/a.zip", "cache/b.zip"}
    assert await read_all(store, "cache/a.zip") == b"a" * 100


async def test_a_quota_without_eviction_gives_up_while_writing(make_store: StoreFactory) -> None:
    jobs = Quota(namespaces=("jobs",), max_bytes=250, evictable=False)
    store = make_store(quotas=(jobs,))
    await commit(store, "jobs/a.zip", b"a" * 200)
    writer = store.writer("jobs/b.zip")
    await writer.write(b"b" * 40)
    assert writer.active
    await writer.write(b"b" * 40)
    assert writer.full
    assert not writer.active
    assert await writer.commit() is None
    assert await keys(store, "jobs") == {"jobs/a.zip"}


async def test_concurrent_writers(make_store: StoreFactory) -> None:
    store = make_store()
    bodies = {f"cache/{n}.zip": os.urandom(50_000 + n) for n in range(8)}

    async def write(key: str, data: bytes) -> None:
        writer = store.writer(key)
        for offset in range(0, len(data), 7_000):
            await writer.write(data[offset : offset + 7_000])
            await asyncio.sleep(0)
        assert await writer.commit() is not None

    await asyncio.gather(*(write(key, data) for key, data in bodies.items()))
    for key, data in bodies.items():
        assert await read_all(store, key) == data
    same = [os.urandom(40_000) for _ in range(4)]
    await asyncio.gather(*(write("cache/same.zip", data) for data in same))
    assert await read_all(store, "cache/same.zip") in same


async def test_presigned_url(make_store: StoreFactory, backend: str) -> None:
    store = make_store()
    data = os.urandom(10_000)
    await commit(store, "jobs/a.zip", data)
    url = await store.presigned_url("jobs/a.zip", expires_in=60)
    if backend == "local":
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        whole = await client.get(url)
        part = await client.get(url, headers={"Range": "bytes=100-199"})
    assert whole.content == data
    assert part.status_code == 206
    assert part.content == data[100:200]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "cache",
        "cache/",
        "other/a.zip",
        "cache/../jobs/a",
        "cache/.hidden",
        "/cache/a",
        "cache//a",
        "cache/a b",
        "cache/a/../../x",
    ],
)
async def test_invalid_keys_are_refused(make_store: StoreFactory, key: str) -> None:
    store = make_store()
    with pytest.raises(InvalidKey):
        await store.stat(key)
    with pytest.raises(InvalidKey):
        store.writer(key)


async def test_local_files_are_private(tmp_path: Path) -> None:
    store = LocalArchiveStore(tmp_path / "archives", quotas=())
    await commit(store, "cache/a.zip", b"x" * 10)
    await store.put_bytes("manifests/a.json", b"{}")
    for path in [tmp_path / "archives", tmp_path / "archives" / "cache"]:
        assert path.stat().st_mode & 0o777 == 0o700
    for path in [tmp_path / "archives/cache/a.zip", tmp_path / "archives/manifests/a.json"]:
        assert path.stat().st_mode & 0o777 == 0o600
    await store.aclose()


async def test_under_eviction_pressure_no_open_read_or_writer_is_harmed(
    make_store: StoreFactory,
) -> None:
    """A store that holds five objects, round after round: reads opened before an eviction
    return their whole object, and a writer in progress meanwhile commits its own bytes."""
    size = 20_000
    store = make_store(quotas=(cache_quota(5 * size),))
    body = {f"cache/{n}.zip": bytes([n]) * size for n in range(20)}
    names = list(body)
    for key in names[:3]:
        await commit(store, key, body[key])
    for n in range(3, len(names)):
        served = [(key, await store.read(key)) for key in names[n - 3 : n]]  # in flight
        await store.settle()
        slow_key = f"cache/slow-{n}.zip"
        slow = store.writer(slow_key)
        await slow.write(b"s" * (size // 2))  # a partial object of another stream
        await commit(store, names[n], body[names[n]])  # needs room: evicts what is idle
        for key, stream in served:
            assert b"".join([chunk async for chunk in stream]) == body[key]
        await slow.write(b"s" * (size // 2))
        assert await slow.commit() is not None, slow.gave_up
        await store.settle()
        assert await read_all(store, slow_key) == b"s" * size
        # Access times are recorded in the background, in worker threads that may run out of
        # order: the next round's reads must be recorded after this one, or the least recently
        # used object is not the one this test expects to go.
        await store.settle()
        assert await store.used_bytes(cache_quota(None)) <= 5 * size


async def test_a_cancelled_writer_leaves_nothing(make_store: StoreFactory, backend: str) -> None:
    store = make_store()
    written = 0

    async def write_until_cancelled() -> None:
        nonlocal written
        writer = store.writer("cache/a.zip")
        while True:
            await writer.write(os.urandom(1024 * 1024))
            written += 1

    task = asyncio.create_task(write_until_cancelled())

    async def past_one_part() -> bool:
        return written >= 7  # more than one multipart part is in flight or uploaded

    await until(past_one_part)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.stat("cache/a.zip") is None
    location = make_store.location  # type: ignore[attr-defined]
    if backend == "local":
        assert os.listdir(location["root"] / ".tmp") == []
    else:
        assert "<Upload>" not in location["server"].multipart_uploads(location["bucket"])


def _stall_publishing(store: ArchiveStore) -> asyncio.Event:
    """Make `store` hold every upload's completion until the returned event is set (a store
    that answers lookups but stalls on publishing)."""
    gate = asyncio.Event()
    real_open = store._open_upload

    async def gated_open(key: str) -> Upload:
        upload = await real_open(key)
        real_complete = upload.complete

        async def complete() -> ObjectInfo:
            await gate.wait()
            return await real_complete()

        upload.complete = complete  # type: ignore[method-assign]
        return upload

    store._open_upload = gated_open  # type: ignore[method-assign]
    return gate


async def test_a_commit_waited_for_briefly_goes_on_and_an_abort_leaves_it(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    gate = _stall_publishing(store)
    data = os.urandom(300_000)
    writer = store.writer("cache/a.zip")
    await writer.write(data)
    assert await writer.commit(wait=0.05) is None  # the caller goes on without it
    await writer.abort()  # what a download's clean-up does next
    assert await store.stat("cache/a.zip") is None
    gate.set()

    async def published() -> bool:
        return await store.stat("cache/a.zip") is not None

    await until(published)
    assert await read_all(store, "cache/a.zip") == data


async def test_closing_the_store_drops_a_commit_nobody_waits_for(
    make_store: StoreFactory, backend: str
) -> None:
    store = make_store()
    _stall_publishing(store)
    writer = store.writer("cache/a.zip")
    await writer.write(os.urandom(300_000))
    assert await writer.commit(wait=0.05) is None
    await store.aclose()
    assert writer.gave_up is None or "storage failed" in writer.gave_up
    fresh = make_store()
    assert await fresh.stat("cache/a.zip") is None
    if backend == "local":
        location = make_store.location  # type: ignore[attr-defined]
        assert os.listdir(location["root"] / ".tmp") == []
