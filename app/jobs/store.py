"""Finished job archives on a directory every node reaches (`ARCHIVE_STORE`).

A job writes `.<job id>.<token>.partial` beside the final name, fsyncs it and renames it to
`<job id>.zip`, so a reader in any process or on any machine sees either nothing or the whole
archive. Disk use of the store (finished archives plus partial ones being written) is kept
under `JOB_STORAGE_MAX_BYTES` while writing: sizes are only known as images arrive, so every
write is charged against the room measured at the last scan, and the directory is re-scanned
when that room runs out or every `RESCAN_BYTES` (other jobs write too).

Only a directory is supported: it may be a local disk (one machine) or a network file system
mounted by every node (NFS, EFS, a Render disk shared by a web service and its workers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO

import anyio.to_thread

# Re-measure the store after this many bytes even when room is left: other jobs grow too.
RESCAN_BYTES = 8 * 1024 * 1024


class StorageFull(Exception):
    """Writing on would take the store past JOB_STORAGE_MAX_BYTES."""


class ArchiveStore:
    """Archives of jobs, one file each, under `directory`. `max_bytes=0` means no bound."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.zip"

    def used_bytes(self) -> int:
        """Bytes held by the store now, partial archives included."""
        total = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        return total

    def writer(self, job_id: str) -> ArchiveWriter:
        return ArchiveWriter(self, job_id)

    def remove(self, job_id: str) -> None:
        """Delete the job's archive and any partial one of it. Idempotent."""
        self.path(job_id).unlink(missing_ok=True)
        for partial in self.directory.glob(f".{job_id}.*.partial"):
            partial.unlink(missing_ok=True)


class ArchiveWriter:
    """Writes one archive under the storage bound; `commit()` publishes it, `discard()` drops it."""

    def __init__(self, store: ArchiveStore, job_id: str) -> None:
        self._store = store
        self._final = store.path(job_id)
        self._temp = store.directory / f".{job_id}.{secrets.token_hex(4)}.partial"
        self._file: IO[bytes] | None = open(self._temp, "wb")  # noqa: SIM115
        self.size = 0
        self._room = self._measure_room()
        self._since_scan = 0

    def _measure_room(self) -> int:
        if not self._store.max_bytes:
            return 1 << 62
        return self._store.max_bytes - self._store.used_bytes()

    def write(self, chunk: bytes) -> None:
        """Append `chunk`.

        Raises:
            StorageFull: the store would exceed its bound (nothing of `chunk` is written).
        """
        assert self._file is not None, "writer is closed"
        self._room -= len(chunk)
        self._since_scan += len(chunk)
        if self._room < 0 or self._since_scan >= RESCAN_BYTES:
            self._room = self._measure_room() - len(chunk)
            self._since_scan = 0
            if self._room < 0:
                raise StorageFull(
                    f"the archive store is full: JOB_STORAGE_MAX_BYTES is {self._store.max_bytes}"
                    f" bytes and this archive had reached {self.size} bytes"
                )
        self._file.write(chunk)
        self.size += len(chunk)

    async def commit(self) -> Path:
        """Flush to disk and rename into place; returns the archive's path."""
        file, self._file = self._file, None
        assert file is not None, "writer is closed"
        await anyio.to_thread.run_sync(self._sync_and_rename, file)
        return self._final

    def _sync_and_rename(self, file: IO[bytes]) -> None:
        with file:
            file.flush()
            os.fsync(file.fileno())
        os.replace(self._temp, self._final)
        with contextlib.suppress(OSError):
            directory = os.open(self._store.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def discard(self) -> None:
        """Close and delete the partial file. Idempotent; harmless after `commit()`."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            self._temp.unlink(missing_ok=True)
