"""Fetching an archive's images ahead of its writer, into spooled temporary files.

`Prefetcher` downloads the images of a `BatchPlan` at the indices it is given, in that order:
at most `concurrency` at once (this request's share of `DOWNLOAD_CONCURRENCY`), each holding a
slot of the process-wide `FairLimiter`, and at most `window` fetched but not yet released by
the writer, so memory and disk stay bounded however far the downloads run ahead. Each image
ends as a future: its spool with size and CRC-32, or the `UpstreamError` that stopped it.

When the client has a `BytePool`, this archive holds one share of it: an image whose body
gets a pooled buffer (granted in archive order, see `app.upstream.bytepool`) ends as that
buffer instead of a spool, read the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Protocol

from app.core.files import PRIVATE_DIR
from app.services.fairness import FairLimiter
from app.services.plan import BatchPlan, PlannedImage
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError


class Spool(Protocol):
    """What the writer reads an image from: a spooled file, or a pooled buffer."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def read(self, n: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class Fetched:
    """One image in hand: its bytes in a spool (the reader closes it), size and CRC-32."""

    spool: Spool
    size: int
    crc32: int


class Prefetcher:
    """The downloads of one archive; `cancel()` stops them and releases every spool."""

    def __init__(
        self,
        plan: BatchPlan,
        *,
        client: AutoenhanceClient,
        api_key: str | None,
        limiter: FairLimiter,
        concurrency: int,
        window: int,
        spool_dir: Path,
        spool_memory_bytes: int,
    ) -> None:
        self._plan = plan
        self._client = client
        self._api_key = api_key
        self._limiter = limiter
        self._concurrency = asyncio.Semaphore(concurrency)
        self._window = asyncio.Semaphore(window)
        self._spool_dir = spool_dir
        self._spool_memory = spool_memory_bytes
        self.results: dict[int, asyncio.Future[Fetched]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._producer: asyncio.Task[None] | None = None
        pool = client.byte_pool
        self._share = pool.share() if pool is not None else None

    def start(self, indices: list[int]) -> None:
        """Begin fetching the deliverable images at `indices`, in that order."""
        loop = asyncio.get_running_loop()
        self.results = {index: loop.create_future() for index in indices}
        self._spool_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        self._producer = asyncio.create_task(self._produce(indices), name="batch-producer")

    def release(self) -> None:
        """An image was written or skipped: the window admits the next fetch."""
        self._window.release()

    async def _produce(self, indices: list[int]) -> None:
        lane = object()
        deliverable = self._plan.deliverable
        for index in indices:
            await self._window.acquire()
            await self._concurrency.acquire()
            if self._share is not None:
                self._share.expect(index)
            task = asyncio.create_task(
                self._fetch(index, deliverable[index], lane), name=f"batch-fetch-{index}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, index: int, planned: PlannedImage, lane: object) -> None:
        future = self.results[index]
        file: IO[bytes] = SpooledTemporaryFile(
            max_size=self._spool_memory, dir=str(self._spool_dir)
        )
        pool = self._client.byte_pool
        buffers = None
        if pool is not None and self._share is not None:
            buffers = pool.image_buffer(self._share, index)
        try:
            async with self._limiter.slot(lane):
                result = await self._client.download_enhanced(
                    planned.image.image_id,
                    file,
                    options=self._plan.options,
                    api_key=self._api_key,
                    buffers=buffers,
                )
        except (UpstreamError, OSError) as exc:  # OSError: the spool's disk (full, say)
            file.close()
            if buffers is not None:
                buffers.close()
            if not future.done():
                future.set_exception(exc)
        except BaseException:
            file.close()
            if buffers is not None:
                buffers.close()
            if not future.done():
                future.cancel()
            raise
        else:
            spool: Spool = file
            if result.pooled is not None:
                file.close()
                spool = result.pooled
            if future.done():  # the archive was closed meanwhile
                spool.close()
            else:
                future.set_result(Fetched(spool, result.size, result.crc32))
        finally:
            self._concurrency.release()
            if buffers is not None:
                buffers.settle()

    def cancel(self) -> list[asyncio.Task[None]]:
        """Cancel every download and close the spools in hand; returns the tasks to await.

        A download still running sees its future cancelled and closes its own spool.
        """
        pending: list[asyncio.Task[None]] = list(self._tasks)
        if self._producer is not None:
            pending.append(self._producer)
        for task in pending:
            task.cancel()
        for future in self.results.values():
            if not future.done():
                future.cancel()
            elif not future.cancelled() and future.exception() is None:
                future.result().spool.close()
        return pending
