"""The `ArchiveStore` interface and the policy both backends share: quotas, leases, eviction.

Exceptions::

    StoreError            the backend failed (disk, network, permissions)
    └── ObjectMissing     the object does not exist (never stored, deleted or evicted)
    InvalidKey (ValueError)  a key outside the namespaces, or with unsafe characters

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
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

logger = logging.getLogger("app.storage")

NAMESPACES = ("cache", "manifests", "jobs")
# Every segment starts with a letter or digit: no "..", no hidden names, no empty segments.
_KEY = re.compile(r"(?:cache|manifests|jobs)(?:/[A-Za-z0-9][A-Za-z0-9._=-]{0,199}){1,4}")

# Re-measure a quota's usage after a writer has written this much since the last measurement:
# other writers grow it too.
RESCAN_BYTES = 64 * 1024 * 1024
# Default seconds an object stays safe from eviction after any node last read or wrote it.
DEFAULT_MIN_IDLE = 300.0
# Keys whose last recorded access this process remembers before it forgets the oldest.
TOUCH_MEMORY = 10_000


class StoreError(Exception):
    """The storage backend failed."""


class ObjectMissing(StoreError):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object {key!r}")
        self.key = key


class InvalidKey(ValueError):
    """The key is outside the store's namespaces or has unsafe characters."""


def check_key(key: str) -> str:
    """Return `key` if it is a valid store key.

    Raises:
        InvalidKey: it is not (`cache/<name>`, `manifests/<name>`, `jobs/<name>`; names of
            letters, digits, `.`, `_`, `=`, `-`, not starting with a dot, up to 4 levels).
    """
    if not _KEY.fullmatch(key):
        raise InvalidKey(f"invalid store key {key!r}")
    return key


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    """A stored object: `etag` is an opaque version token (unquoted) that changes with content."""

    key: str
    size: int
    last_modified: datetime  # aware, UTC
    etag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    """A byte bound over the keys under `namespaces`. `max_bytes=None` means unbounded."""

    namespaces: tuple[str, ...]
    max_bytes: int | None
    evictable: bool

    def covers(self, key: str) -> bool:
        return key.split("/", 1)[0] in self.namespaces


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """One object as eviction sees it: `accessed` is the last read or write, epoch seconds."""

    key: str
    size: int
    accessed: float


@dataclass(slots=True)
class _LeaseState:
    count: int = 0
    refresher: asyncio.Task[None] | None = None


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
            if self._upload is None:
                self._upload = await self._store._open_upload(self.key)
            await self._upload.write(chunk)
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

    async def commit(self) -> ObjectInfo | None:
        """Publish the object; None when it was not stored (see `gave_up`).

        Makes room first (evictable quotas evict least recently used objects; see the module
        docstring); when there is no room the object is dropped and nothing is evicted.
        """
        if not self.active:
            await self._drop()
            return None
        self._done = True
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
        self._store._note_access(self.key)
        return info

    async def abort(self) -> None:
        """Drop everything written. Idempotent; harmless after `commit()`."""
        self._done = True
        await self._drop()

    async def _drop(self) -> None:
        upload, self._upload = self._upload, None
        if upload is not None:
            with contextlib.suppress(Exception):
                await upload.abort()


class _LeasedStream:
    """Chunks of one read; closing it (or reaching the end) closes the source and ends the
    lease, even when it was never iterated."""

    def __init__(self, chunks: AsyncIterator[bytes], *, release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> _LeasedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._release is None:
            raise StopAsyncIteration
        try:
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


class ArchiveStore(abc.ABC):
    """Cached archives, their manifests and job archives, on one backend.

    Every method is safe to call from many tasks at once and from many processes or machines
    sharing the same backend. Keys are checked with `check_key` (InvalidKey otherwise).
    """

    def __init__(self, *, quotas: Sequence[Quota], min_idle: float = DEFAULT_MIN_IDLE) -> None:
        self.quotas = tuple(quotas)
        self.min_idle = min_idle
        self._leases: dict[str, _LeaseState] = {}
        self._evicting = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
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
        return await self._stat(check_key(key))

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes `[start, end)` of the object (`end=None`: to its end), leased while read.

        The object is opened before this returns, so one read sees one version of it even if
        it is overwritten meanwhile. `start` and `end` are clamped to the object.

        Raises:
            ObjectMissing: no such object.
            StoreError: the backend failed (also while iterating).
        """
        check_key(key)
        chunks = await self._stream(key, max(0, start), end)
        self._hold(key)
        return _LeasedStream(chunks, release=lambda: self._release(key))

    async def get_bytes(self, key: str) -> bytes | None:
        """The whole (small) object, or None if it does not exist.

        Raises:
            StoreError: the backend failed.
        """
        check_key(key)
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
        info = await self._put_small(check_key(key), data)
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
            size = path.stat().st_size
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
        await self._delete(check_key(key))

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
        await self._stat("manifests/readiness-probe")

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
            await self._touch(key)
        except Exception as exc:  # an access time is a hint; losing one must not fail a read
            logger.debug("store: touching %s failed: %r", key, exc)

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
