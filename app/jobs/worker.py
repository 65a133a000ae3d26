"""The arq worker of the Redis (scale-out) backend: `arq app.jobs.worker.WorkerSettings`.

Each worker process reads the same settings as the web service from the environment, connects
to `REDIS_URL`, runs up to `JOB_CONCURRENCY` jobs at once, and sweeps (lapsed leases, expiry)
every `JOB_SWEEP_INTERVAL`. Start as many as needed, on any machine that reaches Redis, the
Autoenhance API and `ARCHIVE_STORE`, with the same `SIGNING_SECRET` as the web processes.

Retries are this service's, not arq's (`max_tries=1`): a run whose process died leaves a lease
that lapses after `JOB_LEASE_SECONDS`, and the sweeper of any live worker queues the job again
as a new arq job. arq's own re-run of a dead worker's job only happens after its in-progress key
expires (`job_timeout` + 10 s), far too late for long jobs; when it does, the runner sees a
stale dispatch number and returns at once.

`WorkerSettings` is built on first access (module `__getattr__`), so importing this module reads
no environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from app.core.config import Settings
from app.core.keys import service_keys
from app.jobs.context import JobContext, callback_client, callback_sender, job_context
from app.jobs.redis import RUN_FUNCTION, WORKERS_KEY, RedisBackend
from app.jobs.runner import run_job
from app.jobs.store import JobArchives
from app.jobs.sweeper import sweep
from app.services.fairness import FairLimiter
from app.storage import open_store
from app.upstream.factory import build_upstream

logger = logging.getLogger("app.jobs.worker")

# Longest a job may run (archive building only; waiting holds no worker), for arq's timeout.
MAX_RUN_SECONDS = 6 * 3600


async def run(ctx: dict[str, Any], job_id: str, dispatch: int) -> None:
    """The arq task: run one hand-over of a job."""
    await run_job(ctx["jobs"], job_id, dispatch=dispatch)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings()
    if settings.sandbox_mode:
        raise RuntimeError(
            "arq workers need AUTOENHANCE_API_KEY: the embedded sandbox lives inside one web "
            "process; point AUTOENHANCE_API_BASE at `python -m app.sandbox` to test instead"
        )
    upstream_clients = build_upstream(settings, base_url=settings.autoenhance_api_base)
    keys = service_keys(settings)
    callbacks_http = callback_client()
    spool_dir = settings.data_dir / "spool"
    archive_store = open_store(settings)
    ctx["archive_store"] = archive_store
    jobs = job_context(
        settings,
        backend=RedisBackend(ctx["redis"]),
        store=JobArchives(archive_store, spool_dir=spool_dir),
        upstream=upstream_clients.client,
        limiter=FairLimiter(settings.upstream_max_connections),
        keys=keys,
        callbacks=callback_sender(settings, callbacks_http, keys=keys),
        spool_dir=spool_dir,
    )
    ctx.update(jobs=jobs, clients=[*upstream_clients.http_clients, callbacks_http])
    ctx["sweeper"] = asyncio.create_task(_sweep_forever(jobs), name="jobs-sweeper")
    # Registered for operators (and tests) to see which workers are up; removed on shutdown.
    await ctx["redis"].hset(WORKERS_KEY, jobs.worker_id, str(os.getpid()))
    logger.info("job worker %s ready", jobs.worker_id)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "jobs" in ctx:
        await ctx["redis"].hdel(WORKERS_KEY, ctx["jobs"].worker_id)
    sweeper = ctx.get("sweeper")
    if sweeper is not None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    if "jobs" in ctx:
        jobs: JobContext = ctx["jobs"]
        await jobs.callbacks.aclose(grace=jobs.settings.callback_timeout)
    for client in ctx.get("clients", []):
        await client.aclose()
    if "jobs" in ctx:
        await ctx["jobs"].store.aclose()
    if "archive_store" in ctx:
        await ctx["archive_store"].aclose()


async def _sweep_forever(jobs: JobContext) -> None:
    settings = jobs.settings
    while True:
        try:
            await sweep(
                jobs.backend,
                jobs.store,
                ttl=settings.job_ttl,
                max_attempts=settings.job_max_attempts,
                on_end=jobs.notify,
            )
        except Exception:
            logger.exception("job sweep failed; retrying")
        await asyncio.sleep(settings.job_sweep_interval)


def worker_settings(settings: Settings) -> type:
    """The arq `WorkerSettings` class for `settings`."""
    from arq import func
    from arq.connections import RedisSettings

    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: the arq worker serves the Redis backend only")
    return type(
        "WorkerSettings",
        (),
        {
            "functions": [func(run, name=RUN_FUNCTION, max_tries=1)],
            "redis_settings": RedisSettings.from_dsn(settings.redis_url),
            "on_startup": startup,
            "on_shutdown": shutdown,
            "ctx": {"settings": settings},
            "max_jobs": settings.job_concurrency,
            "job_timeout": MAX_RUN_SECONDS,
            "keep_result": 60,
            "poll_delay": min(0.5, settings.job_poll_interval),
        },
    )


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        value = worker_settings(Settings())
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
