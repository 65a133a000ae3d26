"""The embedded backend: job records in SQLite, run by a worker inside each web process.

No extra service is needed. The database lives in `DATA_DIR/jobs.sqlite3` in WAL mode, so
every uvicorn worker process (and a restarted service) sees the same jobs. Each process runs
an `EmbeddedWorker` that claims pending jobs; a claim is an atomic read-modify-write inside
`BEGIN IMMEDIATE` (SQLite admits one writer at a time), so exactly one process runs a job.
Cancellation is a state change in the database, noticed by the running process's monitor
within `JOB_POLL_INTERVAL`.

The standard `sqlite3` module runs in a worker thread (one connection per process, guarded by a
lock): every operation is a short transaction, and this needs no extra dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from app.core.files import PrivateSQLite
from app.jobs.backend import Mutation, WorkerBeat
from app.jobs.context import JobContext
from app.jobs.models import JobRecord, JobState
from app.jobs.runner import run_job
from app.jobs.sweeper import sweep
from app.storage import StoreError

logger = logging.getLogger("app.jobs")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    state TEXT NOT NULL,
    not_before REAL NOT NULL,
    lease_until REAL NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, not_before);
CREATE INDEX IF NOT EXISTS jobs_order ON jobs (order_id);
"""
# Seconds a writer waits for another process's transaction before failing.
BUSY_TIMEOUT = 30.0


class SQLiteBackend(PrivateSQLite):
    """Job records in one SQLite file shared by the processes of one machine."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        # 0600 in a 0700 directory: records carry sealed keys and customers' order ids.
        super().__init__(path, schema=SCHEMA, busy_timeout=BUSY_TIMEOUT)
        self.wakeup = asyncio.Event()

    def _write(self, record: JobRecord) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO jobs (job_id, order_id, state, not_before, lease_until,"
            " created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.job_id,
                record.order_id,
                record.state,
                record.not_before,
                record.lease_until,
                record.created_at,
                record.model_dump_json(),
            ),
        )

    async def insert(self, record: JobRecord) -> None:
        await self._call(self._write, record)
        self.wakeup.set()

    def _get(self, job_id: str) -> JobRecord | None:
        row = self._conn.execute("SELECT data FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return JobRecord.model_validate_json(row[0]) if row else None

    async def get(self, job_id: str) -> JobRecord | None:
        record: JobRecord | None = await self._call(self._get, job_id)
        return record

    def _update(self, job_id: str, mutate: Mutation) -> JobRecord | None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            record = self._get(job_id)
            if record is not None and mutate(record):
                self._write(record)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return record

    async def update(self, job_id: str, mutate: Mutation) -> JobRecord | None:
        record: JobRecord | None = await self._call(self._update, job_id, mutate)
        return record

    async def delete(self, job_id: str) -> None:
        await self._call(self._conn.execute, "DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def _ids(self, states: Iterable[JobState] | None, order_id: str | None) -> list[str]:
        clauses: list[str] = []
        params: list[str] = []
        if states is not None:
            wanted = list(states)
            clauses.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if order_id is not None:
            clauses.append("order_id = ?")
            params.append(order_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(
            f"SELECT job_id FROM jobs{where} ORDER BY created_at", params
        ).fetchall()
        return [row[0] for row in rows]

    async def job_ids(
        self, *, states: Iterable[JobState] | None = None, order_id: str | None = None
    ) -> list[str]:
        ids: list[str] = await self._call(self._ids, states, order_id)
        return ids

    def _claimable(self, now: float, limit: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT job_id FROM jobs WHERE state IN ('queued', 'waiting') AND not_before <= ?"
            " AND lease_until <= ? ORDER BY created_at LIMIT ?",
            (now, now, limit),
        ).fetchall()
        return [row[0] for row in rows]

    async def claimable(self, *, limit: int) -> list[str]:
        """Pending jobs due now and held by nobody, oldest first."""
        now = time.time()
        ids: list[str] = await self._call(self._claimable, now, limit)
        return ids

    async def dispatch(self, record: JobRecord) -> None:
        # The worker polls the table; wake the one in this process so a due job starts at once.
        self.wakeup.set()

    async def workers(self, *, stale_after: float) -> list[WorkerBeat] | None:
        return None  # jobs run inside the web processes themselves

    async def aclose(self) -> None:
        await self._call(self._conn.close)


class EmbeddedWorker:
    """Claims and runs jobs inside the web process, and sweeps; `aclose()` hands jobs back."""

    def __init__(
        self,
        ctx: JobContext,
        backend: SQLiteBackend,
        *,
        on_end: Callable[[JobRecord], Awaitable[None]] | None = None,
    ) -> None:
        self._ctx = ctx
        self._backend = backend
        self._on_end = on_end
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._poll(), name="jobs-embedded-worker")

    async def _poll(self) -> None:
        settings = self._ctx.settings
        next_sweep = 0.0
        while True:
            self._backend.wakeup.clear()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + settings.job_sweep_interval
                await self._sweep()
            try:
                free = settings.job_concurrency - len(self._running)
                if free > 0:
                    for job_id in await self._backend.claimable(limit=free):
                        if job_id not in self._running:
                            self._spawn(job_id)
            except Exception:
                logger.exception("job worker pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._backend.wakeup.wait(), settings.job_poll_interval)

    async def _sweep(self) -> None:
        """One sweep; a failing archive store is logged, and never stops jobs being claimed."""
        settings = self._ctx.settings
        try:
            await sweep(
                self._backend,
                self._ctx.store,
                ttl=settings.job_ttl,
                max_attempts=settings.job_max_attempts,
                on_end=self._on_end,
                orphan_grace=settings.job_orphan_grace,
            )
        except StoreError as exc:
            logger.warning("job sweep incomplete: the archive store failed: %s", exc)
        except Exception:
            logger.exception("job sweep failed; retrying")

    def _spawn(self, job_id: str) -> None:
        task = asyncio.create_task(run_job(self._ctx, job_id), name=f"job-{job_id}")
        self._running[job_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._running.pop(job_id, None)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("job %s runner crashed: %r", job_id, finished.exception())
            self._backend.wakeup.set()

        task.add_done_callback(done)

    async def aclose(self) -> None:
        """Stop claiming; cancel running jobs, which queue themselves again for a peer."""
        tasks = [task for task in (self._loop, *self._running.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
