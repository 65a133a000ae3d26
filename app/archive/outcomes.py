"""What a download request gets (`Download`), and the `stream=false` answer: the whole
archive built into a temporary file first, under a bound."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio

from app.archive.stream import BatchArchive
from app.core import metrics
from app.core.errors import AppError, Unprocessable
from app.core.files import PRIVATE_DIR
from app.storage import ObjectInfo


@dataclass(slots=True)
class Download:
    """What to send: a status, headers, and where the body comes from (none for HEAD/304).

    At most one of `body`, `stored` and `path` is set. `stored` is a complete archive in the
    store, to be answered with its ranges; `path` is a temporary file the response must
    delete once sent, of which it sends `span` (`(start, end)`, end exclusive; None: all).
    """

    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes] | None = None
    stored: ObjectInfo | None = None
    path: Path | None = None
    span: tuple[int, int] | None = None
    archive: BatchArchive | None = field(default=None, repr=False)
    last_modified: datetime | None = None

    async def aclose(self) -> None:
        """Release whatever the body holds (idempotent; safe before or after sending)."""
        if self.body is not None:
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if self.archive is not None:
            await self.archive.aclose()


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
) -> Download:
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
    return Download(
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
