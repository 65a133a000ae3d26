"""Periodic housekeeping of jobs, run by every process that runs jobs.

One pass:

* a job whose runner's lease lapsed (its process died) is queued again, or failed with a
  reason once it has been started `JOB_MAX_ATTEMPTS` times — never left `running`;
* an ended job past `expires_at` loses its archive and becomes `expired`;
* an expired job is forgotten `JOB_TTL` after it expired (then its id answers 404);
* a job archive whose job has no record (Redis restarted without persistence, or a record
  deleted by hand) is deleted once it is `JOB_ORPHAN_GRACE` seconds old, so a lost record
  never keeps storage — and the room of `JOB_STORAGE_MAX_BYTES` — for good;
* temporary archive files of runs whose process died are deleted (see `JobArchives`);
* the queue-depth gauge is refreshed, and so is the measure of the job archives' storage.

Passes in several processes at once are safe: every change is an atomic `update` that
re-checks the condition on the fresh record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from app.core import metrics
from app.jobs.backend import JobBackend
from app.jobs.models import ENDED_STATES, JobRecord
from app.jobs.store import JobArchives
from app.storage import Usage

logger = logging.getLogger("app.jobs.sweeper")

# A lease must have lapsed by this much before the job is taken back (clock differences).
LEASE_GRACE = 0.5


async def sweep(
    backend: JobBackend,
    store: JobArchives,
    *,
    ttl: int,
    max_attempts: int,
    on_end: Callable[[JobRecord], Awaitable[None]] | None = None,
    orphan_grace: float | None = None,
) -> None:
    """One housekeeping pass (see the module docstring); `on_end` gets jobs it failed.
    `orphan_grace=None` leaves archives without a record alone."""
    now = time.time()
    for job_id in await backend.job_ids(states=("queued", "waiting", "running")):
        await _reclaim(
            backend, store, job_id, now=now, ttl=ttl, max_attempts=max_attempts, on_end=on_end
        )
    for job_id in await backend.job_ids(states=(*ENDED_STATES, "expired")):
        record = await backend.get(job_id)
        if record is None or record.expires_at is None or record.expires_at > now:
            continue
        if record.state == "expired":
            if record.expires_at + ttl <= now:
                await backend.delete(job_id)
            continue
        await store.delete(job_id)
        if await backend.update(job_id, _expire(now)) is not None:
            metrics.JOBS.labels("expired").inc()
    metrics.QUEUE_DEPTH.set(len(await backend.job_ids(states=("queued", "waiting"))))
    await store.remove_abandoned()
    archives = await store.refresh()
    if orphan_grace is not None:
        await _delete_orphans(backend, store, archives, cutoff=now - orphan_grace)


async def _delete_orphans(
    backend: JobBackend, store: JobArchives, archives: list[Usage], *, cutoff: float
) -> None:
    """Delete archives older than `cutoff` whose job has no record."""
    for item in archives:
        job_id = store.job_id_of(item.key)
        if job_id is None or item.accessed > cutoff:
            continue
        if await backend.get(job_id) is None:
            logger.warning(
                "job archive %s has no job record (%d bytes); deleted", item.key, item.size
            )
            await store.delete(job_id)


async def _reclaim(
    backend: JobBackend,
    store: JobArchives,
    job_id: str,
    *,
    now: float,
    ttl: int,
    max_attempts: int,
    on_end: Callable[[JobRecord], Awaitable[None]] | None,
) -> None:
    outcome: list[str] = []

    def reclaim(record: JobRecord) -> bool:
        outcome.clear()
        if record.lease_owner is None or record.lease_until + LEASE_GRACE > now:
            return False
        worker = record.worker or "unknown"
        if record.state == "running" and record.attempts >= max_attempts:
            record.end(
                "failed",
                ttl=ttl,
                reason=f"the worker running it stopped ({worker}); gave up after "
                f"{record.attempts} attempts",
            )
            outcome.append("failed")
            return True
        record.state = "waiting" if record.state == "waiting" else "queued"
        record.lease_owner, record.lease_until = None, 0.0
        record.dispatch += 1
        outcome.append("queued")
        return True

    record = await backend.update(job_id, reclaim)
    if record is None or not outcome:
        return
    if outcome[0] == "failed":
        await store.delete(job_id)
        metrics.JOBS.labels("failed").inc()
        logger.warning("job %s failed: %s", job_id, record.reason)
        if on_end is not None:
            await on_end(record)
    else:
        logger.warning("job %s: lease of %s lapsed; queued again", job_id, record.worker)
        await backend.dispatch(record)


def _expire(now: float) -> Callable[[JobRecord], bool]:
    def expire(record: JobRecord) -> bool:
        if record.state not in ENDED_STATES or record.expires_at is None:
            return False
        if record.expires_at > now:
            return False
        record.state = "expired"
        record.archive_size = None
        return True

    return expire
