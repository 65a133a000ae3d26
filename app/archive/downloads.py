"""The downloads service: one owner for an archive's life, from plan to last byte.

`Downloads.answer()` decides, before any byte is sent, what a request for an order's archive
gets, and hands back a `Download` (`app.archive.outcomes`: a closed set of answers) the route
only has to wrap:

* `304` when `If-None-Match` names the archive's current ETag;
* a complete archive from the cache (Content-Length, a single or suffix range, or a presigned
  redirect), opened before the answer is returned: a copy evicted since it was looked up, or a
  store that fails opening it, is answered as if there were no copy;
* a **resumed** archive for a `Range` (honoured only if `If-Range`, when sent, matches): the
  archive's manifest says what every entry of the interrupted transfer was, so entries that
  end before the offset are not fetched again, the entry spanning the offset is fetched and
  checked against its recorded size and CRC-32, and the bytes from the offset on are the
  ones the unbroken download would have sent. HTTP needs the last byte position of a
  partial answer before its first byte, so when the manifest does not reach the end of the
  archive the images still to come are fetched (bounded by `ARCHIVE_BUILD_MAX_BYTES`) before
  the `206` goes out; when it does, the `206` starts after the spanning entry alone;
* otherwise a **fresh** stream, whose entries are recorded in the manifest as they go and
  which is teed into the cache; or with `stream=false` a whole archive built first (bounded
  by `ARCHIVE_BUILD_MAX_BYTES`, cancelled when the caller leaves).

When the order changed (the key, and with it the ETag, differs), a re-fetched image no
longer matches its record, or a `Range` lies beyond what the manifest covers, the answer is
`200` with the whole current archive: never bytes of two different archives spliced together.

Every archive response carries `Accept-Ranges: bytes`, a strong `ETag` and `Last-Modified`.
The ETag names the bytes: the order's version (which changes with any image, name or content
revision), the whole canonical form of the download options, the credential's owner and the
archive format version. A transient upstream failure can still make one stream skip an image
another stream of the same ETag delivers; its manifest records the skip, so a resume of that
stream reproduces it exactly, and such an archive is never cached.

The job runner builds through the same `ArchiveBuilder` (`app.archive.stream`), so there is one
place that creates a `BatchArchive` and one that closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator

import anyio

from app.archive.http_rules import (
    ByteRange,
    Conditions,
    Unsatisfiable,
    not_modified_headers,
    span_headers,
    unsatisfiable,
)
from app.archive.manifest import (
    Manifest,
    ManifestWriter,
    read_manifest,
    segment_key,
)
from app.archive.outcomes import (
    DISK_FULL,
    STREAMING_HEADERS,
    ZIP_MEDIA_TYPE,
    BuiltFile,
    Download,
    NoBody,
    StorageFull,
    Streamed,
    built_download,
    stored_answer,
)
from app.archive.plan import BatchPlan, NothingToDeliver, archive_entries
from app.archive.resume import ResumeMismatch, ResumePoint
from app.archive.stream import ArchiveBuilder, BatchArchive
from app.archive.validators import ArchiveIdentity, cache_key, identify
from app.archive.zipformat import archive_size
from app.core import metrics
from app.core.config import Settings
from app.core.logging import log_event
from app.storage import ArchiveStore, ObjectInfo, ObjectWriter, StoreError

logger = logging.getLogger("app.batch")


class Downloads:
    """Owns archives: the cache policy, manifests, resuming, `stream=false` and closing."""

    def __init__(
        self,
        *,
        settings: Settings,
        builder: ArchiveBuilder,
        store: ArchiveStore,
    ) -> None:
        self._settings = settings
        self._builder = builder
        self._spool_dir = builder.spool_dir
        self.store = store

    @property
    def _redirect_ttl(self) -> float | None:
        """Seconds a presigned URL of a complete archive lives, if redirects are on."""
        settings = self._settings
        return float(settings.archive_redirect_ttl) if settings.archive_redirect else None

    async def answer(
        self,
        plan: BatchPlan,
        *,
        owner: str,
        api_key: str | None,
        conditions: Conditions,
        stream: bool = True,
        redirect: bool = True,
    ) -> Download:
        """Decide what this request gets; images are fetched only for a GET that needs them.

        Every answer carries the archive's identity headers (ETag, Last-Modified,
        Accept-Ranges); what presents it (file name, image counts) is the route's to add.
        `redirect=False` keeps a cached archive's bytes passing through this service (a
        delivery counts them) instead of a presigned redirect.

        Raises:
            NothingToDeliver: no image of the plan can be delivered (before any byte).
            AppError: 416 for a range past the end of an archive of known size;
                `ArchiveTooLarge` when a `stream=false` build exceeds its bound;
                `StorageFull` (507) when the disk is full before the first byte (after it,
                the body raises and the connection is dropped).
        """
        try:
            return await self._answer(
                plan,
                owner=owner,
                api_key=api_key,
                conditions=conditions,
                stream=stream,
                redirect=redirect,
            )
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            logger.error("no space left for an archive: %s", exc)
            raise StorageFull(
                "The service has no disk space left to prepare this archive. Nothing was "
                "sent; try again later."
            ) from None

    async def _answer(
        self,
        plan: BatchPlan,
        *,
        owner: str,
        api_key: str | None,
        conditions: Conditions,
        stream: bool,
        redirect: bool,
    ) -> Download:
        started = time.monotonic()
        identity = identify(plan, owner=owner)
        headers = identity.headers
        if not plan.deliverable:
            raise NothingToDeliver(plan.not_ready)
        if conditions.not_modified(identity.etag):
            return NoBody(status=304, headers=not_modified_headers(headers))
        stored = await self._cached(identity)
        if stored is not None:
            if conditions.method == "GET":  # a HEAD looks at the archive, it is not served
                metrics.ARCHIVES_SERVED.labels("cache").inc()
            try:
                return await stored_answer(
                    self.store,
                    stored,
                    conditions,
                    # Only archives without a skipped deliverable image are cached.
                    headers={
                        **headers,
                        "X-Downloaded": str(len(plan.entries)),
                        "X-Failed": str(len(plan.not_ready)),
                    },
                    etag=identity.etag,
                    last_modified=identity.last_modified,
                    redirect_ttl=self._redirect_ttl if redirect else None,
                )
            except StoreError as exc:  # evicted since it was looked up, or the store failed
                # or passed ARCHIVE_STORE_REQUEST_TIMEOUT opening it: answer without the copy
                logger.info("cached archive %s not served: %s", identity.key[:16], exc)
        wanted = conditions.wanted(identity.etag)
        manifest = None
        if stream:
            manifest = await read_manifest(self.store, identity.key)
        if manifest is not None and (wanted is not None or _replayable(manifest)):
            resumed = await self._resumed(
                plan, identity, manifest, wanted, conditions, headers, api_key
            )
            if resumed is not None:
                return resumed
        if conditions.method == "HEAD":
            return _head(200, headers)
        download = await self._fresh(plan, identity, headers, api_key, stream, started)
        if isinstance(download, BuiltFile):
            return _ranged(download, conditions, identity)
        return download

    async def _resumed(
        self,
        plan: BatchPlan,
        identity: ArchiveIdentity,
        manifest: Manifest,
        wanted: ByteRange | None,
        conditions: Conditions,
        headers: dict[str, str],
        api_key: str | None,
    ) -> Streamed | NoBody | None:
        """The archive continued from the manifest (`wanted` None: replayed whole), or None
        when that cannot be done.

        Raises:
            AppError: 416 when the range lies outside the recorded archive.
        """
        started = time.monotonic()
        total = _recorded_size(plan, manifest)
        if (resolved := _resolved_range(wanted, total, identity)) is None:
            return None
        start, end = resolved
        if conditions.method == "HEAD":
            if total is None:
                return None  # the size is only known once the rest is fetched: a GET does that
            span = None if wanted is None else (start, end if end is not None else total)
            return _head(200 if span is None else 206, {**headers, **span_headers(span, total)})
        point = ResumePoint(
            offset=start,
            records=manifest.records,
            complete=manifest.complete,
            end=end,
            prefetch=total is None,
            prefetch_max_bytes=self._settings.archive_build_max_bytes,
        )
        writer = ManifestWriter(
            self.store,
            identity.key,
            stream=manifest.stream,
            persisted=len(manifest.records),
        )
        try:
            archive = self._builder.archive(plan, api_key=api_key, manifest=writer, resume=point)
            await archive.start()
        except ResumeMismatch as exc:
            logger.info("archive %s not resumable: %s", identity.key[:16], exc)
            return None
        if total is None:
            total = archive.expected_size()
        if wanted is None:
            status, sized = 200, span_headers(None, total)
        else:
            last = total if end is None else min(end, total)
            status, sized = 206, span_headers((start, last), total)
        # A pass over the whole archive leaves it in the cache, like a fresh stream does.
        whole = start == 0 and end is None
        metrics.ARCHIVE_TTFB.observe(time.monotonic() - started)
        return Streamed(
            status=status,
            headers={**STREAMING_HEADERS, **headers, **sized, "Cache-Control": "no-store"},
            body=self._sent(
                archive,
                self._cache_writer(identity) if whole else None,
                started,
                "replayed" if wanted is None else "resumed",
                identity.key,
            ),
            archive=archive,
        )

    async def _fresh(
        self,
        plan: BatchPlan,
        identity: ArchiveIdentity,
        headers: dict[str, str],
        api_key: str | None,
        stream: bool,
        started: float,
    ) -> Streamed | BuiltFile:
        manifest = ManifestWriter(self.store, identity.key, stream=secrets.token_hex(8))
        archive = self._builder.archive(plan, api_key=api_key, manifest=manifest)
        try:
            await archive.start()
        except NothingToDeliver:
            _log(archive, started, "nothing_delivered")
            raise
        body = self._sent(archive, self._cache_writer(identity), started, "stream", identity.key)
        if stream:
            metrics.ARCHIVE_TTFB.observe(time.monotonic() - started)
            return Streamed(
                status=200,
                headers={**STREAMING_HEADERS, **headers, "Cache-Control": "no-store"},
                body=body,
                archive=archive,
            )
        return await built_download(
            archive,
            body,
            headers,
            spool_dir=self._spool_dir,
            max_bytes=self._settings.archive_build_max_bytes,
        )

    async def _sent(
        self,
        archive: BatchArchive,
        cache: ObjectWriter | None,
        started: float,
        source: str,
        key: str,
    ) -> AsyncIterator[bytes]:
        """The archive's bytes, teed into the cache; one log line when it ends.

        The last chunk is held back until the cached copy is committed: a client that knows
        the length (a replay, a resume) may close the connection as soon as it has every
        byte, and that must not cancel the commit of an archive that is whole.
        """
        outcome = "aborted"
        try:
            held: bytes | None = None
            async for chunk in archive:
                if cache is not None:
                    await cache.write(chunk)
                metrics.ARCHIVE_BYTES.inc(len(chunk))
                if held is not None:
                    yield held
                held = chunk
            outcome = "complete" if not archive.progress.skipped else "partial"
            # Only a complete archive is cached: a transient failure must not be replayed.
            if cache is not None and archive.progress.failed == len(archive.plan.not_ready):
                with anyio.CancelScope(shield=True):
                    # A store that stalls on publishing holds the last chunk at most this.
                    await cache.commit(wait=self.store.request_timeout)
            if held is not None:
                yield held
            metrics.ARCHIVES_SERVED.labels(source).inc()
        except BaseException as exc:
            outcome = "client_gone" if _is_disconnect(exc) else "failed"
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                logger.error("no space left while streaming an archive: %s", exc)
            if outcome == "client_gone":
                metrics.CLIENT_ABORTS.inc()
            if isinstance(exc, ResumeMismatch):
                # The record is wrong about an image: the next request starts afresh.
                await self._forget(key)
            raise
        finally:
            # Shielded: a cancelled task (the client left) is cancelled again at every await.
            with anyio.CancelScope(shield=True):
                if cache is not None:
                    await cache.abort()  # harmless after commit
                await archive.aclose()
            _log(archive, started, outcome)

    def _cache_writer(self, identity: ArchiveIdentity) -> ObjectWriter | None:
        if not self._settings.archive_cache_max_bytes:
            return None
        return self.store.writer(cache_key(identity.key))

    async def _cached(self, identity: ArchiveIdentity) -> ObjectInfo | None:
        if not self._settings.archive_cache_max_bytes:
            return None
        try:
            info = await self.store.stat(cache_key(identity.key))
        except StoreError as exc:  # the store is down: stream afresh rather than fail
            logger.warning("archive cache unavailable: %s", exc)
            info = None
        metrics.CACHE_LOOKUPS.labels("miss" if info is None else "hit").inc()
        return info

    async def cached_size(self, plan: BatchPlan, *, owner: str) -> int | None:
        """The size of `plan`'s archive when a complete copy of it is in the cache: one store
        lookup, no image fetched, not counted as a cache lookup (nothing is served). None when
        it is not cached, there is no cache, or the store fails."""
        if not self._settings.archive_cache_max_bytes:
            return None
        try:
            info = await self.store.stat(cache_key(identify(plan, owner=owner).key))
        except StoreError:
            return None
        return None if info is None else info.size

    async def _forget(self, key: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.delete(segment_key(key, 0))


def _replayable(manifest: Manifest) -> bool:
    """Whether a plain GET may follow this manifest: complete, and no image skipped in it.

    An archive with a skipped image is downloaded afresh, so a retry can recover the image.
    """
    return manifest.complete and all(r.skipped is None for r in manifest.records)


def _resolved_range(
    wanted: ByteRange | None, total: int | None, identity: ArchiveIdentity
) -> tuple[int, int | None] | None:
    """`(start, end)` a resume sends (`end` exclusive, None = to the end), or None when the
    size is needed but unknown (a suffix range before the manifest is complete).

    Raises:
        AppError: 416 when the range lies outside the recorded archive.
    """
    if wanted is None:
        return 0, None
    if total is None:
        if wanted.first is None:
            return None
        return wanted.first, None if wanted.last is None else wanted.last + 1
    try:
        start, end = wanted.span(total)
    except Unsatisfiable:
        raise unsatisfiable(total, identity.headers) from None
    return start, None if end == total else end


def _head(status: int, headers: dict[str, str]) -> NoBody:
    """The answer to a HEAD of an archive to be produced: the headers its GET would get."""
    return NoBody(
        status=status,
        headers={**STREAMING_HEADERS, **headers, "Content-Type": ZIP_MEDIA_TYPE},
    )


def _ranged(download: BuiltFile, conditions: Conditions, identity: ArchiveIdentity) -> BuiltFile:
    """A built archive (`stream=false`) answered with the range the request asks for.

    Raises:
        AppError: 416 (the built file is removed first).
    """
    size = int(download.headers["Content-Length"])
    try:
        span = conditions.span(identity.etag, size)
    except Unsatisfiable:
        download.path.unlink(missing_ok=True)
        raise unsatisfiable(size, identity.headers) from None
    download.status = 200 if span is None else 206
    download.span = span
    download.headers.update(span_headers(span, size))
    return download


def _recorded_size(plan: BatchPlan, manifest: Manifest) -> int | None:
    if not manifest.complete:
        return None
    return archive_size(archive_entries(plan, list(manifest.records)))


def _is_disconnect(exc: BaseException) -> bool:
    """Whether the body stopped because its client left: it is then cancelled or closed.
    An OSError in here is the service's own (a full disk), never the client's."""
    return isinstance(exc, asyncio.CancelledError | GeneratorExit)


def _log(archive: BatchArchive, started: float, outcome: str) -> None:
    plan, progress = archive.plan, archive.progress
    duration = round(time.monotonic() - started, 3)
    log_event(
        logger,
        "batch",
        "batch order={order_id} images={images} delivered={delivered} skipped={skipped} "
        "bytes={bytes} duration={duration_s:.3f}s outcome={outcome}",
        order_id=plan.order.order_id,
        images=len(plan.images),
        delivered=progress.delivered,
        skipped=progress.failed,
        bytes=progress.bytes_written,
        duration_s=duration,
        outcome=outcome,
    )
