"""A bounded on-disk cache of finished archives.

An archive is filed under a key derived from the order id, the order's version (its
`last_updated_at` and image statuses), the download options and the owner of the credential
that fetched it, so a changed order is never served stale and one caller never receives
another's archive. Only complete archives (every deliverable image fetched) are kept.

Writing goes to a temporary file beside the cache and is renamed into place when the archive
is complete, so readers in other workers never see half a file. When the disk fails (full,
read-only) the writer gives up quietly: the download itself goes on, the cache is skipped and
the reason logged. The cache stays under `ARCHIVE_CACHE_MAX_BYTES` by evicting the least
recently used archives (a hit refreshes the file's modification time).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from app.core import metrics

logger = logging.getLogger("app.cache")


@dataclass(frozen=True, slots=True)
class CachedArchive:
    path: Path
    size: int
    etag: str
    last_modified: datetime
    meta: dict[str, Any]


def cache_key(*, order_id: str, version: str, options: str, owner: str) -> str:
    material = "\n".join((order_id, version, options, owner))
    return hashlib.sha256(material.encode()).hexdigest()


class ArchiveCache:
    """Finished archives on disk, least recently used out."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        if self.enabled:
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: str) -> CachedArchive | None:
        """The archive filed under `key`, or None."""
        if not self.enabled:
            return None
        path = self.directory / f"{key}.zip"
        try:
            meta = json.loads((self.directory / f"{key}.json").read_text())
            stat = path.stat()
            os.utime(path)
        except (OSError, ValueError):
            metrics.CACHE_LOOKUPS.labels("miss").inc()
            return None
        metrics.CACHE_LOOKUPS.labels("hit").inc()
        return CachedArchive(
            path=path,
            size=stat.st_size,
            etag=f'"{key[:40]}"',  # the ETag streamed copies of this archive carry
            last_modified=datetime.fromisoformat(meta["last_modified"]),
            meta=meta,
        )

    def writer(self, key: str, *, last_modified: datetime, meta: dict[str, Any]) -> CacheWriter:
        return CacheWriter(self, key, last_modified=last_modified, meta=meta)

    def _commit(self, key: str, temp: Path, meta: dict[str, Any]) -> None:
        meta_temp = self.directory / f".{key}.json.tmp"
        meta_temp.write_text(json.dumps(meta))
        os.replace(temp, self.directory / f"{key}.zip")
        os.replace(meta_temp, self.directory / f"{key}.json")
        self._evict()

    def _evict(self) -> None:
        archives = []
        for path in self.directory.glob("*.zip"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                archives.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in archives)
        for _, size, path in sorted(archives):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                path.with_suffix(".json").unlink(missing_ok=True)
            total -= size


class CacheWriter:
    """Collects an archive's bytes as they stream; `commit()` files it, `discard()` drops it."""

    def __init__(
        self, cache: ArchiveCache, key: str, *, last_modified: datetime, meta: dict[str, Any]
    ) -> None:
        self._cache = cache
        self._key = key
        self._meta = {**meta, "last_modified": last_modified.isoformat()}
        self._file: IO[bytes] | None = None
        self._temp: Path | None = None
        if not cache.enabled:
            return
        try:
            fd, name = tempfile.mkstemp(dir=cache.directory, prefix=".partial-", suffix=".zip")
            self._file = os.fdopen(fd, "wb")
            self._temp = Path(name)
        except OSError as exc:
            self._give_up(exc)

    @property
    def active(self) -> bool:
        return self._file is not None

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(chunk)
        except OSError as exc:
            self._give_up(exc)

    def commit_with(self, **meta: Any) -> None:
        """File the archive, recording `meta` (e.g. delivered and failed counts) beside it."""
        self._meta.update(meta)
        self.commit()

    def commit(self) -> None:
        if self._file is None or self._temp is None:
            return
        try:
            self._file.close()
            self._file = None
            self._cache._commit(self._key, self._temp, self._meta)
        except OSError as exc:
            self._give_up(exc)

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._temp.unlink(missing_ok=True)
            self._temp = None

    def _give_up(self, exc: OSError) -> None:
        logger.warning("archive cache skipped: %s", exc.strerror or type(exc).__name__)
        self.discard()
