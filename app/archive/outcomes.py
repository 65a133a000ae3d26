"""What a download request gets: a closed set of answers, each knowing its status, headers and
body, which the route matches once to make the HTTP response; and two of the ways to get one,
`built_download` (`stream=false`: the whole archive built into a temporary file first, under a
bound) and `stored_answer` (a complete object of the archive store, with the HTTP rules of
`app.archive.http_rules` applied and its bytes opened).

Answers::

    StoredObject   a complete object of the store, opened: `chunks` of the span to send
    Redirect       a presigned URL of such an object (ARCHIVE_REDIRECT)
    Streamed       an archive produced as it is sent (fresh, resumed or replayed)
    BuiltFile      a `stream=false` archive in a temporary file, of which `span` is sent
    NoBody         a 304, or a HEAD: the headers the GET would get
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio

from app.archive.http_rules import (
    Conditions,
    Unsatisfiable,
    http_date,
    not_modified_headers,
    span_headers,
    unsatisfiable,
)
from app.archive.stream import BatchArchive
from app.core import metrics
from app.core.errors import AppError, Unprocessable
from app.core.files import PRIVATE_DIR
from app.storage import ArchiveStore, ObjectInfo

ZIP_MEDIA_TYPE = "application/zip"

# Headers that keep proxies and middleware from buffering or compressing an archive that is
# produced as it is sent (a HEAD of one gets them too: the headers its GET would get).
STREAMING_HEADERS = {
    "X-Accel-Buffering": "no",
    "Cache-Control": "no-store",
    "Content-Encoding": "identity",
}


async def _close(body: object) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


@dataclass(slots=True, kw_only=True)
class StoredObject:
    """A complete object of the archive store, already opened (a vanished object surfaced
    before this was made): `chunks` are the bytes to send."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes] = field(repr=False)

    async def aclose(self) -> None:
        """Close the read (and its lease); idempotent."""
        await _close(self.chunks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """A presigned URL of a complete stored object, answered `302`."""

    url: str

    async def aclose(self) -> None:
        """Nothing is held."""


@dataclass(slots=True, kw_only=True)
class Streamed:
    """An archive produced as it is sent: `body` its bytes, `archive` what produces them."""

    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes] = field(repr=False)
    archive: BatchArchive = field(repr=False)

    async def aclose(self) -> None:
        """Release whatever the body holds (idempotent; safe before or after sending)."""
        await _close(self.body)
        await self.archive.aclose()


@dataclass(slots=True, kw_only=True)
class BuiltFile:
    """A whole archive built into the temporary file `path` (the response deletes it once
    sent), of which `span` is sent (`(start, end)`, end exclusive; None: all)."""

    status: int
    headers: dict[str, str]
    path: Path
    span: tuple[int, int] | None = None

    async def aclose(self) -> None:
        """Remove the file (for an answer that will not be sent)."""
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class NoBody:
    """A `304`, or the answer to a HEAD: the headers the GET would get, no body (without
    `Content-Length` when the size is not known before the bytes are made)."""

    status: int
    headers: dict[str, str]

    async def aclose(self) -> None:
        """Nothing is held."""


Download = StoredObject | Redirect | Streamed | BuiltFile | NoBody


class ArchiveTooLarge(Unprocessable):
    code = "archive_too_large"


class StorageFull(AppError):
    """The service's disk is full: nothing was sent (after the first byte the connection is
    dropped instead)."""

    status_code = 507
    code = "insufficient_storage"


# What a full disk (or an exhausted quota) raises.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


async def built_download(
    archive: BatchArchive,
    body: AsyncIterator[bytes],
    headers: dict[str, str],
    *,
    spool_dir: Path,
    max_bytes: int,
) -> BuiltFile:
    """Build the whole archive into a temporary file first (`stream=false`).

    Cancelling the caller (the client left) stops the build and removes the file.

    Raises:
        ArchiveTooLarge: the archive grew past `max_bytes` (ARCHIVE_BUILD_MAX_BYTES; 0 = no
            bound).
    """
    await anyio.Path(spool_dir).mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=spool_dir, suffix=".zip", delete=False)
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if max_bytes and size > max_bytes:
                raise ArchiveTooLarge(
                    f"This archive is larger than {max_bytes} bytes, the limit for "
                    "stream=false (ARCHIVE_BUILD_MAX_BYTES). Download it streamed or "
                    "through an async job."
                )
            handle.write(chunk)
        handle.close()
    except BaseException:
        handle.close()
        _unlink(handle.name)
        raise
    finally:
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()
        await archive.aclose()
    metrics.ARCHIVE_TTFB.observe(0)
    return BuiltFile(
        status=200,
        headers={
            **headers,
            "Content-Length": str(size),
            "X-Downloaded": str(archive.progress.delivered),
            "X-Failed": str(archive.progress.failed),
            "Cache-Control": "no-store",
        },
        path=Path(handle.name),
    )


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def stored_answer(
    store: ArchiveStore,
    info: ObjectInfo,
    conditions: Conditions,
    *,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
    last_modified: datetime | None = None,
    redirect_ttl: float | None = None,
) -> StoredObject | Redirect | NoBody:
    """The answer to a request (`conditions`) for the complete stored object `info`.

    `etag` is the strong entity tag to send (quoted); default: the object's own version.
    `last_modified` is the time to send; default: the object's own.
    `redirect_ttl` set: when the store can presign URLs (S3), a `Redirect` to a URL valid that
    many seconds instead of the bytes, but only once `If-None-Match` and `If-Range` were
    judged here against `etag`: a 304 wins, and a `Range` this service would not honour
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
    if conditions.not_modified(etag):
        return NoBody(status=304, headers=not_modified_headers(common))
    try:
        span = conditions.span(etag, size)
    except Unsatisfiable:
        raise unsatisfiable(size, common) from None
    if redirect_ttl is not None and (conditions.range is None or span is not None):
        url = await store.presigned_url(info.key, expires_in=redirect_ttl)
        if url is not None:
            return Redirect(url=url)
    status = 200 if span is None else 206
    all_headers = {**common, **span_headers(span, size), "Content-Type": ZIP_MEDIA_TYPE}
    if conditions.method == "HEAD":
        return NoBody(status=status, headers=all_headers)
    start, end = span if span is not None else (0, size)
    return StoredObject(
        status=status, headers=all_headers, chunks=await store.read(info.key, start, end)
    )
