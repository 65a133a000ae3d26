"""Response classes and helpers for archives.

`stored_object_response` answers a complete object of the archive store, and
`TemporaryFileResponse` a `stream=false` archive built into a file: `Accept-Ranges`, a strong
`ETag`, `Last-Modified`, `Content-Length`, a single or suffix range, `If-Range` and
`If-None-Match` (304), 416 with the JSON error shape; a stored object optionally through a
redirect to a presigned URL of the object store. The HTTP rules are `app.archive.http_rules`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.archive.http_rules import (
    Conditions,
    Unsatisfiable,
    http_date,
    not_modified_headers,
    span_headers,
    unsatisfiable,
)
from app.storage import ArchiveStore, ObjectInfo

ZIP_MEDIA_TYPE = "application/zip"

# Headers that keep proxies and middleware from buffering or compressing a streamed archive.
STREAMING_HEADERS = {
    "X-Accel-Buffering": "no",
    "Cache-Control": "no-store",
    "Content-Encoding": "identity",
}


async def close_body(body: object) -> None:
    """Close a response's body iterator, whether it ran to its end, was abandoned or never
    started (a client that left); a failure while closing is not the client's concern."""
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


class ZipStreamingResponse(StreamingResponse):
    """A streamed `application/zip` body whose producer is always shut down.

    Shutting down matters: when the client goes away the body iterator is abandoned mid-way
    (or never started, if the client left before the first byte), and `on_close` is what
    cancels the in-flight upstream downloads and removes spooled files.
    """

    media_type = ZIP_MEDIA_TYPE

    def __init__(
        self,
        content: AsyncIterator[bytes],
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, media_type=ZIP_MEDIA_TYPE)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await close_body(self.body_iterator)
            if self._on_close is not None:
                await self._on_close()


class StoredObjectResponse(StreamingResponse):
    """Bytes read from the archive store; the read (and its lease) is always closed."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await close_body(self.body_iterator)


# Bytes read from a built archive file at a time.
FILE_CHUNK = 256 * 1024


class TemporaryFileResponse(StreamingResponse):
    """Bytes `span` (`(start, end)`, end exclusive; None: all) of a file that is deleted once
    sent, or once the client has gone."""

    def __init__(
        self,
        path: Path,
        *,
        status_code: int,
        headers: dict[str, str],
        span: tuple[int, int] | None,
    ) -> None:
        super().__init__(_file_chunks(path, span), status_code, headers, media_type=ZIP_MEDIA_TYPE)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await close_body(self.body_iterator)
            self.path.unlink(missing_ok=True)


async def _file_chunks(path: Path, span: tuple[int, int] | None) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        position, end = span if span is not None else (0, None)
        await file.seek(position)
        while end is None or position < end:
            chunk = await file.read(FILE_CHUNK if end is None else min(FILE_CHUNK, end - position))
            if not chunk:
                return
            position += len(chunk)
            yield chunk


async def stored_object_response(
    request: Request,
    store: ArchiveStore,
    info: ObjectInfo,
    *,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
    last_modified: datetime | None = None,
    media_type: str = ZIP_MEDIA_TYPE,
    redirect_ttl: float | None = None,
) -> Response:
    """Answer `request` (GET or HEAD) with the complete stored object `info`.

    `etag` is the strong entity tag to send (quoted); default: the object's own version.
    `last_modified` is the time to send; default: the object's own.
    `redirect_ttl` set: when the store can presign URLs (S3), answer `302` to a URL valid that
    many seconds instead of sending the bytes — but only once `If-None-Match` and `If-Range`
    were judged here against `etag`: a 304 wins, and a `Range` this service would not honour
    (If-Range not holding, or a range it ignores) is answered here with the whole object,
    since the object store knows neither this `etag` nor these rules. The object is opened
    before this returns, so a vanished object surfaces here, never after the status was sent.

    Raises:
        AppError: 416 (JSON error shape, `Content-Range: bytes */size`) when the requested
            range lies outside the object.
        ObjectMissing: the object is gone (evicted or deleted since `info` was read).
        StoreError: the store failed.
    """
    etag = etag or f'"{info.etag}"'
    modified = last_modified or info.last_modified
    size = info.size
    common = {
        **(headers or {}),
        "ETag": etag,
        "Last-Modified": http_date(modified),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    conditions = Conditions.from_headers(request.method, request.headers)
    if conditions.not_modified(etag):
        return Response(status_code=304, headers=not_modified_headers(common))
    try:
        span = conditions.span(etag, size)
    except Unsatisfiable:
        raise unsatisfiable(size, common) from None
    if redirect_ttl is not None and (conditions.range is None or span is not None):
        url = await store.presigned_url(info.key, expires_in=redirect_ttl)
        if url is not None:
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    status = 200 if span is None else 206
    all_headers = {**common, **span_headers(span, size), "Content-Type": media_type}
    if request.method == "HEAD":
        return Response(status_code=status, headers=all_headers)
    start, end = span if span is not None else (0, size)
    chunks = await store.read(info.key, start, end)
    return StoredObjectResponse(chunks, status_code=status, headers=all_headers)


ZIP_RESPONSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The ZIP archive: streamed, with ETag, Last-Modified and "
        "Accept-Ranges from the first byte; Content-Length once its size is known "
        "(a cached copy, stream=false, or a complete manifest)",
        "content": {ZIP_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            "X-Total-Images": {"description": "Images in the order", "schema": {"type": "integer"}},
            "X-Ready-Images": {
                "description": "Images processed and about to be fetched",
                "schema": {"type": "integer"},
            },
            "Content-Disposition": {
                "description": "RFC 6266 file name",
                "schema": {"type": "string"},
            },
            "ETag": {
                "description": "Strong tag naming the archive's bytes (order version, options, "
                "owner, format)",
                "schema": {"type": "string"},
            },
            "Accept-Ranges": {"description": "bytes", "schema": {"type": "string"}},
        },
    },
    206: {
        "description": "The archive from a byte on (HTTP Range, one range; a broken download "
        "resumes with the bytes the unbroken one would have sent)",
        "content": {ZIP_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    },
}
