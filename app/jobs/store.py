"""Finished job archives, kept in the archive store under `jobs/<job id>.zip`.

Every node reaches them: with a local store, the directory (a disk, or NFS/EFS mounted by every
node); with `ARCHIVE_STORE=s3://…`, the bucket. So a job's archive written by an arq worker or
another web process is downloaded from any node.

Job archives have their own quota, `JOB_STORAGE_MAX_BYTES`, and are never evicted: an archive
lives until its job expires (the sweeper deletes it). A job that would take the quota past its
bound fails with `StorageFull` instead of evicting anything.

A runner writes synchronously (`write()`, as it iterates the archive) into a private
temporary file — in the store's own temporary directory for a local store, so publishing is a
rename; in the spool directory for object storage, uploaded on `commit()`. A failed `commit()`
leaves the file in place and may be called again. The writer holds an exclusive `flock` on its
file until it is discarded: a temporary file nobody holds a lock on belongs to a process that
died mid-job, and `remove_abandoned()` (every sweep) deletes it. While writing, every
chunk is charged against the room measured when the writer started (re-measured every
`RESCAN_BYTES` or when the room runs out); `commit()` checks the bound again against the
store as it is then, so archives committed meanwhile by other processes count too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO

import anyio.to_thread

from app.storage import ArchiveStore, LocalArchiveStore, ObjectInfo, StoreError, Usage

logger = logging.getLogger("app.jobs")

# Re-measure the store after this many bytes even when room is left: other jobs grow too.
RESCAN_BYTES = 8 * 1024 * 1024
NAMESPACE = "jobs"
# `.<job id>.<random>.partial`: the temporary files of job archive writers.
_PARTIAL = re.compile(r"\.[0-9a-f-]{36}\.[0-9a-f]{8}\.partial")


class StorageFull(Exception):
    """Writing on would take the job archives past JOB_STORAGE_MAX_BYTES."""


class DiskFull(StorageFull):
    """The disk of the temporary files (DATA_DIR) is full, or below DATA_DIR_MIN_FREE_BYTES."""


class JobArchives:
    """The archives of jobs in `store`; temporary files of object storage go to `spool_dir`."""

    def __init__(self, store: ArchiveStore, *, spool_dir: Path, min_free: int = 0) -> None:
        self.store = store
        self.min_free = min_free
        self.quota = store.quota_of(f"{NAMESPACE}/x")
        self._local = store if isinstance(store, LocalArchiveStore) else None
        self._temp_dir = self._local.temp_dir if self._local is not None else spool_dir
        self._temp_dir.mkdir(parents=True, exist_ok=True)
        self._writing: dict[int, int] = {}  # id(writer) -> bytes written, this process
        self._used: int | None = None  # last measurement of committed job archives
        self._background: set[asyncio.Task[None]] = set()

    @property
    def max_bytes(self) -> int | None:
        return self.quota.max_bytes

    @staticmethod
    def key(job_id: str) -> str:
        return f"{NAMESPACE}/{job_id}.zip"

    @staticmethod
    def job_id_of(key: str) -> str | None:
        """The job id of archive `key`, or None for a key that is no job archive."""
        name = key.removeprefix(f"{NAMESPACE}/")
        if name == key or "/" in name or not name.endswith(".zip"):
            return None
        return name.removesuffix(".zip") or None

    async def stat(self, job_id: str) -> ObjectInfo | None:
        """The stored archive, or None.

        Raises:
            StoreError: the store failed.
        """
        return await self.store.stat(self.key(job_id))

    def writer(self, job_id: str) -> JobArchiveWriter:
        """A writer of the job's archive.

        Raises:
            DiskFull: the temporary files' disk is below its free-space floor.
        """
        self.check_disk()
        try:
            return JobArchiveWriter(self, job_id)
        except OSError as exc:
            raise self._disk_full(exc) from exc

    def check_disk(self) -> None:
        """Raises `DiskFull` when the temporary files' disk has less than `min_free` bytes free."""
        try:
            free = shutil.disk_usage(self._temp_dir).free
        except OSError:
            return  # the write itself reports a real problem
        if free < self.min_free:
            raise DiskFull(
                f"the disk of DATA_DIR is full: {free} bytes free at {self._temp_dir}, "
                f"DATA_DIR_MIN_FREE_BYTES is {self.min_free}"
            )

    def _disk_full(self, exc: OSError) -> Exception:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(f"the disk of DATA_DIR is full: {exc.strerror} at {self._temp_dir}")
        return exc

    async def delete(self, job_id: str) -> None:
        """Delete the job's archive. Idempotent.

        Raises:
            StoreError: the store failed.
        """
        await self.store.delete(self.key(job_id))
        self._refresh_soon()

    def remove(self, job_id: str) -> None:
        """`delete()` for synchronous callers: at once with a local store, else in the
        background (a failure is logged; the sweeper deletes the archive when the job expires)."""
        if self._local is not None:
            self._local.path(self.key(job_id)).unlink(missing_ok=True)
            return
        task = asyncio.get_running_loop().create_task(self._delete_logged(job_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _delete_logged(self, job_id: str) -> None:
        try:
            await self.delete(job_id)
        except StoreError as exc:
            logger.warning("job %s: deleting its archive failed: %s", job_id, exc)

    async def remove_abandoned(self) -> int:
        """Delete temporary files of writers whose process died (no lock held on them);
        returns how many."""
        return await anyio.to_thread.run_sync(self._remove_abandoned_sync)

    def _remove_abandoned_sync(self) -> int:
        removed = 0
        with contextlib.suppress(OSError), os.scandir(self._temp_dir) as entries:
            for entry in entries:
                if not _PARTIAL.fullmatch(entry.name):
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDONLY)
                except OSError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live writer holds it
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
                        logger.warning("removed %s, left by a job run that died", entry.name)
                finally:
                    os.close(fd)
        return removed

    async def refresh(self) -> list[Usage]:
        """Re-measure the committed job archives (the sweeper calls this every pass); returns
        them.

        Raises:
            StoreError: the store failed.
        """
        archives = await self.store.objects(NAMESPACE)
        self._used = sum(item.size for item in archives)
        return archives

    def room(self, *, excluding: JobArchiveWriter | None = None) -> int:
        """Bytes left under the bound, other writers of this process counted; synchronous.

        A local store is measured now; object storage uses the last measurement, refreshed in
        the background (commit checks against the store itself).
        """
        if self.max_bytes is None:
            return 1 << 62
        if self._local is not None:
            self._used = self._local.used_bytes_sync(self.quota.namespaces)
        else:
            self._refresh_soon()
        others = sum(n for key, n in self._writing.items() if key != id(excluding))
        return self.max_bytes - (self._used or 0) - others

    def _refresh_soon(self) -> None:
        if any(task.get_name() == "job-archives-refresh" for task in self._background):
            return
        with contextlib.suppress(RuntimeError):  # no running loop: measured at commit
            task = asyncio.get_running_loop().create_task(
                self._refresh_logged(), name="job-archives-refresh"
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except StoreError as exc:
            logger.warning("measuring the job archives failed: %s", exc)

    async def aclose(self) -> None:
        """Wait for background deletions and measurements."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _full(self, size: int) -> StorageFull:
        return StorageFull(
            f"the archive store is full: JOB_STORAGE_MAX_BYTES is {self.max_bytes}"
            f" bytes and this archive had reached {size} bytes"
        )


class JobArchiveWriter:
    """Writes one job archive under the bound; `commit()` publishes it, `discard()` drops it."""

    def __init__(self, archives: JobArchives, job_id: str) -> None:
        self._archives = archives
        self.job_id = job_id
        self._temp = archives._temp_dir / f".{job_id}.{secrets.token_hex(4)}.partial"
        fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until discard(): this file is not abandoned
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        self._flushed = False
        self.size = 0
        archives._writing[id(self)] = 0
        self._room = archives.room(excluding=self)
        self._since_scan = 0

    def write(self, chunk: bytes) -> None:
        """Append `chunk`.

        Raises:
            StorageFull: the job archives would exceed their bound (nothing of `chunk` is
                written).
            DiskFull: the temporary file's disk is full or below its free-space floor.
        """
        assert self._file is not None and not self._flushed, "writer is closed"
        self._room -= len(chunk)
        self._since_scan += len(chunk)
        if self._room < 0 or self._since_scan >= RESCAN_BYTES:
            self._room = self._archives.room(excluding=self) - self.size - len(chunk)
            self._since_scan = 0
            if self._room < 0:
                raise self._archives._full(self.size)
            self._archives.check_disk()
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise self._archives._disk_full(exc) from exc
        self.size += len(chunk)
        self._archives._writing[id(self)] = self.size

    async def commit(self) -> ObjectInfo:
        """Flush, then publish into the store; returns the stored archive. After a
        `StoreError` the file is kept and `commit()` may be called again.

        Raises:
            StorageFull: the bound does not hold the archive now (nothing is stored).
            StoreError: the store failed.
        """
        file = self._file
        assert file is not None, "writer is closed"
        if not self._flushed:
            try:
                await anyio.to_thread.run_sync(self._flush, file)
            except OSError as exc:
                raise self._archives._disk_full(exc) from exc
            self._flushed = True
        self._archives._writing.pop(id(self), None)
        info = await self._archives.store.put_file(self._archives.key(self.job_id), self._temp)
        if info is None:
            raise self._archives._full(self.size)
        self._file = None  # published: what is left of the file is the caller's to discard
        with contextlib.suppress(OSError):
            file.close()
        if self._archives._used is not None:
            self._archives._used += info.size
        return info

    @staticmethod
    def _flush(file: IO[bytes]) -> None:
        file.flush()
        os.fsync(file.fileno())

    def discard(self) -> None:
        """Delete the temporary file, then close it (and so release its lock). Idempotent;
        harmless after `commit()`."""
        self._archives._writing.pop(id(self), None)
        self._temp.unlink(missing_ok=True)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
