"""Response classes for archives: a streamed archive (`ZipStreamingResponse`), bytes read from
the archive store (`StoredObjectResponse`), a `stream=false` archive built into a file
(`TemporaryFileResponse`), and the OpenAPI description of an archive answer. Which answer gets
which class is decided once, in `app.api.archives.download_response`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.archive.outcomes import ZIP_MEDIA_TYPE


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
