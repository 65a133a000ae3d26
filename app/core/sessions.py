"""Which administrator sessions are live: signing out ends a session on the server.

A session cookie is signed and carries its expiry, but a signature alone cannot be taken
back: a copied cookie would keep working after its owner signed out. So every session is also
listed here from sign-in until sign-out or expiry, and a cookie counts only while its session
is listed (an allow-list: if the list is lost, sessions end rather than outlive a sign-out).

Two stores, following the job backends: without `REDIS_URL`, a SQLite file
`DATA_DIR/sessions.sqlite3` (0600) shared by the workers of one machine; with it, Redis keys
`sessions:<id>` expiring with the session, shared by every node. Only a hash of the cookie's
random nonce is stored. A store that cannot be reached counts every session as ended (the
Bearer token still works) and is logged; with Redis, "cannot be reached" includes not
answering within `REDIS_TIMEOUT` (a hung Redis costs a sign-in that long, never longer).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import redis.asyncio
import redis.exceptions

from app.core.config import Settings
from app.core.files import connect_private_sqlite

logger = logging.getLogger("app.sessions")

T = TypeVar("T")
REDIS_PREFIX = "sessions:"
# Seconds a SQLite writer waits for another worker's write.
BUSY_TIMEOUT = 5.0
# Seconds a caller is asked to wait after the session store failed.
RETRY_AFTER = 5


class SessionStoreError(Exception):
    """The session store cannot be reached."""


def session_id(nonce: str) -> str:
    """What the store keeps of a cookie's nonce: its hash, useless for making a cookie."""
    return hashlib.sha256(b"admin-session:" + nonce.encode()).hexdigest()


class SessionStore(Protocol):
    async def add(self, sid: str, *, expires: float) -> None:
        """List a new session until `expires` (Unix time). Raises `SessionStoreError`."""

    async def active(self, sid: str) -> bool:
        """Whether the session is listed and unexpired. Raises `SessionStoreError`."""

    async def revoke(self, sid: str) -> None:
        """End the session. Raises `SessionStoreError`."""

    async def aclose(self) -> None: ...


class SQLiteSessions:
    """Sessions in a SQLite file shared by the processes of one machine."""

    def __init__(self, path: Path) -> None:
        self._conn = connect_private_sqlite(path, busy_timeout=BUSY_TIMEOUT)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, expires REAL NOT NULL)"
        )
        self._lock = threading.Lock()

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._lock:
                return function(*args)

        try:
            return await anyio.to_thread.run_sync(locked)
        except sqlite3.Error as exc:
            raise SessionStoreError(f"session store: {exc}") from exc

    def _add(self, sid: str, expires: float) -> None:
        self._conn.execute("DELETE FROM sessions WHERE expires <= ?", (time.time(),))
        self._conn.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?)", (sid, expires))

    def _active(self, sid: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM sessions WHERE id = ? AND expires > ?", (sid, time.time())
        ).fetchone()
        return row is not None

    def _revoke(self, sid: str) -> None:
        self._conn.execute("DELETE FROM sessions WHERE id = ?", (sid,))

    async def add(self, sid: str, *, expires: float) -> None:
        await self._call(self._add, sid, expires)

    async def active(self, sid: str) -> bool:
        return await self._call(self._active, sid)

    async def revoke(self, sid: str) -> None:
        await self._call(self._revoke, sid)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._conn.close)


class RedisSessions:
    """Sessions in Redis, seen by every node; each key expires with its session."""

    def __init__(self, url: str, *, timeout: float) -> None:
        # Connects on first use, so the service starts (and `/ready` reports) while Redis is
        # down; every socket operation and every call as a whole give up after `timeout`.
        self._redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._timeout = timeout

    async def _call(self, command: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await command
        except (redis.exceptions.RedisError, TimeoutError, OSError) as exc:
            raise SessionStoreError(f"session store: {type(exc).__name__} {exc}") from exc

    async def add(self, sid: str, *, expires: float) -> None:
        await self._call(self._redis.set(REDIS_PREFIX + sid, b"1", exat=int(expires)))

    async def active(self, sid: str) -> bool:
        return bool(await self._call(self._redis.exists(REDIS_PREFIX + sid)))

    async def revoke(self, sid: str) -> None:
        await self._call(self._redis.delete(REDIS_PREFIX + sid))

    async def aclose(self) -> None:
        await self._redis.aclose()


@contextlib.asynccontextmanager
async def open_sessions(settings: Settings) -> AsyncIterator[SessionStore]:
    """The session store of this configuration, closed on exit."""
    store: SessionStore
    if settings.redis_url:
        store = RedisSessions(settings.redis_url, timeout=settings.redis_timeout)
    else:
        store = SQLiteSessions(settings.data_dir / "sessions.sqlite3")
    try:
        yield store
    finally:
        await store.aclose()
