"""Local state is private to the service's user: directories 0700, files 0600.

The data directory holds customers' archives, job records (with sealed keys), sessions and
the signing secret. Modes are set when a file or directory is created, whatever the umask;
SQLite creates its `-wal`, `-shm` and `-journal` files with the mode of the database file, and
files left more open by an earlier version are tightened when opened. Every SQLite database
of the service is opened with `connect_private_sqlite`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

logger = logging.getLogger("app.files")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700.

    An existing directory keeps its mode (it may be shared on purpose, e.g. a mounted volume);
    a warning says when others may list it.
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR)
        os.chmod(directory, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    if path not in missing and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "%s is accessible to other local users (mode %o); the files in it are not",
            path,
            stat.S_IMODE(path.stat().st_mode),
        )
    return path


def _private_sqlite(path: Path) -> Path:
    """Prepare `path` for `sqlite3.connect`: a 0600 database file in a 0700 directory."""
    if not path.parent.exists():
        private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    for candidate in (path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(candidate.stat().st_mode) != PRIVATE_FILE:
                os.chmod(candidate, PRIVATE_FILE)
    return path


def connect_private_sqlite(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """A connection to the SQLite database at `path`, which is made private first.

    The file is 0600 in a 0700 directory (created when missing, tightened when an earlier
    version left it more open), in WAL mode (readers in other processes do not block the
    writer), in autocommit mode (`isolation_level=None`: callers write `BEGIN` where they need a
    transaction), waiting up to `busy_timeout` seconds for another process's lock. The
    connection may be used from any thread; callers serialise its use with their own lock.
    """
    connection = sqlite3.connect(
        _private_sqlite(path),
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
    )
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


class PrivateSQLite:
    """One private SQLite database (see `connect_private_sqlite`) used from worker threads:
    one connection, one lock, `PRAGMA synchronous=NORMAL` (WAL keeps it safe from corruption),
    and `schema` run at open. Subclasses (the job and delivery stores) run their statements
    through `_call`, which holds the lock in a worker thread so the event loop never waits on
    the disk."""

    def __init__(self, path: Path, *, schema: str, busy_timeout: float) -> None:
        self._conn = connect_private_sqlite(path, busy_timeout=busy_timeout)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(schema)
        self._lock = threading.Lock()

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(self._locked, function, *args)

    def _locked(self, function: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            return function(*args)
