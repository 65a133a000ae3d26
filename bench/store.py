"""Throughput of the archive store's writer and reader, and the cost of one manifest rewrite.

    .venv/bin/python -m bench.store [--megabytes 100] [--chunk-kib 64]

Writes one object through `ArchiveStore.writer` in `--chunk-kib` chunks, reads it back with
`read`, and rewrites a small object 200 times with `put_bytes`, on a local directory and on
moto's S3 server on loopback (moto is a Python emulator: its figures bound the client's
overhead from below, they are not those of a real S3).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from app.storage import ArchiveStore, LocalArchiveStore
from app.storage._s3 import S3ArchiveStore
from testkit.s3 import S3Server

MANIFEST_REWRITES = 200


async def measure(store: ArchiveStore, label: str, *, size: int, chunk: int) -> None:
    data = os.urandom(chunk)
    started = time.perf_counter()
    writer = store.writer("cache/bench.zip")
    for _ in range(size // chunk):
        await writer.write(data)
    info = await writer.commit()
    assert info is not None, writer.gave_up
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    read = 0
    async for part in await store.read("cache/bench.zip"):
        read += len(part)
    took = time.perf_counter() - started
    started = time.perf_counter()
    for n in range(MANIFEST_REWRITES):
        await store.put_bytes("manifests/bench.json", b'{"entries": %d}' % n)
    per_put = (time.perf_counter() - started) / MANIFEST_REWRITES
    await store.aclose()
    print(
        f"{label}: {info.size} B written at {info.size / wrote / 1e6:.0f} MB/s, "
        f"read at {read / took / 1e6:.0f} MB/s; put_bytes {per_put * 1000:.2f} ms each"
    )


async def run(size: int, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalArchiveStore(Path(tmp) / "archives", quotas=())
        await measure(local, "local directory", size=size, chunk=chunk)
    with S3Server() as server:
        s3 = S3ArchiveStore(
            bucket=server.bucket(),
            prefix="bench",
            endpoint=server.endpoint,
            quotas=(),
            config=server.credentials,
        )
        await measure(s3, "S3 (moto on loopback)", size=size, chunk=chunk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--chunk-kib", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(run(args.megabytes * 1024 * 1024, args.chunk_kib * 1024))


if __name__ == "__main__":
    main()
