"""The `ArchiveStore` interface and the policy both backends share: quotas, leases, eviction.

Exceptions::

    StoreError            the backend failed (disk, network, permissions)
    ├── StoreTimeout      it did not answer within the request deadline
    └── ObjectMissing     the object does not exist (never stored, deleted or evicted)
    InvalidKey (ValueError)  a key outside the namespaces, or with unsafe characters

**Deadlines.** With `request_timeout` (`ARCHIVE_STORE_REQUEST_TIMEOUT`), every call a request
waits on is bounded by it: `stat`, opening a `read` and then each chunk of it, `get_bytes`,
`put_bytes`, `delete`, `presigned_url`, `probe`, and each page of a listing. Past it the call
raises `StoreTimeout` (a `StoreError`, so every caller that survives a failing store survives
a hung one too) and `archive_store_failures_total{operation, kind="timeout"}` counts it; other
failures count as `kind="error"`. Publishing a whole archive (`put_file`, a writer's uploads)
is not bounded by it — a job archive of gigabytes takes what it takes — but by the backend's
own per-request timeouts and bounded retries.

A backend implements a handful of primitives (`_stat`, `_stream`, `_put_small`, `_open_upload`,
`_delete`, `_usage`, `_touch`); everything a caller relies on for correctness under
concurrency lives here, once:

* **Quotas.** Keys are namespaced (`cache/…`, `manifests/…`, `jobs/…`). Each namespace belongs
  to one `Quota` with its own byte bound. The archive cache (`cache/` and `manifests/`) is
  evictable, least recently used first; job archives are not (their life is the job's TTL), so
  a job that cannot fit gives up instead of evicting anything.
* **Leases.** `lease(key)` marks an object as in use: this process never evicts it, and the
  lease refreshes the object's access time every `min_idle / 3` seconds. No node evicts an
  object accessed less than `min_idle` seconds ago, so a lease protects an object on every
  node that shares the store, without any coordination between nodes. `read()` holds a lease
  for as long as its iterator is open; a writer's object does not exist until it is committed.
* **Eviction** happens only when a writer commits: the object's size is known by then, and the
  least recently used evictable objects are deleted until it fits. The plan is made before
  anything is deleted: when the object cannot fit even after every evictable object went (the
  rest are leased, recent or not evictable), nothing is deleted and the object is not stored.
  An object larger than its whole quota is given up while it is being written (or at once,
  with `size_hint`) and evicts nothing.

Bounds are on committed objects: objects being written add at most their own size each, which
itself never exceeds the quota.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio

from app.core import metrics
from app.storage._types import (
    ObjectInfo,
    ObjectMissing,
    Quota,
    StoreError,
    StoreTimeout,
    Usage,
    check_key,
)
from app.storage._writer import ObjectWriter, Upload, _LeasedStream

T = TypeVar("T")

logger = logging.getLogger("app.storage")

# Default seconds an object stays safe from eviction after any node last read or wrote it.
DEFAULT_MIN_IDLE = 300.0
# Keys whose last recorded access this process remembers before it forgets the oldest.
TOUCH_MEMORY = 10_000


@dataclass(slots=True)
class _LeaseState:
    count: int = 0
    refresher: asyncio.Task[None] | None = None


class ArchiveStore(abc.ABC):
    """Cached archives, their manifests and job archives, on one backend.

    Every method is safe to call from many tasks at once and from many processes or machines
    sharing the same backend. Keys are checked with `check_key` (InvalidKey otherwise).
    """

    def __init__(
        self,
        *,
        quotas: Sequence[Quota],
        min_idle: float = DEFAULT_MIN_IDLE,
        request_timeout: float | None = None,
    ) -> None:
        self.quotas = tuple(quotas)
        self.min_idle = min_idle
        self.request_timeout = request_timeout
        self._leases: dict[str, _LeaseState] = {}
        self._evicting = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        # Commits a writer's caller stopped waiting for (`ObjectWriter.commit(wait=...)`).
        self._publishing: set[asyncio.Task[Any]] = set()
        self._touched: dict[str, float] = {}

    # --- public interface -------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """Where objects live, for logs and readiness (no credentials)."""

    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, modification time and version, or None if it does not exist.

        Raises:
            StoreError: the backend failed.
        """
        return await self._bounded("stat", self._stat(check_key(key)))

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes `[start, end)` of the object (`end=None`: to its end), leased while read.

        The object is opened before this returns, so one read sees one version of it even if
        it is overwritten meanwhile. `start` and `end` are clamped to the object.

        Raises:
            ObjectMissing: no such object.
            StoreError: the backend failed (also while iterating).
        """
        check_key(key)
        chunks = await self._bounded("read", self._stream(key, max(0, start), end))
        self._hold(key)
        return _LeasedStream(
            chunks, release=lambda: self._release(key), next_chunk=self._next_chunk
        )

    async def _next_chunk(self, chunks: AsyncIterator[bytes]) -> bytes:
        return await self._bounded("read", anext(chunks))

    async def _bounded(self, operation: str, call: Awaitable[T]) -> T:
        """`call` under the request deadline; failures are counted by `operation`.

        Raises:
            StoreTimeout: past the deadline.
            StoreError: the backend failed.
        """
        try:
            if self.request_timeout is None:
                return await call
            async with asyncio.timeout(self.request_timeout):
                return await call
        except TimeoutError:
            metrics.STORE_FAILURES.labels(operation, "timeout").inc()
            logger.warning(
                "store: %s of %s did not answer within %s s",
                operation,
                self.description,
                self.request_timeout,
            )
            raise StoreTimeout(
                f"{self.description} did not answer within {self.request_timeout} s"
            ) from None
        except ObjectMissing:
            raise
        except StoreError:
            metrics.STORE_FAILURES.labels(operation, "error").inc()
            raise

    async def get_bytes(self, key: str) -> bytes | None:
        """The whole (small) object, or None if it does not exist.

        Raises:
            StoreError: the backend failed.
        """
        check_key(key)
        return await self._bounded("get", self._get_bytes(key))

    async def _get_bytes(self, key: str) -> bytes | None:
        try:
            stream = await self._stream(key, 0, None)
        except ObjectMissing:
            return None
        try:
            return b"".join([chunk async for chunk in stream])
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    async def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store a small object, atomically replacing any previous one (one request on S3).

        Meant for manifests and other objects of a few kilobytes; it counts toward the quota
        but does not trigger eviction (the next commit in the quota does).

        Raises:
            StoreError: the backend failed.
        """
        info = await self._bounded("put", self._put_small(check_key(key), data))
        self._note_access(key)
        return info

    def writer(self, key: str, *, size_hint: int | None = None) -> ObjectWriter:
        """A writer for `key`; `size_hint` (the final size, when known) lets a writer that
        cannot fit give up before writing anything."""
        return ObjectWriter(self, key, size_hint=size_hint)

    async def put_file(self, key: str, path: Path) -> ObjectInfo | None:
        """Publish the finished local file `path` as `key`, under the same quota rules as a
        writer's commit; None (and `path` left alone) when it does not fit.

        The file is consumed when it is stored: a local store renames it into place (when on
        the same file system), object storage uploads it and the caller deletes it.

        Raises:
            StoreError: the backend failed.
        """
        check_key(key)
        try:
            size = (await anyio.Path(path).stat()).st_size
        except OSError as exc:
            raise StoreError(f"cannot read {path.name}: {exc.strerror}") from exc
        if not await self._make_room(self.quota_of(key), size, exclude=key):
            return None
        info = await self._publish_file(key, path)
        self._note_access(key)
        return info

    async def delete(self, key: str) -> None:
        """Delete the object if it exists (idempotent).

        Raises:
            StoreError: the backend failed.
        """
        await self._bounded("delete", self._delete(check_key(key)))

    async def presigned_url(self, key: str, *, expires_in: float) -> str | None:
        """A URL that fetches the object without credentials for `expires_in` seconds, or
        None when the backend cannot make one (a local directory)."""
        check_key(key)
        return None

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[None]:
        """Keep `key` from being evicted while the block runs (see the module docstring)."""
        check_key(key)
        self._hold(key)
        try:
            yield
        finally:
            self._release(key)

    async def objects(self, namespace: str) -> list[Usage]:
        """Every committed object under `namespace` (e.g. "jobs").

        Raises:
            StoreError: the backend failed.
        """
        return await self._usage((namespace,))

    async def probe(self) -> None:
        """Ask the backend something cheap that fails when it is unusable: for readiness.

        Raises:
            StoreError: the backend does not answer, the bucket does not exist, or the
                credentials are refused.
        """
        await self._bounded("probe", self._stat("manifests/readiness-probe"))

    async def used_bytes(self, quota: Quota) -> int:
        """Bytes of committed objects under `quota`.

        Raises:
            StoreError: the backend failed.
        """
        return sum(item.size for item in await self._usage(quota.namespaces))

    def quota_of(self, key: str) -> Quota:
        for quota in self.quotas:
            if quota.covers(key):
                return quota
        return Quota(namespaces=(key.split("/", 1)[0],), max_bytes=None, evictable=False)

    def leased(self, key: str) -> bool:
        """Whether this process holds a lease on `key`."""
        return key in self._leases

    async def aclose(self) -> None:
        """Stop lease refreshers and finish pending access-time updates; the store is unusable
        afterwards."""
        for state in list(self._leases.values()):
            if state.refresher is not None:
                state.refresher.cancel()
        self._leases.clear()
        # A commit nobody waits for any more is dropped: its object is a cache copy.
        for task in list(self._publishing):
            task.cancel()
        if self._publishing:
            await asyncio.wait(list(self._publishing))
        await self.settle()

    # --- leases -----------------------------------------------------------------------------

    def _hold(self, key: str) -> None:
        state = self._leases.setdefault(key, _LeaseState())
        state.count += 1
        if state.count == 1:
            self._note_access(key)
            state.refresher = asyncio.create_task(self._refresh(key), name=f"store-lease-{key}")

    def _release(self, key: str) -> None:
        state = self._leases.get(key)
        if state is None:
            return
        state.count -= 1
        if state.count <= 0:
            del self._leases[key]
            if state.refresher is not None:
                state.refresher.cancel()

    async def _refresh(self, key: str) -> None:
        while True:
            await asyncio.sleep(max(self.min_idle / 3, 0.05))
            self._note_access(key)

    def _note_access(self, key: str) -> None:
        """Record an access of `key` now (best effort, in the background).

        Accesses closer together than `min_idle / 10` are recorded once: an access time only
        has to be accurate to well within the idle age that protects the object.
        """
        now = time.monotonic()
        window = self.min_idle / 10
        if now - self._touched.get(key, -window - 1) <= window:
            return
        if len(self._touched) > TOUCH_MEMORY:
            self._touched = {k: t for k, t in self._touched.items() if now - t <= window}
        self._touched[key] = now
        task = asyncio.get_running_loop().create_task(self._safe_touch(key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _safe_touch(self, key: str) -> None:
        try:
            # Bounded too: a hung store must not pile these up, nor hold up `settle()`.
            await self._bounded("touch", self._touch(key))
        except Exception as exc:  # an access time is a hint; losing one must not fail a read
            logger.debug("store: touching %s failed: %r", key, exc)

    def _go_on(self, task: asyncio.Task[Any]) -> None:
        """Keep `task` (a commit) running after its caller stopped waiting for it."""
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        # Its outcome is the writer's (`gave_up`); an exception is logged there, not here.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def settle(self) -> None:
        """Wait for pending access-time updates (tests and orderly shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # --- quotas and eviction ----------------------------------------------------------------

    async def _room(self, quota: Quota) -> int:
        assert quota.max_bytes is not None
        return quota.max_bytes - await self.used_bytes(quota)

    async def _make_room(self, quota: Quota, size: int, *, exclude: str) -> bool:
        """Evict so `size` more bytes fit `quota`; False (and nothing evicted) if impossible."""
        if quota.max_bytes is None:
            return True
        if size > quota.max_bytes:
            return False
        async with self._evicting:
            items = await self._usage(quota.namespaces)
            used = sum(item.size for item in items if item.key != exclude)
            if used + size <= quota.max_bytes:
                return True
            if not quota.evictable:
                return False
            now = time.time()
            candidates = sorted(
                (
                    item
                    for item in items
                    if item.key != exclude
                    and not self.leased(item.key)
                    and now - item.accessed >= self.min_idle
                ),
                key=lambda item: item.accessed,
            )
            victims: list[Usage] = []
            for item in candidates:
                if used + size <= quota.max_bytes:
                    break
                victims.append(item)
                used -= item.size
            if used + size > quota.max_bytes:
                return False
            for item in victims:
                logger.info("store: evicting %s (%d bytes)", item.key, item.size)
                await self._delete(item.key)
            return True

    # --- backend primitives -----------------------------------------------------------------

    @abc.abstractmethod
    async def _stat(self, key: str) -> ObjectInfo | None: ...

    @abc.abstractmethod
    async def _stream(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        """Open the object and return an iterator of `[start, end)`. Raises: ObjectMissing."""

    @abc.abstractmethod
    async def _put_small(self, key: str, data: bytes) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _open_upload(self, key: str) -> Upload: ...

    @abc.abstractmethod
    async def _publish_file(self, key: str, path: Path) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def _usage(self, namespaces: tuple[str, ...]) -> list[Usage]:
        """Committed objects under `namespaces`, with their last access time."""

    @abc.abstractmethod
    async def _touch(self, key: str) -> None:
        """Record that `key` was accessed now."""
