"""The long-lived resources of one process of the service, web process or arq worker.

`open_runtime()` is the one place they are assembled: the HTTP clients to the Autoenhance API
and the upstream client on them, the fair limiter, the archive store (`ARCHIVE_STORE`), the job
backend (Redis when `REDIS_URL` is set, else SQLite in `DATA_DIR`), the job archives, the
decode pool and the renderer of variants (under the decoding policy), and the process's one
callback sender (job and delivery callbacks) with its HTTP client. Each is pushed
onto the caller's `AsyncExitStack` as soon as it is open, so a failure half-way closes what was
opened, and closing the stack closes them all in reverse order: pending callbacks get
`CALLBACK_TIMEOUT` before their client closes, then the backend and the stores close.

On top of it the web lifespan (`app.main`) opens what only a web process serves
(`open_job_service`: the job service and, without Redis, the embedded worker that runs jobs in
this process; deliveries, sessions, decoding, operations), and the arq worker
(`app.jobs.worker`) its sweeper and heartbeat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from app.archive.fairness import FairLimiter
from app.archive.rendering import Renderer
from app.core.config import Settings
from app.core.files import private_dir
from app.core.keys import ServiceKeys, service_keys
from app.imaging.decoding import DecodingPolicy
from app.imaging.pool import DecodePool
from app.imaging.presets import Preset
from app.jobs.backend import JobBackend
from app.jobs.context import JobContext, callback_client, callback_sender, job_context
from app.jobs.service import JobService
from app.jobs.store import JobArchives
from app.storage import ArchiveStore, open_store
from app.upstream.factory import UpstreamClients, build_upstream


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """What every process of the service holds open while it runs."""

    settings: Settings
    keys: ServiceKeys
    upstream: UpstreamClients
    limiter: FairLimiter
    store: ArchiveStore  # archives, manifests and job archives
    decoder: DecodePool  # every decode of the process: thumbnails, previews, renderings
    renderer: Renderer  # variants of archives, in the decode pool
    jobs: JobContext  # what a job runner needs, the backend and the callback sender included


def job_backend(settings: Settings) -> JobBackend:
    """The backend of `settings`: Redis over a pool that connects on first use, or SQLite.

    Not connecting at start-up (as arq's `create_pool` does, retrying and then raising) keeps a
    web process up while Redis is down: `/ready` names the failing part, and job requests get
    503 until Redis answers again.
    """
    if settings.redis_url:
        from app.jobs.redis import RedisBackend, redis_pool

        pool = redis_pool(settings.redis_url, timeout=settings.redis_timeout)
        return RedisBackend(pool, timeout=settings.redis_timeout)
    from app.jobs.sqlite import SQLiteBackend

    return SQLiteBackend(settings.data_dir / "jobs.sqlite3")


async def open_runtime(
    settings: Settings,
    resources: contextlib.AsyncExitStack,
    *,
    base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    backend: JobBackend | None = None,
    presets: Mapping[str, Preset],
) -> Runtime:
    """Open the resources of `settings`, each closed by `resources`.

    `presets` are the variants this process offers (built-ins and `PRESETS_FILE`'s).

    `base_url` and `transport` reach the upstream elsewhere than `AUTOENHANCE_API_BASE` (the
    embedded sandbox). `backend` replaces the backend of `settings` and stays its owner's to
    close (the arq worker's runs on arq's own Redis pool).
    """
    private_dir(settings.data_dir)
    keys = service_keys(settings)
    upstream = build_upstream(
        settings, base_url=base_url or settings.autoenhance_api_base, transport=transport
    )
    for client in upstream.http_clients:
        await resources.enter_async_context(client)
    store = open_store(settings)
    resources.push_async_callback(store.aclose)
    archives = JobArchives(
        store,
        spool_dir=private_dir(settings.spool_dir),
        min_free=settings.data_dir_min_free_bytes,
    )
    resources.push_async_callback(archives.aclose)
    if backend is None:
        backend = job_backend(settings)
        resources.push_async_callback(backend.aclose)
    callbacks_http = await resources.enter_async_context(callback_client())
    callbacks = callback_sender(settings, callbacks_http, keys=keys)
    resources.push_async_callback(callbacks.aclose, grace=settings.callback_timeout)
    limiter = FairLimiter(settings.upstream_max_connections)
    decoder = DecodePool(
        workers=settings.decode_workers,
        queue=settings.decode_queue,
        policy=DecodingPolicy(
            max_scans=settings.decode_max_scans, deadline=settings.decode_deadline
        ),
    )
    resources.callback(decoder.close)
    renderer = Renderer(
        decoder, concurrency=settings.decode_workers, max_pixels=settings.render_max_pixels
    )
    jobs = job_context(
        settings,
        backend=backend,
        store=archives,
        upstream=upstream.client,
        limiter=limiter,
        keys=keys,
        callbacks=callbacks,
        renderer=renderer,
        presets=presets,
    )
    return Runtime(
        settings=settings,
        keys=keys,
        upstream=upstream,
        limiter=limiter,
        store=store,
        decoder=decoder,
        renderer=renderer,
        jobs=jobs,
    )


async def open_job_service(runtime: Runtime, resources: contextlib.AsyncExitStack) -> JobService:
    """The job service of a web process: records stored, read and queued; without Redis also
    an embedded worker running the jobs here, handing its jobs back when `resources` closes."""
    from app.jobs.sqlite import EmbeddedWorker, SQLiteBackend

    jobs = runtime.jobs
    if isinstance(jobs.backend, SQLiteBackend):
        worker = EmbeddedWorker(jobs, jobs.backend, on_end=jobs.notify)
        worker.start()
        resources.push_async_callback(worker.aclose)
    return JobService(
        settings=runtime.settings,
        backend=jobs.backend,
        store=jobs.store,
        keybox=jobs.keybox,
        callbacks=jobs.callbacks,
    )
