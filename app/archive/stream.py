"""The batch pipeline: one order in, one deterministic ZIP out, streamed as it is fetched.

How it works:

* `plan_batch` (`app.archive.plan`) reads the order, decides which images can be delivered
  (status `processed`), and gives every image its safe, unique entry name — before any byte
  is sent.
* `BatchArchive` has the deliverable images fetched ahead by a `Prefetcher`
  (`app.archive.prefetch`: `DOWNLOAD_CONCURRENCY` in flight for this request, a window of
  twice that ahead of the writer, a slot of the process-wide `FairLimiter` for every fetch)
  into spooled temporary files, and writes them into the archive strictly in the order's
  image order.
* `BatchArchive.start()` returns once the first image in order is in hand, so the caller can
  commit `200 OK` knowing that at least one image will be delivered; when no image at all can
  be delivered it raises `NothingToDeliver` instead, while an honest error is still possible.

Failure policy after the first byte: an image that cannot be fetched (after the client's
retries) is skipped, and the archive ends with `_download_report.txt` naming every skipped
image and why. Any other error escapes the iterator, which makes the server drop the
connection: the client sees a failed transfer, never a truncated archive that looks whole.
Closing the iterator (client gone) cancels every in-flight download and removes the spools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from app.archive.fairness import FairLimiter
from app.archive.listing import MANIFEST_NAME
from app.archive.manifest import ManifestWriter, Record
from app.archive.plan import (
    REPORT_NAME,
    BatchPlan,
    NothingToDeliver,
    PlannedEntry,
    Skipped,
    archive_entries,
    manifest_json,
    render_report,
)
from app.archive.prefetch import Fetched, Prefetcher, Spool
from app.archive.rendering import EntrySkipped, Renderer
from app.archive.resume import ResumeMismatch, ResumePoint, position
from app.archive.window import window
from app.archive.zipformat import ZipWriter, archive_size
from app.core import metrics
from app.core.config import Settings
from app.upstream.bytepool import PooledImage
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError

logger = logging.getLogger("app.batch")

# Bytes read from a spooled image per chunk written to the client.
WRITE_CHUNK = 1024 * 1024
# Images may be fetched this many times DOWNLOAD_CONCURRENCY ahead of the one being written.
PREFETCH_FACTOR = 2
# What makes one entry be skipped (and listed in the report) rather than fail the archive.
SKIPS = (UpstreamError, EntrySkipped)


@dataclass(slots=True)
class BatchProgress:
    """Counters of one archive being produced (read by jobs and logs)."""

    total: int
    delivered: int = 0
    bytes_written: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.skipped)


class BatchArchive:
    """The archive of one `BatchPlan`, produced as an async iterator of byte chunks.

    Call `start()` first, then iterate; always `aclose()` (the downloads service does), which
    cancels outstanding downloads and removes spooled files.

    With a `manifest` writer, every entry is recorded before its header is produced and the
    manifest is marked complete before the report and central directory. With a `resume`
    point, the archive replays the recorded entries that end before the offset without
    fetching them, re-fetches the entry spanning the offset and checks it against its
    record, and yields the bytes from the offset on, exactly as the unbroken stream would.
    """

    def __init__(
        self,
        plan: BatchPlan,
        *,
        client: AutoenhanceClient,
        api_key: str | None,
        limiter: FairLimiter,
        concurrency: int,
        spool_dir: Path,
        spool_memory_bytes: int,
        manifest: ManifestWriter | None = None,
        resume: ResumePoint | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.plan = plan
        self._deliverable = plan.entries
        window = len(self._deliverable) if resume and resume.prefetch else 0
        # Every entry of one image is made at once: the window holds at least those.
        per_image = max(1, len(plan.variants))
        needs_renderer = bool(plan.variants) or plan.options.manifest
        if needs_renderer and renderer is None:
            raise ValueError("variants and manifest.json need a renderer")
        self._fetcher = Prefetcher(
            plan,
            client=client,
            api_key=api_key,
            limiter=limiter,
            concurrency=concurrency,
            window=max(window, concurrency * PREFETCH_FACTOR * per_image),
            spool_dir=spool_dir,
            spool_memory_bytes=spool_memory_bytes,
            renderer=renderer if needs_renderer else None,
        )
        self._manifest = manifest
        self._resume = resume
        self.records: list[Record] = list(resume.records) if resume else []
        self._given = len(self.records)  # records that came with the resume point
        self._recorder: asyncio.Task[None] | None = None
        self._saved = self._given  # records the manifest writer has been asked to keep
        self._saved_event = asyncio.Event()
        self._writer = ZipWriter()
        self._first = 0  # index into _deliverable where the produced entries begin
        # The bytes to send of those produced (from the first entry's header): `window`'s.
        self._start = 0
        self._end: int | None = None
        self.progress = BatchProgress(total=plan.files)
        self.progress.skipped.extend(plan.not_ready)
        self._closed = False
        self._writing: Spool | None = None
        if resume is not None:
            self._position_at(resume)

    def _position_at(self, resume: ResumePoint) -> None:
        """Replay the recorded entries that end before the offset into the writer.

        Raises:
            ResumeMismatch: see `position`.
        """
        at = position(self.plan, resume, self._writer)
        self.progress.skipped.extend(at.skipped)
        self.progress.delivered += at.delivered
        self._first = at.first
        self._start = resume.offset - self._writer.offset
        if resume.end is not None:
            self._end = resume.end - self._writer.offset

    def _recorded(self, index: int) -> Record | None:
        """The record a resume brought for `index` (to reproduce and check against)."""
        return self.records[index] if index < self._given else None

    def _to_fetch(self) -> list[int]:
        return [
            index
            for index in range(self._first, len(self._deliverable))
            if (record := self._recorded(index)) is None or record.skipped is None
        ]

    async def start(self) -> None:
        """Begin fetching; return once the first entry to be produced is in hand.

        For a resume that is the entry spanning the offset, checked against its record
        (or every image still to come, with `prefetch`).

        Raises:
            NothingToDeliver: no image can be delivered (none ready, or every fetch failed).
            ResumeMismatch: a resume cannot produce the recorded bytes.
        """
        indices = self._to_fetch()
        self._fetcher.start(indices)
        if self._manifest is not None:
            self._recorder = asyncio.create_task(self._record_ahead(), name="batch-recorder")
        try:
            if self._resume is None:
                await self._first_in_hand(indices)
            elif self._resume.prefetch:
                await self._all_in_hand(indices)
            elif indices and indices[0] == self._first and self._first < self._given:
                await self._checked(indices[0], await_result=True)
        except BaseException:
            # Cancelled (the client left), nothing to deliver or a mismatch: stop every download.
            await self.aclose()
            raise

    async def _first_in_hand(self, indices: list[int]) -> None:
        for index in indices:
            try:
                await asyncio.shield(self._fetcher.results[index])
            except SKIPS as exc:
                self._skip(index, exc)
                self._fetcher.release()
                continue
            self._first = index
            return
        raise NothingToDeliver(self.progress.skipped)

    async def _all_in_hand(self, indices: list[int]) -> None:
        spooled = 0
        for index in indices:
            if self._recorded(index) is not None:
                spooled += (await self._checked(index, await_result=True)).size
                continue
            with contextlib.suppress(*SKIPS):
                spooled += (await asyncio.shield(self._fetcher.results[index])).size
            if spooled > self._resume_bound():
                raise ResumeMismatch("the rest of the archive exceeds the resume bound")

    def _resume_bound(self) -> int:
        bound = self._resume.prefetch_max_bytes if self._resume else 0
        return bound if bound > 0 else 1 << 62

    async def _checked(self, index: int, *, await_result: bool) -> Fetched:
        """The fetched image at `index`, which must match its record.

        Raises:
            ResumeMismatch: it could not be fetched, or its size or CRC-32 changed.
        """
        record = self._recorded(index)
        try:
            fetched = await asyncio.shield(self._fetcher.results[index])
        except SKIPS as exc:
            raise ResumeMismatch(f"a recorded image could not be fetched: {exc.message}") from None
        if record is not None and (fetched.size, fetched.crc32) != (record.size, record.crc32):
            raise ResumeMismatch(f"image {record.image_id} changed since it was recorded")
        return fetched

    def expected_size(self) -> int:
        """The archive's total size; known once every image to come is in hand (prefetch).

        Raises:
            RuntimeError: an image still to come has not been fetched.
        """
        records = list(self.records)
        for index in range(len(records), len(self._deliverable)):
            future = self._fetcher.results.get(index)
            if future is None or not future.done() or future.cancelled():
                raise RuntimeError("the archive's size is not known yet")
            records.append(self._record_of(index, future))
        return archive_size(archive_entries(self.plan, records))

    async def _record_ahead(self) -> None:
        """Record each image as soon as it and every image before it are fetched, and save.

        The manifest thus runs ahead of the bytes sent (a store write overlaps the streaming
        of the entries before), and `_chunks` only waits for it when it has not caught up.
        """
        assert self._manifest is not None
        index = len(self.records)
        try:
            while index < len(self._deliverable):
                with contextlib.suppress(*SKIPS):
                    await asyncio.shield(self._fetcher.results[index])
                while index < len(self._deliverable) and self._fetcher.results[index].done():
                    future = self._fetcher.results[index]
                    if future.cancelled():
                        return
                    self.records.append(self._record_of(index, future))
                    index += 1
                await self._manifest.save(self.records, complete=False)
                self._saved = len(self.records)
                self._signal_saved()
        finally:
            self._recorder = None
            self._signal_saved()

    def _signal_saved(self) -> None:
        event, self._saved_event = self._saved_event, asyncio.Event()
        event.set()

    async def _saved_through(self, index: int) -> None:
        """Wait until the record of `index` is saved (or nothing more will be)."""
        while self._saved <= index and self._recorder is not None:
            await self._saved_event.wait()

    def _record_of(self, index: int, future: asyncio.Future[Fetched]) -> Record:
        """The manifest record of the finished fetch of `index`: its size and CRC, or why not."""
        planned = self._deliverable[index]
        if (exc := future.exception()) is not None:
            reason = exc.message if isinstance(exc, SKIPS) else str(exc)
            return Record(planned.image.image_id, planned.entry_name, skipped=reason)
        fetched = future.result()
        return Record(
            planned.image.image_id,
            planned.entry_name,
            fetched.size,
            fetched.crc32,
            sha256=fetched.sha256,
            width=fetched.width,
            height=fetched.height,
        )

    def _all_records(self) -> list[Record]:
        """The record of every planned entry, once each has been made or skipped."""
        return [
            self.records[index]
            if index < len(self.records)
            else self._record_of(index, self._fetcher.results[index])
            for index in range(len(self._deliverable))
        ]

    def _skip(
        self, index: int, exc: UpstreamError | EntrySkipped, *, reason: str | None = None
    ) -> None:
        planned = self._deliverable[index]
        reason = reason or exc.message
        logger.info("skipping image %s: %s", planned.image.image_id, reason)
        metrics.IMAGES_SKIPPED.labels(type(exc).__name__).inc()
        self._note_skip(index, reason)

    def _note_skip(self, index: int, reason: str) -> None:
        planned = self._deliverable[index]
        self.progress.skipped.append(
            Skipped(planned.image.image_id, planned.image.image_name, reason)
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The archive's bytes from the resume offset to the range's end (all of it, without
        a resume point); reading stops once the end is out."""
        return window(self._chunks(), self._start, self._end)

    async def _chunks(self) -> AsyncGenerator[bytes]:
        """Every byte from the first entry produced on (a resume's spanning entry)."""
        try:
            for index in range(self._first, len(self._deliverable)):
                recorded = self._recorded(index)
                if recorded is not None and recorded.skipped is not None:
                    self._note_skip(index, recorded.skipped)
                    continue
                if recorded is not None:
                    fetched = await self._checked(index, await_result=True)
                else:
                    try:
                        fetched = await self._fetcher.results[index]
                    except SKIPS as exc:
                        self._skip(index, exc)
                        self._fetcher.release()
                        continue
                await self._saved_through(index)  # the record goes out before the header
                entry = self._entry(self._deliverable[index], fetched)
                async with contextlib.aclosing(entry):
                    async for chunk in entry:
                        yield chunk
                self.progress.delivered += 1
                metrics.IMAGES_DELIVERED.inc()
            if self._manifest is not None:
                if self._recorder is not None:
                    await self._recorder
                await self._manifest.save(self.records, complete=True)
            if self.progress.skipped:
                for chunk in self._report():
                    yield chunk
            if self.plan.options.manifest:
                listing = manifest_json(self.plan, self._all_records())
                for chunk in self._file(MANIFEST_NAME, listing):
                    yield chunk
            yield self._writer.finish()
        finally:
            await self.aclose()

    async def _entry(self, planned: PlannedEntry, fetched: Fetched) -> AsyncGenerator[bytes]:
        """One image's local header and data; closes its spool."""
        self._writing = fetched.spool
        try:
            yield self._writer.local_header(
                planned.entry_name,
                size=fetched.size,
                crc32=fetched.crc32,
                modified=self.plan.entry_time(planned.image),
            )
            fetched.spool.seek(0)
            # A pooled image goes out as one view of its buffer: no copy either way, and one
            # pass through the response's send path instead of one per MiB.
            step = fetched.size if isinstance(fetched.spool, PooledImage) else WRITE_CHUNK
            while chunk := fetched.spool.read(step):
                self._writer.data_written(len(chunk))
                self.progress.bytes_written += len(chunk)
                yield chunk
        finally:
            fetched.spool.close()
            self._writing = None
            self._fetcher.release()

    def _report(self) -> list[bytes]:
        """The download report's header and text."""
        return self._file(REPORT_NAME, render_report(self.plan, self.progress.skipped))

    def _file(self, name: str, content: bytes) -> list[bytes]:
        """A file of the service's own at the end of the archive: its header and content."""
        header = self._writer.local_header(
            name, size=len(content), crc32=zlib.crc32(content), modified=self.plan.modified
        )
        self._writer.data_written(len(content))
        return [header, content]

    async def aclose(self) -> None:
        """Cancel outstanding downloads and release every spooled image. Idempotent.

        The spools are released before anything is awaited, and the wait for the cancelled
        downloads to unwind is shielded: a caller that is itself being cancelled (anyio
        cancels again at every await of a cancelled scope) still leaves nothing open.
        """
        if self._closed:
            return
        self._closed = True
        pending = self._fetcher.cancel()
        if self._recorder is not None:
            self._recorder.cancel()
            pending.append(self._recorder)
        if self._writing is not None:
            self._writing.close()
        with anyio.CancelScope(shield=True):
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            if self._manifest is not None:
                await self._manifest.aclose()


class ArchiveBuilder:
    """Makes the `BatchArchive`s of one process under its settings (concurrency, spooling),
    its upstream client, fair limiter and renderer: for the downloads service, and alone for
    the job runner (whose archives are kept whole in the job store: no cache, no manifest)."""

    def __init__(
        self,
        *,
        settings: Settings,
        upstream: AutoenhanceClient,
        limiter: FairLimiter,
        spool_dir: Path,
        renderer: Renderer | None = None,
    ) -> None:
        self._settings = settings
        self._upstream = upstream
        self._limiter = limiter
        self._renderer = renderer
        self.spool_dir = spool_dir

    def archive(
        self,
        plan: BatchPlan,
        *,
        api_key: str | None,
        manifest: ManifestWriter | None = None,
        resume: ResumePoint | None = None,
    ) -> BatchArchive:
        """The archive of `plan`, not started."""
        return BatchArchive(
            plan,
            client=self._upstream,
            api_key=api_key,
            limiter=self._limiter,
            concurrency=self._settings.download_concurrency,
            spool_dir=self.spool_dir,
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
