"""The store on a local directory (or one every node mounts: NFS, EFS).

Layout: `<root>/<key>` for every object, `<root>/.tmp/` for objects being written. Directories
are created 0700 and files 0600: archives hold customers' images.

Writes go to a temporary file that is fsynced and renamed into place, so a reader in any
process sees either the old object or the whole new one. The last access, which eviction
orders by, is the file's atime, set explicitly on every read (so `noatime` mounts work too);
the mtime stays the commit time and, with size and inode, makes the version token.

Plain files rather than obstore's `LocalStore`: that one creates files with the process umask
and its "last modified" is the only timestamp it reports, which would leave no room for an
access time that does not change the object's version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import anyio.to_thread

from app.storage._base import DEFAULT_MIN_IDLE, ArchiveStore
from app.storage._types import ObjectInfo, ObjectMissing, Quota, StoreError, Usage
from app.storage._writer import Upload

# Bytes read per worker-thread hop while streaming a file: the hand-off to the thread costs
# more than moving the bytes at small sizes (serving a cached archive read in 64 kB pieces
# spent 1.43 CPU-s/GB, in 1 MiB pieces 0.35), and one MiB per request stays a small buffer.
READ_CHUNK = 1024 * 1024
# A temporary file untouched this long belongs to a writer that died: removed by the next
# eviction pass.
STALE_TEMP_SECONDS = 6 * 3600
TEMP_DIR = ".tmp"


def _info(key: str, stat: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=stat.st_size,
        last_modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        etag=f"{stat.st_mtime_ns:x}-{stat.st_size:x}-{stat.st_ino:x}",
    )


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _store_error(exc: OSError) -> StoreError:
    return StoreError(exc.strerror or type(exc).__name__)


class LocalArchiveStore(ArchiveStore):
    """Objects as files under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        quotas: Sequence[Quota],
        min_idle: float = DEFAULT_MIN_IDLE,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__(quotas=quotas, min_idle=min_idle, request_timeout=request_timeout)
        self.root = root
        self._temp = root / TEMP_DIR
        self._mkdir(self._temp)

    @property
    def description(self) -> str:
        return f"directory {self.root}"

    def path(self, key: str) -> Path:
        """The file that holds `key` once committed (it may not exist)."""
        return self.root / key

    @staticmethod
    def _mkdir(directory: Path) -> None:
        """Create `directory` and any missing parent, each 0700 (existing ones are kept)."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            if directory.parent == directory:
                break
            directory = directory.parent
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)

    async def _stat(self, key: str) -> ObjectInfo | None:
        try:
            stat = await anyio.to_thread.run_sync(os.stat, self.path(key))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _store_error(exc) from exc
        return _info(key, stat)

    async def _stream(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        opened: list[IO[bytes]] = []

        def open_file() -> IO[bytes]:
            file = open(self.path(key), "rb")  # closed by _FileChunks
            opened.append(file)
            return file

        try:
            file = await anyio.to_thread.run_sync(open_file)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise _store_error(exc) from exc
        except BaseException:
            # A caller cancelled while the worker thread opened the file never sees it.
            for leftover in opened:
                leftover.close()
            raise
        return _FileChunks(file, start, end)

    async def _put_small(self, key: str, data: bytes) -> ObjectInfo:
        # No fsync: a manifest is rewritten often and only needs readers never to see half.
        return await anyio.to_thread.run_sync(self._put_sync, key, data)

    def _put_sync(self, key: str, data: bytes) -> ObjectInfo:
        temp = self._temp_name()
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            final = self.path(key)
            self._mkdir(final.parent)
            os.replace(temp, final)
            return _info(key, os.stat(final))
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise _store_error(exc) from exc

    def _temp_name(self) -> Path:
        return self._temp / f"{secrets.token_hex(8)}.partial"

    async def _open_upload(self, key: str) -> Upload:
        temp = self._temp_name()
        try:
            fd = await anyio.to_thread.run_sync(
                os.open, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
            )
        except OSError as exc:
            raise _store_error(exc) from exc
        return _FileUpload(self, key, temp, os.fdopen(fd, "wb"))

    @property
    def temp_dir(self) -> Path:
        """Where objects being written live: a file made here is published by renaming it."""
        return self._temp

    async def _publish_file(self, key: str, path: Path) -> ObjectInfo:
        try:
            return await anyio.to_thread.run_sync(self._publish_file_sync, key, path)
        except OSError as exc:
            raise _store_error(exc) from exc

    def _publish_file_sync(self, key: str, path: Path) -> ObjectInfo:
        with open(path, "rb") as file:
            os.fsync(file.fileno())
        final = self.path(key)
        self._mkdir(final.parent)
        try:
            os.replace(path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            temp = self._temp_name()  # another file system: copy beside, then rename
            shutil.copyfile(path, temp)
            os.chmod(temp, 0o600)
            os.replace(temp, final)
        _fsync_directory(final.parent)
        return _info(key, os.stat(final))

    async def _delete(self, key: str) -> None:
        try:
            await anyio.to_thread.run_sync(self._unlink, self.path(key))
        except OSError as exc:
            raise _store_error(exc) from exc

    @staticmethod
    def _unlink(path: Path) -> None:
        path.unlink(missing_ok=True)

    async def _usage(self, namespaces: tuple[str, ...]) -> list[Usage]:
        return await anyio.to_thread.run_sync(self._usage_sync, namespaces)

    def _usage_sync(self, namespaces: tuple[str, ...]) -> list[Usage]:
        items: list[Usage] = []
        for namespace in namespaces:
            base = self.root / namespace
            for directory, _dirs, files in os.walk(base):
                for name in files:
                    path = Path(directory, name)
                    with contextlib.suppress(OSError):
                        stat = path.stat(follow_symlinks=False)
                        key = path.relative_to(self.root).as_posix()
                        accessed = max(stat.st_atime, stat.st_mtime)
                        items.append(Usage(key=key, size=stat.st_size, accessed=accessed))
        self._remove_stale_temps()
        return items

    def used_bytes_sync(self, namespaces: tuple[str, ...]) -> int:
        """Bytes of committed objects under `namespaces`, measured in the calling thread."""
        return sum(item.size for item in self._usage_sync(namespaces))

    def _remove_stale_temps(self) -> None:
        cutoff = time.time() - STALE_TEMP_SECONDS
        with contextlib.suppress(OSError), os.scandir(self._temp) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)

    async def _touch(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._touch_sync, self.path(key))

    @staticmethod
    def _touch_sync(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            mtime = path.stat().st_mtime_ns
            os.utime(path, ns=(time.time_ns(), mtime))


class _FileChunks:
    """`[start, end)` of an open file; the file is closed at the end or by `aclose()`."""

    def __init__(self, file: IO[bytes], start: int, end: int | None) -> None:
        self._file: IO[bytes] | None = file
        self._position = start
        self._end = end
        self._seeked = False

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        file = self._file
        if file is None:
            raise StopAsyncIteration
        want = READ_CHUNK if self._end is None else min(READ_CHUNK, self._end - self._position)
        chunk = b""
        if want > 0:
            try:
                chunk = await anyio.to_thread.run_sync(self._read, file, want)
            except OSError as exc:
                await self.aclose()
                raise _store_error(exc) from exc
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        self._position += len(chunk)
        return chunk

    def _read(self, file: IO[bytes], want: int) -> bytes:
        if not self._seeked:
            file.seek(self._position)
            self._seeked = True
        return file.read(want)

    async def aclose(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


class _FileUpload(Upload):
    def __init__(self, store: LocalArchiveStore, key: str, temp: Path, file: IO[bytes]) -> None:
        self._store = store
        self._key = key
        self._temp = temp
        self._file: IO[bytes] | None = file

    async def write(self, chunk: bytes) -> None:
        assert self._file is not None, "upload is closed"
        try:
            await anyio.to_thread.run_sync(self._file.write, chunk)
        except OSError as exc:
            raise _store_error(exc) from exc

    async def complete(self) -> ObjectInfo:
        file, self._file = self._file, None
        assert file is not None, "upload is closed"
        try:
            return await anyio.to_thread.run_sync(self._publish, file)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._temp.unlink()
            raise _store_error(exc) from exc

    def _publish(self, file: IO[bytes]) -> ObjectInfo:
        with file:
            file.flush()
            os.fsync(file.fileno())
        final = self._store.path(self._key)
        self._store._mkdir(final.parent)
        os.replace(self._temp, final)
        _fsync_directory(final.parent)
        return _info(self._key, os.stat(final))

    async def abort(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        with contextlib.suppress(OSError):
            self._temp.unlink()
