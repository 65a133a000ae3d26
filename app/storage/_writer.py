"""Writing and reading one object: `ObjectWriter` (quota-checked, invisible until commit),
the backends' `Upload`, and the leased read stream."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.storage._types import ObjectInfo, StoreError, check_key

if TYPE_CHECKING:
    from app.storage._base import ArchiveStore

logger = logging.getLogger("app.storage")

# Re-measure a quota's usage after a writer has written this much since the last measurement:
# other writers grow it too.
RESCAN_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class _Room:
    """What a writer knows of the room left in its quota."""

    left: int
    since_scan: int = 0


class ObjectWriter:
    """Writes one object; nothing is visible under its key until `commit()` succeeds.

    A writer gives up quietly — `write()` and `commit()` return normally, `gave_up` says why,
    the partial data is dropped — when the object cannot fit its quota or the backend fails.
    Callers that must not lose the object (job archives) check `gave_up`.
    """

    def __init__(self, store: ArchiveStore, key: str, *, size_hint: int | None) -> None:
        self.key = check_key(key)
        self.size = 0
        self.gave_up: str | None = None
        self.full = False  # gave up because the quota could not hold the object
        self._store = store
        self._quota = store.quota_of(key)
        self._upload: Upload | None = None
        self._room: _Room | None = None
        self._done = False
        self._publishing = False  # a commit is under way: abort() must not cut it
        if size_hint is not None and not self._fits_alone(size_hint):
            self._give_up_full(size_hint)

    def _fits_alone(self, size: int) -> bool:
        return self._quota.max_bytes is None or size <= self._quota.max_bytes

    def _give_up_full(self, size: int) -> None:
        self.full = True
        self._give_up(
            f"{self.key} does not fit: {size} bytes, the quota of "
            f"{'/'.join(self._quota.namespaces)} is {self._quota.max_bytes} bytes"
        )

    def _give_up(self, reason: str) -> None:
        if self.gave_up is None:
            self.gave_up = reason
            logger.info("store: not storing %s: %s", self.key, reason)

    @property
    def active(self) -> bool:
        """Still collecting bytes (not given up, committed or aborted)."""
        return self.gave_up is None and not self._done

    async def write(self, chunk: bytes) -> None:
        """Append `chunk` (kept by reference until written). A no-op once given up."""
        if not self.active or not chunk:
            return
        self.size += len(chunk)
        if not self._fits_alone(self.size) or not await self._charge(len(chunk)):
            self._give_up_full(self.size)
            await self._drop()
            return
        try:
            # Bounded: a reader's download waits on these writes (a cache filled as it streams).
            if self._upload is None:
                self._upload = await self._store._bounded(
                    "write", self._store._open_upload(self.key)
                )
            await self._store._bounded("write", self._upload.write(chunk))
        except StoreError as exc:
            self._give_up(f"storage failed: {exc}")
            await self._drop()
        except BaseException:  # cancelled: the partial data must not outlive the writer
            self._done = True
            await self._drop()
            raise

    async def _charge(self, n: int) -> bool:
        """Whether `n` more bytes fit a non-evictable quota (re-measured now and then)."""
        quota = self._quota
        if quota.evictable or quota.max_bytes is None:
            return True
        room = self._room
        if room is None:
            room = self._room = _Room(left=await self._store._room(quota))
        room.left -= n
        room.since_scan += n
        if room.left < 0 or room.since_scan >= RESCAN_BYTES:
            # Usage counts committed objects only: this writer's own bytes are charged here.
            room.left = await self._store._room(quota) - self.size
            room.since_scan = 0
        return room.left >= 0

    async def commit(self, *, wait: float | None = None) -> ObjectInfo | None:
        """Publish the object; None when it was not stored (see `gave_up`).

        Makes room first (evictable quotas evict least recently used objects; see the module
        docstring); when there is no room the object is dropped and nothing is evicted.

        With `wait`, the caller waits at most that many seconds: a commit still under way
        then goes on in its own task (the store drops it when it closes) and None is
        returned. A reader's download waits so on the cache copy it fills, so a store that
        stalls on publishing costs the reader at most `wait`.
        """
        if wait is None:
            return await self._commit()
        task = asyncio.get_running_loop().create_task(self._commit(), name=f"commit-{self.key}")
        done, _ = await asyncio.wait({task}, timeout=wait)
        if task in done:
            return task.result()
        logger.warning("store: publishing %s goes on after %s s, in the background", self.key, wait)
        self._store._go_on(task)
        return None

    async def _commit(self) -> ObjectInfo | None:
        if not self.active:
            await self._drop()
            return None
        self._done = True
        self._publishing = True
        try:
            if not await self._store._make_room(self._quota, self.size, exclude=self.key):
                self.full = True
                self._give_up(f"no room for {self.size} bytes under the quota")
                await self._drop()
                return None
            if self._upload is None:
                self._upload = await self._store._open_upload(self.key)
            info = await self._upload.complete()
            self._upload = None
        except StoreError as exc:
            self._give_up(f"storage failed: {exc}")
            await self._drop()
            return None
        except BaseException:
            await self._drop()
            raise
        finally:
            self._publishing = False
        self._store._note_access(self.key)
        return info

    async def abort(self) -> None:
        """Drop everything written. Idempotent; harmless after `commit()`, and while a commit
        goes on in the background (it is the store's to end)."""
        self._done = True
        if not self._publishing:
            await self._drop()

    async def _drop(self) -> None:
        upload, self._upload = self._upload, None
        if upload is not None:
            with contextlib.suppress(Exception):
                await upload.abort()


class _LeasedStream:
    """Chunks of one read; closing it (or reaching the end) closes the source and ends the
    lease, even when it was never iterated."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        release: Callable[[], None],
        next_chunk: Callable[[AsyncIterator[bytes]], Awaitable[bytes]] | None = None,
    ) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release
        self._next = next_chunk  # reads one chunk (under the store's deadline)

    def __aiter__(self) -> _LeasedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._release is None:
            raise StopAsyncIteration
        try:
            if self._next is not None:
                return await self._next(self._chunks)
            return await self._chunks.__anext__()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        try:
            close = getattr(self._chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        finally:
            release()


class Upload(abc.ABC):
    """A backend's object being written: invisible until `complete()`."""

    @abc.abstractmethod
    async def write(self, chunk: bytes) -> None:
        """Raises: StoreError."""

    @abc.abstractmethod
    async def complete(self) -> ObjectInfo:
        """Publish atomically. Raises: StoreError."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Drop the partial data. Never raises."""
