"""What the job endpoints answer: a created job, its status and progress, a download link."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.jobs.models import Failure, JobState


class JobCreated(BaseModel):
    job_id: str
    state: JobState
    status_url: str
    download_url: str
    callback_secret: str | None = Field(
        default=None,
        description="With a callback_url: the key this job's callbacks are signed with "
        "(X-Signature); hand it to the receiver. It checks this job's callbacks only.",
    )


class JobProgress(BaseModel):
    images_done: int
    images_total: int
    bytes_written: int


class JobStatus(BaseModel):
    job_id: str
    order_id: str
    state: JobState
    reason: str | None
    progress: JobProgress
    failures: list[Failure]
    wait: bool
    options: dict[str, str]
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    expires_at: str | None
    archive_size: int | None
    worker: str | None
    attempts: int
    callback: str | None
    status_url: str
    download_url: str


class JobDownloadLink(BaseModel):
    """A signed link to a finished job's archive."""

    url: str
    expires_at: str | None
