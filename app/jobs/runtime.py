"""Wiring of the jobs machinery into a web process: backend choice, worker, shutdown.

Without `REDIS_URL` the embedded backend is used and this process also runs jobs (an
`EmbeddedWorker`); with it, records go to Redis and arq workers run the jobs, so the web
process only stores, reads and enqueues.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from app.core.config import Settings
from app.core.keys import ServiceKeys
from app.imaging.presets import Preset
from app.jobs.backend import JobBackend
from app.jobs.context import callback_client, callback_sender, job_context
from app.jobs.keybox import KeyBox
from app.jobs.service import JobService
from app.jobs.store import JobArchives
from app.services.fairness import FairLimiter
from app.services.rendering import Renderer
from app.storage import ArchiveStore
from app.upstream.client import AutoenhanceClient


async def redis_backend(settings: Settings) -> JobBackend:
    """The Redis backend over a pool that connects on first use.

    Not connecting at start-up (as arq's `create_pool` does, retrying and then raising) keeps a
    web process up while Redis is down: `/ready` names the failing part, and job requests get
    503 until Redis answers again.
    """
    from app.jobs.redis import RedisBackend, redis_pool

    assert settings.redis_url is not None
    pool = redis_pool(settings.redis_url, timeout=settings.redis_timeout)
    return RedisBackend(pool, timeout=settings.redis_timeout)


@contextlib.asynccontextmanager
async def open_jobs(
    settings: Settings,
    *,
    upstream: AutoenhanceClient,
    limiter: FairLimiter,
    keys: ServiceKeys,
    spool_dir: Path,
    archive_store: ArchiveStore,
    renderer: Renderer,
    presets: Mapping[str, Preset],
) -> AsyncIterator[JobService]:
    """The job service of a web process, with its embedded worker when there is no Redis.

    Job archives live in `archive_store` (the process's one store, owned by the caller).
    """
    from app.jobs.sqlite import EmbeddedWorker, SQLiteBackend

    store = JobArchives(
        archive_store, spool_dir=spool_dir, min_free=settings.data_dir_min_free_bytes
    )
    backend: JobBackend
    if settings.redis_url:
        backend = await redis_backend(settings)
    else:
        backend = SQLiteBackend(settings.data_dir / "jobs.sqlite3")
    async with callback_client() as client:
        callbacks = callback_sender(settings, client, keys=keys)
        service = JobService(
            settings=settings,
            backend=backend,
            store=store,
            keybox=KeyBox(keys.sealing),
            callbacks=callbacks,
        )
        worker: EmbeddedWorker | None = None
        if isinstance(backend, SQLiteBackend):
            ctx = job_context(
                settings,
                backend=backend,
                store=store,
                upstream=upstream,
                limiter=limiter,
                keys=keys,
                callbacks=callbacks,
                spool_dir=spool_dir,
                renderer=renderer,
                presets=presets,
            )
            worker = EmbeddedWorker(ctx, backend, on_end=ctx.notify)
            worker.start()
        try:
            yield service
        finally:
            if worker is not None:
                await worker.aclose()
            await callbacks.aclose(grace=settings.callback_timeout)
            await backend.aclose()
            await store.aclose()
