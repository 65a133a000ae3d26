"""Fetching an archive's images ahead of its writer, into spooled temporary files.

`Prefetcher` makes the entries of a `BatchPlan` at the indices it is given, in that order:
it downloads each image once for all its entries (its variants) — at most `concurrency` at
once (this request's share of `DOWNLOAD_CONCURRENCY`), each holding a slot of the
process-wide `FairLimiter` — and at most `window` entries are made but not yet released by
the writer, so memory and disk stay bounded however far the downloads run ahead. Each entry
ends as a future: its spool with size and CRC-32, or the `UpstreamError` (or
`EntrySkipped`) that stopped it.

With a `Renderer`, an entry of a variant is rendered from the fetched image after its
download slot is given back (in the decode pool, see `app.archive.rendering`), into a spool
of its own; an original variant shares the fetched spool; and every entry gets the pixels and
SHA-256 that `manifest.json` lists. So a rendered entry, like a fetched one, is whole, with
its size and CRC-32, before the writer sends its local header.

When the client has a `BytePool`, this archive holds one share of it: an image whose body
gets a pooled buffer (granted in archive order, see `app.upstream.bytepool`) ends as that
buffer instead of a spool, read the same way.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Protocol

from app.archive.fairness import FairLimiter
from app.archive.plan import BatchPlan
from app.archive.rendering import EntrySkipped, Renderer
from app.core.files import PRIVATE_DIR
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError


class Spool(Protocol):
    """What the writer reads an image from: a spooled file, or a pooled buffer."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def read(self, n: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class Fetched:
    """One entry in hand: its bytes in a spool (the reader closes it), size and CRC-32, and
    with a renderer its SHA-256 and pixels."""

    spool: Spool
    size: int
    crc32: int
    sha256: str | None = None
    width: int | None = None
    height: int | None = None


class _Shared:
    """A spool read by several entries in turn (an image's original variants): closed when
    the last of them closes it."""

    def __init__(self, spool: Spool, users: int) -> None:
        self._spool = spool
        self._users = users

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._spool.seek(offset, whence)

    def read(self, n: int = -1, /) -> bytes:
        return self._spool.read(n)

    def close(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._spool.close()


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
        renderer: Renderer | None = None,
    ) -> None:
        self._plan = plan
        self._options = plan.fetch_options
        self._renderer = renderer
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
        """Begin making the entries at `indices`, in that order."""
        loop = asyncio.get_running_loop()
        self.results = {index: loop.create_future() for index in indices}
        self._spool_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        self._producer = asyncio.create_task(self._produce(indices), name="batch-producer")

    def release(self) -> None:
        """An entry was written or skipped: the window admits the next."""
        self._window.release()

    def _groups(self, indices: list[int]) -> Iterator[list[int]]:
        """`indices` in runs of entries made from the same image."""
        entries = self._plan.entries
        group: list[int] = []
        for index in indices:
            if group and entries[group[0]].source != entries[index].source:
                yield group
                group = []
            group.append(index)
        if group:
            yield group

    async def _produce(self, indices: list[int]) -> None:
        lane = object()
        for group in self._groups(indices):
            for _ in group:
                await self._window.acquire()
            await self._concurrency.acquire()
            if self._share is not None:
                self._share.expect(group[0])
            task = asyncio.create_task(self._fetch(group, lane), name=f"batch-fetch-{group[0]}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, group: list[int], lane: object) -> None:
        futures = [self.results[index] for index in group]
        index = group[0]
        image_id = self._plan.entries[index].image.image_id
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
                    image_id, file, options=self._options, api_key=self._api_key, buffers=buffers
                )
        except (UpstreamError, OSError) as exc:  # OSError: the spool's disk (full, say)
            file.close()
            if buffers is not None:
                buffers.close()
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            file.close()
            if buffers is not None:
                buffers.close()
            for future in futures:
                if not future.done():
                    future.cancel()
            raise
        finally:
            self._concurrency.release()
            if buffers is not None:
                buffers.settle()
        spool: Spool = file
        if result.pooled is not None:
            file.close()
            spool = result.pooled
        fetched = Fetched(spool, result.size, result.crc32)
        if self._renderer is None:
            if futures[0].done():  # the archive was closed meanwhile
                spool.close()
            else:
                futures[0].set_result(fetched)
            return
        await self._made(group, fetched, self._renderer, lane)

    async def _made(
        self, group: list[int], fetched: Fetched, renderer: Renderer, lane: object
    ) -> None:
        """The entries of `group` made from the one `fetched` image, in turn.

        Raises:
            asyncio.CancelledError: the archive was closed (every entry still open is cancelled).
        """
        entries = self._plan.entries
        passed = [i for i in group if (v := entries[i].variant) is None or v.original]
        shared = _Shared(fetched.spool, len(passed)) if passed else None
        handed = 0
        try:
            # The image is read into memory only with a slot: those waiting stay spooled.
            async with renderer.slot(lane):
                fetched.spool.seek(0)
                data = fetched.spool.read()
                if shared is None:
                    fetched.spool.close()
                for index in group:
                    future = self.results[index]
                    if future.done():
                        continue
                    try:
                        output = await renderer.output(data, entries[index].variant)
                    except EntrySkipped as exc:
                        future.set_exception(exc)
                        continue
                    if output.content is None:
                        assert shared is not None
                        spool: Spool = shared
                        size, crc32 = fetched.size, fetched.crc32
                        handed += 1
                    else:
                        spool = self._spooled(output.content)
                        size, crc32 = len(output.content), zlib.crc32(output.content)
                    made = Fetched(
                        spool,
                        size,
                        crc32,
                        sha256=output.sha256,
                        width=output.width,
                        height=output.height,
                    )
                    if future.done():
                        made.spool.close()
                    else:
                        future.set_result(made)
        except OSError as exc:  # the spool's disk
            for index in group:
                if not self.results[index].done():
                    self.results[index].set_exception(exc)
        except BaseException:
            for index in group:
                self.results[index].cancel()
            raise
        finally:
            if shared is not None:
                for _ in range(len(passed) - handed):
                    shared.close()

    def _spooled(self, content: bytes) -> Spool:
        file: IO[bytes] = SpooledTemporaryFile(
            max_size=self._spool_memory, dir=str(self._spool_dir)
        )
        try:
            file.write(content)
        except BaseException:
            file.close()
            raise
        return file

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
