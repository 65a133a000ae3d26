"""The downloads service: one owner for an archive's life, from plan to last byte.

`Downloads.answer()` decides, before any byte is sent, what a request for an order's archive
gets, and hands back a `Download` the route only has to wrap:

* `304` when `If-None-Match` names the archive's current ETag;
* a complete archive from the cache (Content-Length, single, suffix and multiple ranges);
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

The job runner builds through `archive()` and `opened()` as well, so there is one place that
creates a `BatchArchive` and one that closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from app.archive.fairness import FairLimiter
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
from app.archive.outcomes import DISK_FULL, Download, StorageFull, built_download
from app.archive.plan import BatchPlan, NothingToDeliver, archive_entries
from app.archive.rendering import Renderer
from app.archive.resume import ResumeMismatch, ResumePoint
from app.archive.stream import BatchArchive
from app.archive.validators import ArchiveIdentity, cache_key, identify
from app.archive.zipformat import archive_size
from app.core import metrics
from app.core.config import Settings
from app.core.logging import log_event
from app.storage import ArchiveStore, ObjectInfo, ObjectWriter, StoreError
from app.upstream.client import AutoenhanceClient

logger = logging.getLogger("app.batch")


class Downloads:
    """Owns archives: the cache policy, manifests, resuming, `stream=false` and closing."""

    def __init__(
        self,
        *,
        settings: Settings,
        upstream: AutoenhanceClient,
        limiter: FairLimiter,
        spool_dir: Path,
        store: ArchiveStore | None,
        renderer: Renderer | None = None,
    ) -> None:
        self._settings = settings
        self._upstream = upstream
        self._renderer = renderer
        self._limiter = limiter
        self._spool_dir = spool_dir
        self.store = store

    @property
    def redirect_ttl(self) -> float | None:
        """Seconds a presigned URL of a complete archive lives, if redirects are on."""
        settings = self._settings
        return float(settings.archive_redirect_ttl) if settings.archive_redirect else None

    def archive(
        self,
        plan: BatchPlan,
        *,
        api_key: str | None,
        manifest: ManifestWriter | None = None,
        resume: ResumePoint | None = None,
    ) -> BatchArchive:
        return BatchArchive(
            plan,
            client=self._upstream,
            api_key=api_key,
            limiter=self._limiter,
            concurrency=self._settings.download_concurrency,
            spool_dir=self._spool_dir,
            spool_memory_bytes=self._settings.spool_memory_bytes,
            manifest=manifest,
            resume=resume,
            renderer=self._renderer,
        )

    @contextlib.asynccontextmanager
    async def opened(self, archive: BatchArchive) -> AsyncIterator[BatchArchive]:
        """`archive` started, and closed on exit whatever happens (the job runner's way).

        Raises:
            NothingToDeliver: no image can be delivered.
        """
        try:
            await archive.start()
            yield archive
        finally:
            await archive.aclose()

    async def answer(
        self,
        plan: BatchPlan,
        *,
        owner: str,
        api_key: str | None,
        conditions: Conditions,
        headers: dict[str, str],
        stream: bool = True,
        use_cache: bool = True,
    ) -> Download:
        """Decide what this request gets; images are fetched only for a GET that needs them.

        `headers` (file name, image counts) go on every answer, with the identity headers.
        `use_cache=False` skips the cached copy (it vanished between lookup and read).

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
                headers=headers,
                stream=stream,
                use_cache=use_cache,
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
        headers: dict[str, str],
        stream: bool,
        use_cache: bool,
    ) -> Download:
        started = time.monotonic()
        identity = identify(plan, owner=owner)
        headers = {**headers, **identity.headers}
        if not plan.deliverable:
            raise NothingToDeliver(plan.not_ready)
        if conditions.not_modified(identity.etag):
            return Download(status=304, headers=not_modified_headers(headers))
        stored = await self._cached(identity) if use_cache else None
        if stored is not None:
            if conditions.method == "GET":  # a HEAD looks at the archive, it is not served
                metrics.ARCHIVES_SERVED.labels("cache").inc()
            # Only archives without a skipped deliverable image are cached.
            headers["X-Downloaded"] = str(len(plan.entries))
            headers["X-Failed"] = str(len(plan.not_ready))
            return Download(
                status=200,
                headers=headers,
                stored=stored,
                last_modified=identity.last_modified,
            )
        wanted = conditions.wanted(identity.etag)
        manifest = None
        if stream and self.store is not None:
            manifest = await read_manifest(self.store, identity.key)
        if manifest is not None and (wanted is not None or _replayable(manifest)):
            resumed = await self._resumed(
                plan, identity, manifest, wanted, conditions, headers, api_key
            )
            if resumed is not None:
                return resumed
        if conditions.method == "HEAD":
            return Download(status=200, headers=headers)
        download = await self._fresh(plan, identity, headers, api_key, stream, started)
        if download.path is not None:
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
    ) -> Download | None:
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
            return Download(
                status=200 if span is None else 206,
                headers={**headers, **span_headers(span, total)},
            )
        point = ResumePoint(
            offset=start,
            records=manifest.records,
            complete=manifest.complete,
            end=end,
            prefetch=total is None,
            prefetch_max_bytes=self._settings.archive_build_max_bytes,
        )
        assert self.store is not None  # a manifest was read from it
        writer = ManifestWriter(
            self.store,
            identity.key,
            stream=manifest.stream,
            persisted=len(manifest.records),
        )
        try:
            archive = self.archive(plan, api_key=api_key, manifest=writer, resume=point)
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
        return Download(
            status=status,
            headers={**headers, **sized, "Cache-Control": "no-store"},
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
    ) -> Download:
        manifest = None
        if self.store is not None:
            manifest = ManifestWriter(self.store, identity.key, stream=secrets.token_hex(8))
        archive = self.archive(plan, api_key=api_key, manifest=manifest)
        try:
            await archive.start()
        except NothingToDeliver:
            _log(archive, started, "nothing_delivered")
            raise
        body = self._sent(archive, self._cache_writer(identity), started, "stream", identity.key)
        if stream:
            metrics.ARCHIVE_TTFB.observe(time.monotonic() - started)
            return Download(
                status=200,
                headers={**headers, "Cache-Control": "no-store"},
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
                    await cache.commit()
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
        if self.store is None or not self._settings.archive_cache_max_bytes:
            return None
        return self.store.writer(cache_key(identity.key))

    async def _cached(self, identity: ArchiveIdentity) -> ObjectInfo | None:
        if self.store is None or not self._settings.archive_cache_max_bytes:
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
        if self.store is None or not self._settings.archive_cache_max_bytes:
            return None
        try:
            info = await self.store.stat(cache_key(identify(plan, owner=owner).key))
        except StoreError:
            return None
        return None if info is None else info.size

    async def _forget(self, key: str) -> None:
        if self.store is not None:
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


def _ranged(download: Download, conditions: Conditions, identity: ArchiveIdentity) -> Download:
    """A built archive (`stream=false`) answered with the range the request asks for.

    Raises:
        AppError: 416 (the built file is removed first).
    """
    assert download.path is not None
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
