"""What a job runner needs, built once per process (web process or arq worker)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from app.core.config import Settings
from app.core.security import Signer
from app.jobs.backend import JobBackend
from app.jobs.callbacks import CallbackSender
from app.jobs.keybox import KeyBox
from app.jobs.store import JobArchives
from app.services.fairness import FairLimiter
from app.upstream.client import AutoenhanceClient


def worker_id() -> str:
    """A name for this process in job statuses: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(slots=True)
class JobContext:
    """Shared, long-lived resources of the runners in one process."""

    settings: Settings
    backend: JobBackend
    store: JobArchives
    upstream: AutoenhanceClient
    limiter: FairLimiter
    keybox: KeyBox
    signer: Signer
    callbacks: CallbackSender
    spool_dir: Path
    operator_key: str | None
    worker_id: str
    slots: asyncio.Semaphore  # archives built at once in this process (JOB_CONCURRENCY)
