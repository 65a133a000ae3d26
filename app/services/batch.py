"""The batch pipeline: one order in, one deterministic ZIP out, streamed as it is fetched.

How it works:

* `plan_batch` reads the order, decides which images can be delivered (status `processed`),
  and gives every image its safe, unique entry name — before any byte is sent.
* `BatchArchive` downloads the deliverable images concurrently (`DOWNLOAD_CONCURRENCY` in
  flight for this request, a prefetch window of twice that ahead of the writer, and a slot of
  the process-wide `FairLimiter` for every fetch) into spooled temporary files, and writes
  them into the archive strictly in the order's image order.
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
import tempfile
import unicodedata
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import anyio

from app.core import metrics
from app.services.archive import ZipWriter
from app.services.fairness import FairLimiter
from app.services.naming import extension_for_format, safe_entry_names
from app.services.options import DownloadOptions
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError
from app.upstream.models import Image, Order

logger = logging.getLogger("app.batch")

REPORT_NAME = "_download_report.txt"
# Bytes read from a spooled image per chunk written to the client.
WRITE_CHUNK = 1024 * 1024
# Images may be fetched this many times DOWNLOAD_CONCURRENCY ahead of the one being written.
PREFETCH_FACTOR = 2
# Entry time when neither the image nor the order carries one (the DOS epoch).
FALLBACK_TIME = datetime(1980, 1, 1, tzinfo=UTC)


class UnknownImages(ValueError):
    """A selection names images that are not in the order; `image_ids` lists them."""

    def __init__(self, image_ids: list[str]) -> None:
        super().__init__("not in this order: " + ", ".join(image_ids))
        self.image_ids = image_ids


class NothingToDeliver(Exception):
    """No image of the order could be delivered; `failures` says why for each."""

    def __init__(self, failures: list[Skipped]) -> None:
        super().__init__(f"none of {len(failures)} images could be delivered")
        self.failures = failures


@dataclass(frozen=True, slots=True)
class PlannedImage:
    image: Image
    entry_name: str
    ready: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    image_id: str
    image_name: str | None
    reason: str


@dataclass(slots=True)
class BatchPlan:
    """What an archive of an order will hold, decided before the first byte."""

    order: Order
    options: DownloadOptions
    images: list[PlannedImage]

    @property
    def deliverable(self) -> list[PlannedImage]:
        return [p for p in self.images if p.ready]

    @property
    def not_ready(self) -> list[Skipped]:
        return [
            Skipped(p.image.image_id, p.image.image_name, p.image.not_ready_reason)
            for p in self.images
            if not p.ready
        ]

    @property
    def modified(self) -> datetime:
        """The archive's own time: the order's last change (never the time of the request)."""
        return self.order.last_updated_at or self.order.created_at or FALLBACK_TIME

    def entry_time(self, image: Image) -> datetime:
        return image.added_at or self.modified


def plan_batch(order: Order, options: DownloadOptions) -> BatchPlan:
    """Name every image of `order` and mark which can be downloaded now.

    With a selection (`options.images`) the plan holds just those images, in the order's own
    order. Entry names are given over the whole order first, so an image has the same name in
    a selection's archive as in the full one.

    Raises:
        UnknownImages: the selection names ids the order does not hold (before any fetch).
    """
    extension = extension_for_format(options.format)
    names = safe_entry_names(
        [(img.image_name, img.image_id) for img in order.images],
        extension=extension,
        reserved=[REPORT_NAME],
    )
    planned = [
        PlannedImage(image=img, entry_name=name, ready=img.is_ready)
        for img, name in zip(order.images, names, strict=True)
    ]
    if options.images is not None:
        held = {p.image.image_id for p in planned}
        unknown = [image_id for image_id in options.images if image_id not in held]
        if unknown:
            raise UnknownImages(unknown)
        chosen = set(options.images)
        planned = [p for p in planned if p.image.image_id in chosen]
    return BatchPlan(order=order, options=options, images=planned)


@dataclass(slots=True)
class _Fetched:
    spool: IO[bytes]
    size: int
    crc32: int


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

    Call `start()` first, then iterate; always `aclose()` (the response class does), which
    cancels outstanding downloads and removes spooled files.
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
        on_progress: Callable[[BatchProgress], None] | None = None,
    ) -> None:
        self.plan = plan
        self._client = client
        self._api_key = api_key
        self._limiter = limiter
        self._concurrency = asyncio.Semaphore(concurrency)
        self._window = asyncio.Semaphore(concurrency * PREFETCH_FACTOR)
        self._spool_dir = spool_dir
        self._spool_memory = spool_memory_bytes
        self._on_progress = on_progress
        self._deliverable = plan.deliverable
        self._results: list[asyncio.Future[_Fetched]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._producer: asyncio.Task[None] | None = None
        self._first = 0  # index into _deliverable of the first image in hand
        self.progress = BatchProgress(total=len(plan.images))
        self.progress.skipped.extend(plan.not_ready)
        self._closed = False
        self._writing: IO[bytes] | None = None

    async def start(self) -> None:
        """Begin fetching and wait until the first deliverable image (in order) is in hand.

        Raises:
            NothingToDeliver: no image can be delivered (none ready, or every fetch failed).
        """
        loop = asyncio.get_running_loop()
        self._results = [loop.create_future() for _ in self._deliverable]
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        self._producer = asyncio.create_task(self._produce(), name="batch-producer")
        try:
            for index, future in enumerate(self._results):
                try:
                    await asyncio.shield(future)
                except UpstreamError as exc:
                    self._skip(self._deliverable[index], exc)
                    self._window.release()
                    continue
                self._first = index
                return
        except BaseException:
            # Cancelled (the client left) or broken while waiting: stop every download.
            await self.aclose()
            raise
        await self.aclose()
        raise NothingToDeliver(self.progress.skipped)

    async def _produce(self) -> None:
        lane = object()
        for index, planned in enumerate(self._deliverable):
            await self._window.acquire()
            await self._concurrency.acquire()
            task = asyncio.create_task(
                self._fetch(index, planned, lane), name=f"batch-fetch-{index}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, index: int, planned: PlannedImage, lane: object) -> None:
        future = self._results[index]
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(
            max_size=self._spool_memory, dir=str(self._spool_dir)
        )
        try:
            async with self._limiter.slot(lane):
                result = await self._client.download_enhanced(
                    planned.image.image_id,
                    spool,
                    options=self.plan.options,
                    api_key=self._api_key,
                )
        except UpstreamError as exc:
            spool.close()
            if not future.done():
                future.set_exception(exc)
        except BaseException:
            spool.close()
            if not future.done():
                future.cancel()
            raise
        else:
            if future.done():  # the archive was closed meanwhile
                spool.close()
            else:
                future.set_result(_Fetched(spool, result.size, result.crc32))
        finally:
            self._concurrency.release()

    def _skip(self, planned: PlannedImage, exc: UpstreamError) -> None:
        reason = exc.message
        logger.info("skipping image %s: %s", planned.image.image_id, reason)
        metrics.IMAGES_SKIPPED.labels(type(exc).__name__).inc()
        self.progress.skipped.append(
            Skipped(planned.image.image_id, planned.image.image_name, reason)
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        writer = ZipWriter()
        try:
            for index in range(self._first, len(self._deliverable)):
                planned = self._deliverable[index]
                try:
                    fetched = await self._results[index]
                except UpstreamError as exc:
                    self._skip(planned, exc)
                    self._window.release()
                    continue
                self._writing = fetched.spool
                try:
                    yield writer.local_header(
                        planned.entry_name,
                        size=fetched.size,
                        crc32=fetched.crc32,
                        modified=self.plan.entry_time(planned.image),
                    )
                    fetched.spool.seek(0)
                    while chunk := fetched.spool.read(WRITE_CHUNK):
                        writer.data_written(len(chunk))
                        self.progress.bytes_written += len(chunk)
                        yield chunk
                finally:
                    fetched.spool.close()
                    self._writing = None
                    self._window.release()
                self.progress.delivered += 1
                metrics.IMAGES_DELIVERED.inc()
                if self._on_progress is not None:
                    self._on_progress(self.progress)
            if self.progress.skipped:
                report = render_report(self.plan, self.progress.skipped)
                yield writer.local_header(
                    REPORT_NAME,
                    size=len(report),
                    crc32=zlib.crc32(report),
                    modified=self.plan.modified,
                )
                writer.data_written(len(report))
                yield report
            yield writer.finish()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel outstanding downloads and release every spooled image. Idempotent.

        The spools are released before anything is awaited, and the wait for the cancelled
        downloads to unwind is shielded: a caller that is itself being cancelled (anyio
        cancels again at every await of a cancelled scope) still leaves nothing open.
        """
        if self._closed:
            return
        self._closed = True
        pending: list[asyncio.Task[None]] = list(self._tasks)
        if self._producer is not None:
            pending.append(self._producer)
        for task in pending:
            task.cancel()
        if self._writing is not None:
            self._writing.close()
        for future in self._results:
            if not future.done():
                future.cancel()  # a download finishing later sees this and closes its spool
            elif not future.cancelled() and future.exception() is None:
                future.result().spool.close()
        if pending:
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*pending, return_exceptions=True)


def render_report(plan: BatchPlan, skipped: list[Skipped]) -> bytes:
    """The text of `_download_report.txt`: every skipped image, why, and how to recover.

    Deterministic: the same order state gives the same text (no clock in it). Names, ids and
    reasons come from the upstream, so each is written on its own line with every line
    break and control character escaped (see `printable`): one name cannot forge lines.
    """
    order = plan.order
    order_id = printable(order.order_id)
    lines = [
        f"Download report for order {order_id}"
        + (f" ({printable(order.name)})" if order.name else ""),
        "",
        f"{len(plan.images) - len(skipped)} of {len(plan.images)} images are in this archive.",
        f"{len(skipped)} could not be included:",
        "",
    ]
    for item in skipped:
        name = printable(item.image_name) if item.image_name else "(no name)"
        lines.append(f"- {printable(item.image_id)}  {name}")
        lines.append(f"    reason: {printable(item.reason)}")
    lines += [
        "",
        "How to recover:",
        "- Images that are still processing: wait until the order is processed, then download",
        f"  the batch again: GET /orders/{order_id}/images",
        "- Images that failed to download: retry the batch; the download is deterministic, so",
        "  the images that were already fine come out identical.",
        "- One image alone: GET /v3/images/<image id>/enhanced on the Autoenhance API.",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


# Characters that end, rewrite or reorder a line: C0/C1 controls and DEL, format characters
# (bidirectional overrides among them), line and paragraph separators, lone surrogates.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Format characters that scripts need inside words (Persian, Indic, emoji sequences).
_JOINERS = frozenset("\u200c\u200d")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` on one line: line breaks and control characters as Python-style escapes."""
    out = []
    for char in text:
        if unicodedata.category(char) not in _UNPRINTABLE_CATEGORIES or char in _JOINERS:
            out.append(char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


@contextlib.asynccontextmanager
async def opened(archive: BatchArchive) -> AsyncIterator[BatchArchive]:
    """`start()` the archive and guarantee `aclose()`."""
    try:
        await archive.start()
        yield archive
    finally:
        await archive.aclose()
