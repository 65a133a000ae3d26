"""Wiring of the jobs machinery into a web process: backend choice, worker, shutdown.

Without `REDIS_URL` the embedded backend is used and this process also runs jobs (an
`EmbeddedWorker`); with it, records go to Redis and arq workers run the jobs, so the web
process only stores, reads and enqueues.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx

from app.core.config import Settings
from app.core.keys import ServiceKeys
from app.core.security import Signer
from app.jobs.backend import JobBackend
from app.jobs.callbacks import (
    CALLBACK_CONNECTIONS,
    CallbackSender,
    outcome_recorder,
    summary_payload,
)
from app.jobs.context import JobContext, worker_id
from app.jobs.keybox import KeyBox
from app.jobs.models import JobRecord
from app.jobs.service import JobService
from app.jobs.store import JobArchives
from app.services.fairness import FairLimiter
from app.storage import ArchiveStore
from app.upstream.client import AutoenhanceClient


def callback_client() -> httpx.AsyncClient:
    """Redirects are followed by hand (each hop is checked); no environment proxies."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=CALLBACK_CONNECTIONS),
        headers={"User-Agent": "autoenhance-batch-downloader/1.0 (job callback)"},
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


def notifier(ctx: JobContext) -> Callable[[JobRecord], Awaitable[None]]:
    """Sends (in the background, so a slow receiver never holds up a sweep) the callback of a
    job the sweeper ended, and records its outcome."""

    async def notify(record: JobRecord) -> None:
        if not record.callback_url:
            return
        payload = summary_payload(
            record, signer=ctx.signer, link_ttl=ctx.settings.download_link_ttl
        )
        ctx.callbacks.dispatch(
            record.callback_url, payload, on_outcome=outcome_recorder(ctx.backend, record.job_id)
        )

    return notify


async def redis_backend(settings: Settings) -> JobBackend:
    """The Redis backend over a pool that connects on first use.

    Not connecting at start-up (as arq's `create_pool` does, retrying and then raising) keeps a
    web process up while Redis is down: `/ready` names the failing part, and job requests get
    503 until Redis answers again.
    """
    from arq.connections import ArqRedis

    from app.jobs.redis import RedisBackend

    assert settings.redis_url is not None
    # from_url makes the client own its connection pool, so closing the client closes it.
    pool = ArqRedis.from_url(settings.redis_url)
    return RedisBackend(pool)


@contextlib.asynccontextmanager
async def open_jobs(
    settings: Settings,
    *,
    upstream: AutoenhanceClient,
    limiter: FairLimiter,
    signer: Signer,
    keys: ServiceKeys,
    spool_dir: Path,
    operator_key: str | None,
    archive_store: ArchiveStore,
) -> AsyncIterator[JobService]:
    """The job service of a web process, with its embedded worker when there is no Redis.

    Job archives live in `archive_store` (the process's one store, owned by the caller).
    """
    from app.jobs.sqlite import EmbeddedWorker, SQLiteBackend

    store = JobArchives(archive_store, spool_dir=spool_dir)
    keybox = KeyBox(keys.sealing)
    backend: JobBackend
    if settings.redis_url:
        backend = await redis_backend(settings)
    else:
        backend = SQLiteBackend(settings.data_dir / "jobs.sqlite3")
    async with callback_client() as client:
        callbacks = callback_sender(settings, client, keys=keys)
        service = JobService(
            settings=settings, backend=backend, store=store, keybox=keybox, callbacks=callbacks
        )
        worker: EmbeddedWorker | None = None
        if isinstance(backend, SQLiteBackend):
            ctx = JobContext(
                settings=settings,
                backend=backend,
                store=store,
                upstream=upstream,
                limiter=limiter,
                keybox=keybox,
                signer=signer,
                callbacks=callbacks,
                spool_dir=spool_dir,
                operator_key=operator_key,
                worker_id=worker_id(),
                slots=asyncio.Semaphore(settings.job_concurrency),
            )
            worker = EmbeddedWorker(ctx, backend, on_end=notifier(ctx))
            worker.start()
        try:
            yield service
        finally:
            if worker is not None:
                await worker.aclose()
            await service.aclose()
            await callbacks.aclose(grace=settings.callback_timeout)
            await backend.aclose()
            await store.aclose()
