"""GET/HEAD /orders/{order_id}/images: every enhanced image of an order as one ZIP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from app.api.deps import (
    CacheDep,
    CredentialDep,
    LimiterDep,
    SettingsDep,
    SpoolDirDep,
    UpstreamDep,
)
from app.api.responses import (
    STREAMING_HEADERS,
    ZIP_MEDIA_TYPE,
    ZIP_RESPONSE_DOC,
    ZipStreamingResponse,
    archive_file_response,
)
from app.api.selection import SelectionDep, planned
from app.api.upstream import checked_order_id, fetch_order
from app.core import metrics
from app.core.errors import NotFound, Unprocessable, error_responses
from app.core.ratelimit import rate_limit
from app.core.security import Credential
from app.services.batch import BatchArchive, BatchPlan, NothingToDeliver
from app.services.cache import CacheWriter, cache_key
from app.services.naming import archive_filename, content_disposition
from app.services.options import DownloadOptions, ImageFormat

logger = logging.getLogger("app.batch")
router = APIRouter(tags=["download"])


def download_options(
    format: Annotated[
        ImageFormat, Query(description="Image format requested from Autoenhance")
    ] = "jpeg",
    quality: Annotated[int | None, Query(ge=1, le=90, description="Encoding quality")] = None,
    preview: Annotated[
        bool,
        Query(description="Free preview quality (default). false = full quality; costs credits"),
    ] = True,
    watermark: Annotated[bool | None, Query(description="Apply the watermark")] = None,
    max_width: Annotated[int | None, Query(ge=1, le=20_000, description="Max width, px")] = None,
    scale: Annotated[float | None, Query(gt=0, le=1, description="Scale factor 0-1")] = None,
    dev_mode: Annotated[
        bool, Query(description="Send x-dev-mode: true (try the flow without credits)")
    ] = False,
    images: SelectionDep = None,
) -> DownloadOptions:
    return DownloadOptions(
        format=format,
        quality=quality,
        preview=preview,
        watermark=watermark,
        max_width=max_width,
        scale=scale,
        dev_mode=dev_mode,
        images=images,
    )


OptionsDep = Annotated[DownloadOptions, Depends(download_options)]


def archive_key(plan: BatchPlan, credential: Credential) -> str:
    return cache_key(
        order_id=plan.order.order_id,
        version=plan.order.version_marker,
        options=plan.options.fingerprint(),
        owner=credential.owner,
    )


def archive_headers(plan: BatchPlan) -> dict[str, str]:
    filename = archive_filename(plan.order.name, plan.order.order_id)
    return {
        "Content-Disposition": content_disposition(filename),
        "X-Total-Images": str(len(plan.images)),
        "X-Ready-Images": str(len(plan.deliverable)),
    }


IMAGES_PATH = "/orders/{order_id}/images"


@router.get(
    IMAGES_PATH,
    response_class=ZipStreamingResponse,
    responses={**ZIP_RESPONSE_DOC, **error_responses(400, 401, 404, 416, 422, 429, 502, 503)},
    summary="Download every enhanced image of an order as one ZIP",
    operation_id="download_order_images",
    dependencies=[Depends(rate_limit("downloads"))],
)
async def download_order_images(
    order_id: str,
    request: Request,
    options: OptionsDep,
    credential: CredentialDep,
    settings: SettingsDep,
    upstream: UpstreamDep,
    limiter: LimiterDep,
    cache: CacheDep,
    spool_dir: SpoolDirDep,
    stream: Annotated[
        bool,
        Query(
            description="false = build first, then answer with Content-Length, "
            "X-Downloaded and X-Failed"
        ),
    ] = True,
    range_header: Annotated[str | None, Header(alias="range", include_in_schema=False)] = None,
) -> Response:
    """Stream a ZIP of the order's enhanced images, in order; a report lists skipped images."""
    started = time.monotonic()
    order_id = checked_order_id(order_id)
    order = await fetch_order(upstream, order_id, credential)
    if not order.images and options.images is None:
        raise NotFound("This order has no images yet.", code="empty_order")
    plan = planned(order, options)
    if len(plan.images) > settings.max_images_per_order:
        raise Unprocessable(
            f"This archive would hold {len(plan.images)} images; the limit per archive is "
            f"{settings.max_images_per_order}. Use an async job or select fewer images."
        )
    headers = archive_headers(plan)
    key = archive_key(plan, credential)

    cached = cache.get(key)
    if cached is not None:
        # A HEAD only looks at the headers: it is not an archive served.
        if request.method != "HEAD":
            metrics.ARCHIVES_SERVED.labels("cache").inc()
        return archive_file_response(
            cached,
            range_header=range_header,
            headers={
                **headers,
                "X-Downloaded": str(cached.meta.get("delivered", "")),
                "X-Failed": str(cached.meta.get("failed", "")),
            },
        )
    if request.method == "HEAD":
        return Response(media_type=ZIP_MEDIA_TYPE, headers={**headers, **STREAMING_HEADERS})
    if not plan.deliverable:
        raise _nothing_to_deliver(NothingToDeliver(plan.not_ready))

    archive = BatchArchive(
        plan,
        client=upstream,
        api_key=credential.api_key,
        limiter=limiter,
        concurrency=settings.download_concurrency,
        spool_dir=spool_dir,
        spool_memory_bytes=settings.spool_memory_bytes,
    )
    try:
        await archive.start()
    except NothingToDeliver as exc:
        _log_batch(plan, archive, started, "nothing_delivered")
        raise _nothing_to_deliver(exc) from None
    writer = cache.writer(
        key,
        last_modified=plan.modified,
        meta={"order_id": order_id, "total": len(plan.images)},
    )
    body = _stream(archive, writer, started)
    if stream:
        metrics.ARCHIVE_TTFB.observe(time.monotonic() - started)
        return ZipStreamingResponse(
            body, headers={**headers, **STREAMING_HEADERS}, on_close=archive.aclose
        )
    return await _buffered(archive, body, headers, spool_dir)


async def _stream(
    archive: BatchArchive, writer: CacheWriter, started: float
) -> AsyncIterator[bytes]:
    """Send the archive, tee it into the cache, and log one line when it ends."""
    outcome = "aborted"
    try:
        async for chunk in archive:
            writer.write(chunk)
            metrics.ARCHIVE_BYTES.inc(len(chunk))
            yield chunk
        outcome = "complete" if not archive.progress.skipped else "partial"
        # Only a complete archive is cached: a transient failure must not be replayed.
        if archive.progress.failed == len(archive.plan.not_ready):
            writer.commit_with(delivered=archive.progress.delivered, failed=archive.progress.failed)
        metrics.ARCHIVES_SERVED.labels("stream").inc()
    except BaseException as exc:
        outcome = "client_gone" if _is_disconnect(exc) else "failed"
        if outcome == "client_gone":
            metrics.CLIENT_ABORTS.inc()
        raise
    finally:
        writer.discard()
        await archive.aclose()
        _log_batch(archive.plan, archive, started, outcome)


def _is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError | GeneratorExit | OSError)


async def _buffered(
    archive: BatchArchive,
    body: AsyncIterator[bytes],
    headers: dict[str, str],
    spool_dir: Path,
) -> Response:
    """Build the whole archive on disk first, so the final counts can go in the headers."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=spool_dir, suffix=".zip", delete=False)
    try:
        async for chunk in body:
            handle.write(chunk)
        handle.close()
    except BaseException:
        handle.close()
        _unlink(handle.name)
        raise
    finally:
        await archive.aclose()
    metrics.ARCHIVE_TTFB.observe(0)
    return _TemporaryFileResponse(
        handle.name,
        media_type=ZIP_MEDIA_TYPE,
        headers={
            **headers,
            "X-Downloaded": str(archive.progress.delivered),
            "X-Failed": str(archive.progress.failed),
            "Cache-Control": "no-store",
        },
    )


class _TemporaryFileResponse(FileResponse):
    """A file that is deleted once sent, or once the client has gone."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            _unlink(str(self.path))


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


router.add_api_route(
    IMAGES_PATH,
    download_order_images,
    methods=["HEAD"],
    response_class=ZipStreamingResponse,
    responses={
        200: {"description": "The headers a download would get, without fetching any image"},
        **error_responses(400, 401, 404, 422, 429, 502, 503),
    },
    summary="Look at the download's headers without fetching images",
    operation_id="head_order_images",
    dependencies=[Depends(rate_limit("lookups"))],
)


def _nothing_to_deliver(exc: NothingToDeliver) -> Unprocessable:
    failures = [
        {"image_id": s.image_id, "image_name": s.image_name, "reason": s.reason}
        for s in exc.failures
    ]
    return Unprocessable(
        {
            "message": "No image of this order could be delivered. Images that are still "
            "processing become available once the order is processed; retry then.",
            "failures": failures,
        },
        code="nothing_to_deliver",
    )


def _log_batch(plan: BatchPlan, archive: BatchArchive, started: float, outcome: str) -> None:
    logger.info(
        "batch order=%s images=%d delivered=%d skipped=%d bytes=%d duration=%.3fs outcome=%s",
        plan.order.order_id,
        len(plan.images),
        archive.progress.delivered,
        archive.progress.failed,
        archive.progress.bytes_written,
        time.monotonic() - started,
        outcome,
        extra={
            "event": "batch",
            "order_id": plan.order.order_id,
            "images": len(plan.images),
            "delivered": archive.progress.delivered,
            "skipped": archive.progress.failed,
            "bytes": archive.progress.bytes_written,
            "duration_s": round(time.monotonic() - started, 3),
            "outcome": outcome,
        },
    )
