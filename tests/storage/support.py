"""Helpers of the store suite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from app.storage import ArchiveStore, Quota

StoreFactory = Callable[..., ArchiveStore]

CACHE = ("cache", "manifests")


def cache_quota(max_bytes: int | None) -> Quota:
    return Quota(namespaces=CACHE, max_bytes=max_bytes, evictable=True)


async def read_all(store: ArchiveStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in await store.read(key, start, end)])


async def commit(store: ArchiveStore, key: str, data: bytes, *, pieces: int = 3) -> None:
    writer = store.writer(key)
    step = max(1, len(data) // pieces)
    for offset in range(0, len(data), step):
        await writer.write(data[offset : offset + step])
    info = await writer.commit()
    assert info is not None, writer.gave_up
    assert info.size == len(data)
    await store.settle()


async def keys(store: ArchiveStore, namespace: str = "cache") -> set[str]:
    return {item.key for item in await store.objects(namespace)}


async def until(condition: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    """Poll `condition` until it holds; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while not await condition():
            await asyncio.sleep(0.02)
