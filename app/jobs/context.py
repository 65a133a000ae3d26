"""What a job runner needs, built once per process (web process or arq worker).

`job_context()` is the one place a `JobContext` is assembled, and `JobContext.notify` the one
place a job's end is reported to its `callback_url`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from app.archive.fairness import FairLimiter
from app.archive.rendering import Renderer
from app.archive.stream import ArchiveBuilder
from app.core.config import Settings
from app.core.identity import USER_AGENT
from app.core.keys import ServiceKeys
from app.core.security import Signer, operator_credential
from app.imaging.presets import Preset
from app.jobs.backend import JobBackend
from app.jobs.callbacks import CALLBACK_CONNECTIONS, CallbackSender
from app.jobs.keybox import KeyBox
from app.jobs.models import JobRecord
from app.jobs.store import JobArchives
from app.upstream.client import AutoenhanceClient


def worker_id() -> str:
    """A name for this process in job statuses: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


def callback_client() -> httpx.AsyncClient:
    """Redirects are followed by hand (each hop is checked); no environment proxies."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=CALLBACK_CONNECTIONS),
        headers={"User-Agent": USER_AGENT},
    )


def callback_sender(
    settings: Settings, client: httpx.AsyncClient, *, keys: ServiceKeys
) -> CallbackSender:
    return CallbackSender(
        client,
        secret=keys.callbacks,
        allow_private=settings.callback_allow_private,
        timeout=settings.callback_timeout,
    )


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
    operator_key: str | None
    worker_id: str
    slots: asyncio.Semaphore  # archives built at once in this process (JOB_CONCURRENCY)
    renderer: Renderer  # variants and manifest.json, in the process's decode pool
    presets: Mapping[str, Preset]  # what `variants=` names

    @property
    def archives(self) -> ArchiveBuilder:
        """Builds the runners' archives: no cache or manifests (a job's archive is kept whole
        in the job store)."""
        return ArchiveBuilder(
            settings=self.settings,
            upstream=self.upstream,
            limiter=self.limiter,
            spool_dir=self.settings.spool_dir,
            renderer=self.renderer,
        )

    async def notify(self, record: JobRecord) -> None:
        """Report the end of `record` to its `callback_url`, if it has one, with a signed link
        to a complete archive; sent in the background (a slow receiver holds up no job slot
        and no sweep), the outcome stored on the job."""
        self.callbacks.job_ended(
            record,
            backend=self.backend,
            signer=self.signer,
            link_ttl=self.settings.download_link_ttl,
        )


def job_context(
    settings: Settings,
    *,
    backend: JobBackend,
    store: JobArchives,
    upstream: AutoenhanceClient,
    limiter: FairLimiter,
    keys: ServiceKeys,
    callbacks: CallbackSender,
    renderer: Renderer,
    presets: Mapping[str, Preset],
) -> JobContext:
    """The runners' context of this process: links signed and keys sealed with `keys`, the
    operator's own key for jobs without a caller's key."""
    return JobContext(
        settings=settings,
        backend=backend,
        store=store,
        upstream=upstream,
        limiter=limiter,
        keybox=KeyBox(keys.sealing),
        signer=Signer(keys.links),
        callbacks=callbacks,
        operator_key=operator_credential(settings).api_key,
        worker_id=worker_id(),
        slots=asyncio.Semaphore(settings.job_concurrency),
        renderer=renderer,
        presets=presets,
    )
