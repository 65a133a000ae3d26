"""The interface both job backends implement.

A backend stores job records and hands jobs to runners. Every change to a record goes through
`update`, an atomic read-modify-write (a SQLite write transaction, or a Redis WATCH/MULTI), so
claims, cancellations, progress and the sweeper never overwrite each other, whichever process
or machine they run in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from app.core.errors import ServiceUnavailable
from app.jobs.models import JobRecord, JobState

# Returns True when the record was changed and must be written back.
Mutation = Callable[[JobRecord], bool]

# Seconds a caller is asked to wait after a `QueueUnavailable` (a Redis restart or failover).
QUEUE_RETRY_AFTER = 5


class QueueUnavailable(ServiceUnavailable):
    """The backend cannot reach its store (Redis down or not answering): 503, retry shortly.

    A subclass of core's `ServiceUnavailable`, so the one `AppError` handler answers it and
    core needs to know nothing of the job backends or their drivers.
    """

    code = "queue_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The job queue is unreachable; try again shortly.",
            headers={"Retry-After": str(QUEUE_RETRY_AFTER)},
        )


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """One registered worker and when it last said it was alive (Unix time)."""

    worker_id: str
    pid: int
    host: str
    beat: float


class JobBackend(Protocol):
    """Job records plus a way to get a job run.

    Every method raises `QueueUnavailable` when the backend's store cannot be reached.
    """

    name: str

    async def insert(self, record: JobRecord) -> None:
        """Store a new record."""

    async def get(self, job_id: str) -> JobRecord | None:
        """The record, or None when unknown (or purged)."""

    async def update(self, job_id: str, mutate: Mutation) -> JobRecord | None:
        """Apply `mutate` atomically; returns the record as stored after it, None if unknown."""

    async def delete(self, job_id: str) -> None:
        """Forget a record entirely."""

    async def job_ids(
        self, *, states: Iterable[JobState] | None = None, order_id: str | None = None
    ) -> list[str]:
        """Ids of records in `states` (all when None), optionally of one order only."""

    async def dispatch(self, record: JobRecord) -> None:
        """Make sure a runner will pick the job up at `record.not_before` (or now)."""

    async def workers(self, *, stale_after: float) -> list[WorkerBeat] | None:
        """Workers in other processes with a heartbeat under `stale_after` seconds old, or
        None when jobs run inside the web processes (nothing to watch)."""

    async def aclose(self) -> None:
        """Release connections."""
