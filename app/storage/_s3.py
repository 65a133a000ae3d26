"""The store on S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Backblaze B2), via
obstore.

Objects live at `<prefix>/<key>` of the bucket. Writes are multipart uploads completed only on
commit (an aborted writer aborts its upload, so nothing is ever visible half-written); small
objects are one PUT.

S3 has no access time, so the last access, which eviction orders by, is recorded in marker
objects: a read or a lease puts an empty `<prefix>/.access/<key>/<time in ns>`, and the newest
marker of a key (or the object's own Last-Modified, if newer) is its last access. Markers are
listed (never read) when a commit needs room; older markers of a key, and markers of objects
that no longer exist, are deleted in that pass. Marker names carry nanoseconds because S3's
Last-Modified has whole seconds only.

Two clients share the bucket: one for reads, whose streams may last as long as a slow client
takes (only a pause of `READ_TIMEOUT` between bytes ends one), and one for everything else,
whose requests end after `REQUEST_TIMEOUT` each. Both retry a failed request at most
`MAX_RETRIES` times within `RETRY_BUDGET`, instead of obstore's ten retries within three
minutes; a request path bounds its calls tighter still (`ARCHIVE_STORE_REQUEST_TIMEOUT`, see
`app.storage._base`).

Credentials and region come from the standard environment (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`), read by obstore. Incomplete
multipart uploads of a process that died stay invisible but are billed: give the bucket a
lifecycle rule that aborts them after a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from app.core import metrics
from app.storage._base import DEFAULT_MIN_IDLE, ArchiveStore
from app.storage._types import ObjectInfo, ObjectMissing, Quota, StoreError, Usage
from app.storage._writer import Upload

if TYPE_CHECKING:
    from obstore import ObjectMeta, PutResult
    from obstore.store import ClientConfig, RetryConfig

# obstore raises its own errors, and built-in ones for some (a missing object is a plain
# FileNotFoundError): both families are caught.
_MISSING = (NotFoundError, FileNotFoundError)
_FAILED = (BaseError, OSError)

MARKERS = ".access"
# Multipart part size: S3's minimum is 5 MiB; 10,000 parts of it bound an object at ~48 GiB.
PART_SIZE = 5 * 1024 * 1024
# Parts of one upload in flight at once: memory per writer is about this many parts.
PART_CONCURRENCY = 2
# Chunks a writer may hand over before it waits for the upload to take them.
QUEUE_CHUNKS = 8
# Minimum bytes per chunk of a read (obstore coalesces the network reads).
READ_CHUNK = 256 * 1024
# A marker of an object that no longer exists is deleted once it is this old.
ORPHAN_MARKER_SECONDS = 3600
# Seconds one request (a part of an upload, a HEAD, a listing page) may take in all.
REQUEST_TIMEOUT = 60
# Seconds a read may wait between bytes (its whole length is the client's pace).
READ_TIMEOUT = 30
CONNECT_TIMEOUT = 5
# Seconds an abort waits for the upload to take it before the upload is cancelled.
ABORT_WAIT = 1.0
# Retries of one failed request, and the seconds they may take together.
MAX_RETRIES = 2
RETRY_BUDGET = 30


def _error(exc: Exception) -> StoreError:
    # obstore's messages carry the request URL (never the credentials): keep the first line.
    return StoreError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _version(meta: ObjectMeta | PutResult) -> str:
    return str(meta.get("e_tag") or meta.get("version") or "").strip('"')


def _info(key: str, meta: ObjectMeta) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=meta["size"],
        last_modified=meta["last_modified"].astimezone(UTC),
        etag=_version(meta),
    )


def _marker(key: str, stamp_ns: int) -> str:
    return f"{MARKERS}/{key}/{stamp_ns:020d}"


class S3ArchiveStore(ArchiveStore):
    """Objects in `bucket` under `prefix`; `endpoint` for S3-compatible services."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        endpoint: str | None,
        quotas: Sequence[Quota],
        min_idle: float = DEFAULT_MIN_IDLE,
        config: dict[str, str] | None = None,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__(quotas=quotas, min_idle=min_idle, request_timeout=request_timeout)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        connect = f"{CONNECT_TIMEOUT}s"
        options: ClientConfig = {"timeout": f"{REQUEST_TIMEOUT}s", "connect_timeout": connect}
        reads: ClientConfig = {"read_timeout": f"{READ_TIMEOUT}s", "connect_timeout": connect}
        if endpoint is not None and endpoint.startswith("http://"):
            options["allow_http"] = reads["allow_http"] = True
        extra: dict[str, Any] = dict(config or {})
        if endpoint is not None:
            extra["endpoint"] = endpoint
        retry: RetryConfig = {
            "max_retries": MAX_RETRIES,
            "retry_timeout": timedelta(seconds=RETRY_BUDGET),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        }
        self._store = S3Store(
            bucket, prefix=self.prefix or None, client_options=options, retry_config=retry, **extra
        )
        self._reader = S3Store(
            bucket, prefix=self.prefix or None, client_options=reads, retry_config=retry, **extra
        )

    @property
    def description(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    async def _stat(self, key: str) -> ObjectInfo | None:
        try:
            meta = await obstore.head_async(self._store, key)
        except _MISSING:
            return None
        except _FAILED as exc:
            raise _error(exc) from exc
        return _info(key, meta)

    async def _stream(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        options: dict[str, Any] = {}
        if end is not None:
            if end <= start:
                if await self._stat(key) is None:
                    raise ObjectMissing(key)
                return _Chunks(None)
            options["range"] = (start, end)
        elif start > 0:
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(self._reader, key, options=options)  # type: ignore[arg-type]
        except _MISSING:
            raise ObjectMissing(key) from None
        except _FAILED as exc:
            info = await self._stat(key)
            if info is None:
                raise ObjectMissing(key) from None
            if start >= info.size:  # a range past the end: nothing to read
                return _Chunks(None)
            raise _error(exc) from exc
        return _Chunks(result.stream(min_chunk_size=READ_CHUNK))

    async def _put_small(self, key: str, data: bytes) -> ObjectInfo:
        try:
            result = await obstore.put_async(self._store, key, data, use_multipart=False)
        except _FAILED as exc:
            raise _error(exc) from exc
        # One request, no HEAD after it: the store's own Last-Modified is within a second.
        return ObjectInfo(
            key=key, size=len(data), last_modified=datetime.now(UTC), etag=_version(result)
        )

    async def _open_upload(self, key: str) -> Upload:
        return _MultipartUpload(self, key)

    async def _publish_file(self, key: str, path: Path) -> ObjectInfo:
        size = (await anyio.Path(path).stat()).st_size
        try:
            await obstore.put_async(
                self._store,
                key,
                path,
                use_multipart=size > PART_SIZE,
                chunk_size=PART_SIZE,
                max_concurrency=PART_CONCURRENCY,
            )
        except _FAILED as exc:
            raise _error(exc) from exc
        info = await self._stat(key)
        if info is None:
            raise StoreError(f"{key} vanished right after its upload")
        return info

    async def _delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except _MISSING:
            pass
        except _FAILED as exc:
            raise _error(exc) from exc

    async def _list(self, prefix: str) -> list[ObjectMeta]:
        items: list[ObjectMeta] = []
        pages = obstore.list(self._store, prefix=prefix, chunk_size=1000)
        try:
            while True:
                try:
                    items.extend(await self._bounded("list", anext(pages)))
                except StopAsyncIteration:
                    return items
        except _FAILED as exc:
            metrics.STORE_FAILURES.labels("list", "error").inc()
            raise _error(exc) from exc

    async def _usage(self, namespaces: tuple[str, ...]) -> list[Usage]:
        objects: dict[str, ObjectMeta] = {}
        markers: dict[str, list[tuple[int, str]]] = {}
        for namespace in namespaces:
            for meta in await self._list(f"{namespace}/"):
                objects[meta["path"]] = meta
            for meta in await self._list(f"{MARKERS}/{namespace}/"):
                key, _, stamp = meta["path"].removeprefix(f"{MARKERS}/").rpartition("/")
                if stamp.isdigit():
                    markers.setdefault(key, []).append((int(stamp), meta["path"]))
        stale: list[str] = []
        accessed: dict[str, float] = {}
        orphan_cutoff = (time.time() - ORPHAN_MARKER_SECONDS) * 1e9
        for key, stamps in markers.items():
            stamps.sort()
            newest = stamps[-1][0]
            stale.extend(path for _, path in stamps[:-1])
            if key in objects:
                accessed[key] = newest / 1e9
            elif newest < orphan_cutoff:
                stale.append(stamps[-1][1])
        if stale:
            with contextlib.suppress(*_FAILED):
                await obstore.delete_async(self._store, stale)
        return [
            Usage(
                key=key,
                size=meta["size"],
                accessed=max(meta["last_modified"].timestamp(), accessed.get(key, 0.0)),
            )
            for key, meta in objects.items()
        ]

    async def probe(self) -> None:
        # A HEAD of a missing object cannot tell a missing bucket from a missing key: list.
        try:
            await self._bounded(
                "probe",
                anext(obstore.list(self._store, prefix="manifests/readiness-probe", chunk_size=1)),
            )
        except StopAsyncIteration:
            pass
        except _FAILED as exc:
            raise _error(exc) from exc

    async def _touch(self, key: str) -> None:
        try:
            await obstore.put_async(
                self._store, _marker(key, time.time_ns()), b"", use_multipart=False
            )
        except _FAILED as exc:
            raise _error(exc) from exc

    async def presigned_url(self, key: str, *, expires_in: float) -> str | None:
        """A presigned GET URL of the object (the object store then answers ranges itself)."""
        await super().presigned_url(key, expires_in=expires_in)
        try:
            return await self._bounded(
                "presign",
                obstore.sign_async(self._store, "GET", key, timedelta(seconds=expires_in)),
            )
        except _FAILED as exc:
            raise _error(exc) from exc


class _Chunks:
    """Chunks of one GET as `bytes`; `aclose()` drops the connection early."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._stream is None:
            raise StopAsyncIteration
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._stream = None
            raise
        except _FAILED as exc:
            self._stream = None
            raise _error(exc) from exc
        return bytes(chunk)

    async def aclose(self) -> None:
        self._stream = None


class _Aborted(Exception):
    """Raised into the upload's chunk iterator so obstore aborts the multipart upload."""


_END = object()  # queued after the last chunk: complete the upload
_ABORT = object()  # queued to abort it


class _MultipartUpload(Upload):
    """A multipart upload fed through a bounded queue; `complete()` completes it.

    The owner must end it with `complete()` or `abort()` (an `ObjectWriter` always does).
    """

    def __init__(self, store: S3ArchiveStore, key: str) -> None:
        self._s3 = store
        self._key = key
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        self._task = asyncio.create_task(self._run(), name=f"store-upload-{key}")
        # Its failure is reported through write()/complete(), or expected after abort().
        self._task.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is _ABORT:
                raise _Aborted
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item

    async def _run(self) -> Any:
        return await obstore.put_async(
            self._s3._store,
            self._key,
            self._chunks(),
            use_multipart=True,
            chunk_size=PART_SIZE,
            max_concurrency=PART_CONCURRENCY,
        )

    async def _put(self, item: object) -> None:
        put = asyncio.ensure_future(self._queue.put(item))
        try:
            done, _ = await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (a deadline): the chunk is not queued
            put.cancel()
            raise
        if put not in done:
            put.cancel()
            raise self._failure()

    def _failure(self) -> StoreError:
        exc = self._task.exception() if not self._task.cancelled() else None
        if isinstance(exc, Exception):
            return _error(exc)
        return StoreError("the upload stopped")

    async def write(self, chunk: bytes) -> None:
        if self._task.done():
            raise self._failure()
        # An archive's chunk may be a view of a pooled image buffer (app.upstream.bytepool):
        # obstore takes bytes, and a copy does not pin the buffer while a part fills.
        await self._put(chunk if isinstance(chunk, bytes) else bytes(chunk))

    async def complete(self) -> ObjectInfo:
        await self._put(_END)
        try:
            await self._task
        except _FAILED as exc:
            raise _error(exc) from exc
        info = await self._s3._stat(self._key)
        if info is None:
            raise StoreError(f"{self._key} vanished right after its upload")
        return info

    async def abort(self) -> None:
        if not self._task.done():
            # An upload stuck on a store that does not answer takes no more chunks, and does
            # not end: stop it (the bucket's lifecycle rule removes the incomplete upload).
            with contextlib.suppress(TimeoutError, StoreError):
                async with asyncio.timeout(ABORT_WAIT):
                    await self._put(_ABORT)
                    await asyncio.wait([self._task])
            if not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task], timeout=ABORT_WAIT)
        if not self._task.cancelled():
            self._task.exception()  # retrieved: the abort is the expected outcome
