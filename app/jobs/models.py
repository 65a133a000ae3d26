"""The job record: everything both backends store about one job, as one JSON document.

A record moves through these states::

    queued ──▶ running ──▶ complete ──▶ expired
      │  ▲        │
      ▼  │        ├──▶ failed
    waiting       └──▶ cancelled      (queued and waiting can also fail or be cancelled)

`waiting` means "wait=true and the order is still processing": the job holds no worker while
it waits; `not_before` says when it is next looked at. A record is claimed by one runner at a
time through `lease_owner`/`lease_until`; a lease that lapses (the runner's process died) is
taken back by the sweeper and the job runs again, up to `JOB_MAX_ATTEMPTS` times.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.upstream.options import DownloadOptions

JobState = Literal["queued", "waiting", "running", "complete", "failed", "cancelled", "expired"]

ACTIVE_STATES: frozenset[JobState] = frozenset({"queued", "waiting", "running"})
PENDING_STATES: frozenset[JobState] = frozenset({"queued", "waiting"})
ENDED_STATES: frozenset[JobState] = frozenset({"complete", "failed", "cancelled"})

KEY_GONE_REASON = "key no longer available; resubmit"


class Failure(BaseModel):
    """One image left out of the archive, and why."""

    image_id: str
    image_name: str | None = None
    reason: str


class JobRecord(BaseModel):
    """The stored state of one job. Never holds a key in clear (see `app.jobs.keybox`)."""

    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    owner: str
    order_id: str
    options: DownloadOptions = DownloadOptions()
    state: JobState = "queued"
    wait: bool = False
    callback_url: str | None = None
    base_url: str = ""  # where the service was reached, for absolute links in callbacks
    sealed_key: str | None = None  # the caller's own key, encrypted; None = operator's key

    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    reason: str | None = None

    images_total: int = 0
    images_done: int = 0
    bytes_written: int = 0
    failures: list[Failure] = Field(default_factory=list)

    filename: str | None = None
    archive_size: int | None = None

    worker: str | None = None
    attempts: int = 0
    dispatch: int = 0  # bumped on every hand-over to the queue; stale deliveries are ignored
    not_before: float = 0.0
    wait_backoff: float = 0.0
    lease_owner: str | None = None
    lease_until: float = 0.0
    callback_outcome: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES or self.state == "expired"

    def is_expired(self, now: float | None = None) -> bool:
        if self.state == "expired":
            return True
        return self.expires_at is not None and self.expires_at <= (now or time.time())

    def end(self, state: JobState, *, ttl: int, reason: str | None = None) -> None:
        """Move to a final state: release the lease, forget the key, start the expiry clock."""
        now = time.time()
        self.state = state
        self.reason = reason
        self.finished_at = now
        self.expires_at = now + ttl
        self.sealed_key = None
        self.lease_owner = None
        self.lease_until = 0.0
