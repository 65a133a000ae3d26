"""Response classes and helpers for archives.

`stored_object_response` answers a complete object of the archive store: `Accept-Ranges`,
a strong `ETag`, `Last-Modified`, `Content-Length`; single, suffix and multiple ranges,
`If-Range`, `If-None-Match` and `If-Modified-Since` (304), 416 with the JSON error shape,
and optionally a redirect to a presigned URL of the object store. The Range rules are in
`app.services.ranges`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.core.errors import AppError
from app.services.ranges import (
    Unsatisfiable,
    http_date,
    if_range_holds,
    none_match,
    not_modified_since,
    parse_range,
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


# Headers a 304 repeats (RFC 9110 §15.4.5); the others describe a body it does not have.
_NOT_MODIFIED_HEADERS = ("ETag", "Last-Modified", "Cache-Control", "Vary")


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
    `last_modified` is the time to send and to compare `If-Range` dates with; default: the
    object's own.
    `redirect_ttl` set: when the store can presign URLs (S3), answer `302` to a URL valid that
    many seconds instead of sending the bytes (a `304` still wins). The object is opened before
    this returns, so a vanished object surfaces here, never after the status was sent.

    Raises:
        AppError: 416 (JSON error shape, `Content-Range: bytes */size`) when no requested range
            overlaps the object.
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
    if_none_match = request.headers.get("if-none-match")
    if none_match(if_none_match, etag) or (
        if_none_match is None
        and not_modified_since(request.headers.get("if-modified-since"), modified)
    ):
        kept = {name: common[name] for name in _NOT_MODIFIED_HEADERS if name in common}
        return Response(status_code=304, headers=kept)
    if redirect_ttl is not None:
        url = await store.presigned_url(info.key, expires_in=redirect_ttl)
        if url is not None:
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    ranges = _requested_ranges(request, etag=etag, last_modified=modified, size=size)
    body = _Body.of(ranges, size=size, media_type=media_type)
    all_headers = {**common, **body.headers}
    if request.method == "HEAD":
        return Response(status_code=body.status, headers=all_headers)
    chunks = await store.read(info.key, body.spans[0][0], body.spans[-1][1])
    if body.multipart is not None:
        chunks = _multipart(chunks, body.spans, *body.multipart)
    return StoredObjectResponse(chunks, status_code=body.status, headers=all_headers)


def _requested_ranges(
    request: Request, *, etag: str, last_modified: datetime, size: int
) -> list[tuple[int, int]] | None:
    """The byte ranges to send, or None for the whole object (no Range, or If-Range fails).

    Raises:
        AppError: 416 when no requested range overlaps the object.
    """
    range_header = request.headers.get("range")
    if range_header is None or not if_range_holds(
        request.headers.get("if-range"), etag=etag, last_modified=last_modified
    ):
        return None
    try:
        return parse_range(range_header, size)
    except Unsatisfiable:
        raise AppError(
            f"The archive is {size} bytes long; no requested range lies within it.",
            status_code=416,
            code="range_not_satisfiable",
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
        ) from None


@dataclass(frozen=True, slots=True)
class _Body:
    """What an answer sends: status, the spans of the object, their headers, and for several
    ranges the multipart part heads and closing delimiter."""

    status: int
    spans: list[tuple[int, int]]
    headers: dict[str, str]
    multipart: tuple[list[bytes], bytes] | None = None

    @classmethod
    def of(cls, ranges: list[tuple[int, int]] | None, *, size: int, media_type: str) -> _Body:
        if ranges is None:
            headers = {"Content-Length": str(size), "Content-Type": media_type}
            return cls(200, [(0, size)], headers)
        if len(ranges) == 1:
            start, end = ranges[0]
            headers = {
                "Content-Length": str(end - start),
                "Content-Range": f"bytes {start}-{end - 1}/{size}",
                "Content-Type": media_type,
            }
            return cls(206, ranges, headers)
        boundary = secrets.token_hex(13)
        parts = _part_heads(ranges, size=size, boundary=boundary, media_type=media_type)
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = sum(len(head) for head in parts) + sum(e - s for s, e in ranges) + len(tail)
        headers = {
            "Content-Length": str(length),
            "Content-Type": f"multipart/byteranges; boundary={boundary}",
        }
        return cls(206, ranges, headers, (parts, tail))


def _part_heads(
    ranges: list[tuple[int, int]], *, size: int, boundary: str, media_type: str
) -> list[bytes]:
    heads = []
    for index, (start, end) in enumerate(ranges):
        lead = "" if index == 0 else "\r\n"
        heads.append(
            f"{lead}--{boundary}\r\nContent-Type: {media_type}\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n".encode()
        )
    return heads


async def _multipart(
    chunks: AsyncIterator[bytes],
    spans: list[tuple[int, int]],
    heads: list[bytes],
    tail: bytes,
) -> AsyncIterator[bytes]:
    """The parts of `spans` cut from one read of `[spans[0][0], spans[-1][1])`: one version
    of the object, read once, in order (the spans are sorted and disjoint)."""
    try:
        position = spans[0][0]
        index = 0
        yield heads[0]
        async for chunk in chunks:
            chunk_start, chunk_end = position, position + len(chunk)
            position = chunk_end
            while index < len(spans):
                start, end = spans[index]
                lo, hi = max(start, chunk_start), min(end, chunk_end)
                if lo < hi:
                    yield chunk[lo - chunk_start : hi - chunk_start]
                if end > chunk_end:
                    break
                index += 1
                if index < len(spans):
                    yield heads[index]
        yield tail
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


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
        "description": "The archive from a byte on (HTTP Range; a broken download resumes "
        "with the bytes the unbroken one would have sent)",
        "content": {ZIP_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    },
}
