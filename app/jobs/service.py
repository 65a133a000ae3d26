"""What the web routes do with jobs, whichever backend stores them.

Ownership: a job is visible only to the owner of the credential that created it
(`Credential.owner`: "operator" or "byok:<hash of the key>"); for anyone else it does not exist.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app.core import metrics
from app.core.config import Settings
from app.jobs.backend import JobBackend
from app.jobs.callbacks import CallbackSender
from app.jobs.keybox import KeyBox
from app.jobs.models import ACTIVE_STATES, PENDING_STATES, JobRecord
from app.jobs.store import JobArchives
from app.storage import ArchiveStore, ObjectInfo
from app.upstream.options import DownloadOptions

logger = logging.getLogger("app.jobs")


class ArchiveGone(Exception):
    """The job's archive is no longer stored."""


@dataclass(frozen=True, slots=True)
class JobArchive:
    """A finished job's stored archive: the store holding it, the object, and its ETag."""

    store: ArchiveStore
    info: ObjectInfo
    etag: str


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """Job workers with a recent heartbeat, and the age of the newest heartbeat this process
    has seen (None: none yet)."""

    alive: int
    stale_after: float
    last_beat_age: float | None


class JobService:
    """Create, read, cancel and wake jobs."""

    def __init__(
        self,
        *,
        settings: Settings,
        backend: JobBackend,
        store: JobArchives,
        keybox: KeyBox,
        callbacks: CallbackSender,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.store = store
        self._keybox = keybox
        self._callbacks = callbacks
        self._last_beat: float | None = None  # newest worker heartbeat seen (Unix time)

    async def create(
        self,
        *,
        owner: str,
        own_key: str | None,
        order_id: str,
        options: DownloadOptions,
        wait: bool,
        callback_url: str | None,
        base_url: str,
        images_total: int,
    ) -> JobRecord:
        """Store a new job and queue it. `own_key` is the caller's key (sealed, never stored)."""
        record = JobRecord(
            owner=owner,
            order_id=order_id,
            options=options,
            state="waiting" if wait else "queued",
            wait=wait,
            callback_url=callback_url,
            base_url=base_url,
            sealed_key=self._keybox.seal(own_key) if own_key is not None else None,
            images_total=images_total,
        )
        await self.backend.insert(record)
        await self.backend.dispatch(record)
        metrics.JOBS.labels(record.state).inc()
        logger.info("job %s created for order %s (wait=%s)", record.job_id, order_id, wait)
        return record

    async def get(self, job_id: str, *, owner: str | None) -> JobRecord | None:
        """The job as its owner sees it (None for anyone else); `owner=None` skips the check
        (a signed link already proved access)."""
        record = await self.backend.get(job_id)
        if record is None or (owner is not None and record.owner != owner):
            return None
        if record.state != "expired" and record.is_expired():
            record.state = "expired"  # the sweeper has not been by yet
        return record

    def callback_key(self, job_id: str) -> str:
        """The key the job's callbacks are signed with (see `app.jobs.callbacks`)."""
        return self._callbacks.key_for(job_id)

    async def for_order(self, order_id: str, *, owner: str, limit: int) -> list[JobRecord]:
        """The owner's jobs of `order_id`, newest first, at most `limit`."""
        records = []
        for job_id in await self.backend.job_ids(order_id=order_id):
            record = await self.get(job_id, owner=owner)
            if record is not None:
                records.append(record)
        records.sort(key=lambda record: record.created_at, reverse=True)
        return records[:limit]

    async def archive(self, record: JobRecord) -> JobArchive:
        """The archive of a complete job, to be served from its store.

        Raises:
            ArchiveGone: it is no longer stored (expired and swept, or deleted).
            StoreError: the store failed.
        """
        info = await self.store.stat(record.job_id)
        if info is None:
            raise ArchiveGone(record.job_id)
        return JobArchive(
            store=self.store.store, info=info, etag=f'"job-{record.job_id}-{info.etag}"'
        )

    async def cancel(self, job_id: str, *, owner: str) -> JobRecord | None:
        """Cancel the job (a running one stops within JOB_POLL_INTERVAL) and remove its files.

        The archive is deleted in the background: a store that is down or slow does not hold
        up (or fail) the cancellation; if the deletion fails, the sweeper deletes the archive
        when the job expires."""
        before: list[JobRecord] = []

        def cancel(record: JobRecord) -> bool:
            before[:] = [record.model_copy()]
            if record.owner != owner or record.state in ("cancelled", "expired"):
                return False
            reason = "cancelled by its owner"
            if record.state not in ACTIVE_STATES:
                reason = f"deleted by its owner after it was {record.state}"
            record.end("cancelled", ttl=self.settings.job_ttl, reason=reason)
            record.archive_size = None
            return True

        record = await self.backend.update(job_id, cancel)
        if record is None or record.owner != owner:
            return None
        self.store.remove(job_id)
        was = before[0].state if before else None
        if was is not None and was != record.state:
            metrics.JOBS.labels("cancelled").inc()
            if was in PENDING_STATES and record.callback_url:
                # No runner holds it, so nobody else will report the end (no archive: no link).
                self._callbacks.job_ended(record, backend=self.backend, signer=None, link_ttl=0)
        return record

    async def worker_health(self) -> WorkerHealth | None:
        """What the worker registry says (None with the embedded backend), also published as
        the `job_workers_alive` and `job_worker_heartbeat_age_seconds` gauges.

        Raises:
            QueueUnavailable: the registry cannot be read.
        """
        stale_after = self.settings.job_worker_stale_seconds
        workers = await self.backend.workers(stale_after=stale_after)
        if workers is None:
            return None
        newest = max((worker.beat for worker in workers), default=None)
        if newest is not None:
            self._last_beat = max(self._last_beat or 0.0, newest)
        age = None if self._last_beat is None else max(0.0, time.time() - self._last_beat)
        metrics.JOB_WORKERS.set(len(workers))
        if age is not None:
            metrics.JOB_WORKER_HEARTBEAT_AGE.set(age)
        return WorkerHealth(alive=len(workers), stale_after=stale_after, last_beat_age=age)

    async def wake_order(self, order_id: str) -> int:
        """The order finished processing: look at its waiting jobs now. Returns how many."""
        now = time.time()
        woken = 0
        for job_id in await self.backend.job_ids(states=("waiting",), order_id=order_id):

            def wake(record: JobRecord) -> bool:
                if record.state != "waiting" or record.lease_owner is not None:
                    return False
                record.not_before = now
                record.dispatch += 1
                return True

            record = await self.backend.update(job_id, wake)
            if record is not None and record.state == "waiting" and record.not_before == now:
                await self.backend.dispatch(record)
                woken += 1
        return woken
