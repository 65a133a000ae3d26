"""The job worker of the Redis (scale-out) backend: `python -m app.jobs.worker`.

Each worker process reads the same settings as the web service from the environment, connects
to `REDIS_URL`, runs up to `JOB_CONCURRENCY` jobs at once, and sweeps (lapsed leases, expiry,
orphaned archives, dead workers) every `JOB_SWEEP_INTERVAL`. Start as many as needed, on any
machine that reaches Redis, the Autoenhance API and `ARCHIVE_STORE`, with the same
`SIGNING_SECRET` as the web processes.

It is arq's worker with one difference: it outlives Redis. arq's own loop ends the process on
the first connection error of its poll (and an idle worker would then never come back); here a
poll that cannot reach Redis — refused, reset, or silent past `REDIS_TIMEOUT` — is logged once,
retried with a back-off doubling from 0.5 s to 10 s, and the worker says when Redis is back
and goes on taking jobs. At start-up it waits for Redis the same way. Every third of
`JOB_WORKER_STALE_SECONDS` it renews its heartbeat in the registry `jobs:workers` (see
`app.jobs.redis`); web processes report in `/ready` and `/metrics` when no heartbeat is recent.

Retries are this service's, not arq's (`max_tries=1`): a run whose process died leaves a lease
that lapses after `JOB_LEASE_SECONDS`, and the sweeper of any live worker queues the job again
as a new arq job. arq's own re-run of a dead worker's job only happens after its in-progress key
expires (`job_timeout` + 10 s), far too late for long jobs; when it does, the runner sees a
stale dispatch number and returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker

from app.core.config import Settings
from app.core.keys import service_keys
from app.core.logging import configure_logging
from app.imaging.decoding import DecodingPolicy
from app.imaging.pool import DecodePool
from app.imaging.presets import load_presets
from app.jobs.backend import QueueUnavailable
from app.jobs.context import JobContext, callback_client, callback_sender, job_context
from app.jobs.redis import (
    RUN_FUNCTION,
    UNREACHABLE,
    WORKERS_KEY,
    RedisBackend,
    beat,
    redis_pool,
)
from app.jobs.runner import run_job
from app.jobs.store import JobArchives
from app.jobs.sweeper import sweep
from app.services.fairness import FairLimiter
from app.services.rendering import Renderer
from app.storage import StoreError, open_store
from app.upstream.factory import build_upstream

logger = logging.getLogger("app.jobs.worker")

# Longest a job may run (archive building only; waiting holds no worker), for arq's timeout.
MAX_RUN_SECONDS = 6 * 3600
# Pauses between attempts to reach Redis while it is away: doubling from the first to the last.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0


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
    decoder = DecodePool(
        workers=settings.decode_workers,
        queue=settings.decode_queue,
        policy=DecodingPolicy(
            max_scans=settings.decode_max_scans, deadline=settings.decode_deadline
        ),
    )
    ctx["decoder"] = decoder
    jobs = job_context(
        settings,
        backend=RedisBackend(ctx["redis"], timeout=settings.redis_timeout),
        store=JobArchives(
            archive_store, spool_dir=spool_dir, min_free=settings.data_dir_min_free_bytes
        ),
        upstream=upstream_clients.client,
        limiter=FairLimiter(settings.upstream_max_connections),
        keys=keys,
        callbacks=callback_sender(settings, callbacks_http, keys=keys),
        spool_dir=spool_dir,
        renderer=Renderer(
            decoder, concurrency=settings.decode_workers, max_pixels=settings.render_max_pixels
        ),
        presets=load_presets(settings.presets_file),
    )
    ctx.update(jobs=jobs, clients=[*upstream_clients.http_clients, callbacks_http])
    ctx["sweeper"] = asyncio.create_task(_sweep_forever(jobs), name="jobs-sweeper")
    # Registered for operators (and web processes) to see which workers are up; renewed on a
    # timer, removed on shutdown, forgotten by readers once stale (a killed worker).
    await _beat(ctx["redis"], jobs)
    ctx["heartbeat"] = asyncio.create_task(_beat_forever(ctx["redis"], jobs), name="jobs-beat")
    logger.info("job worker %s ready", jobs.worker_id)


async def shutdown(ctx: dict[str, Any]) -> None:
    for name in ("heartbeat", "sweeper"):
        task = ctx.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if "jobs" in ctx:
        with contextlib.suppress(*UNREACHABLE):
            async with asyncio.timeout(ctx["jobs"].settings.redis_timeout):
                await ctx["redis"].hdel(WORKERS_KEY, ctx["jobs"].worker_id)
    if "jobs" in ctx:
        jobs: JobContext = ctx["jobs"]
        await jobs.callbacks.aclose(grace=jobs.settings.callback_timeout)
    for client in ctx.get("clients", []):
        await client.aclose()
    if "jobs" in ctx:
        await ctx["jobs"].store.aclose()
    if "decoder" in ctx:
        ctx["decoder"].close()
    if "archive_store" in ctx:
        await ctx["archive_store"].aclose()


async def _beat(redis: ArqRedis, jobs: JobContext) -> None:
    async with asyncio.timeout(jobs.settings.redis_timeout):
        await beat(redis, jobs.worker_id, pid=os.getpid(), host=socket.gethostname())


async def _beat_forever(redis: ArqRedis, jobs: JobContext) -> None:
    """Renew this worker's heartbeat every third of JOB_WORKER_STALE_SECONDS."""
    while True:
        await asyncio.sleep(jobs.settings.job_worker_stale_seconds / 3)
        try:
            await _beat(redis, jobs)
        except UNREACHABLE as exc:  # the poll loop logs the outage; the next beat re-registers
            logger.debug("heartbeat not recorded: %r", exc)


async def _sweep_forever(jobs: JobContext) -> None:
    settings = jobs.settings
    backend = jobs.backend
    assert isinstance(backend, RedisBackend)
    while True:
        try:
            await sweep(
                backend,
                jobs.store,
                ttl=settings.job_ttl,
                max_attempts=settings.job_max_attempts,
                on_end=jobs.notify,
                orphan_grace=settings.job_orphan_grace,
            )
            await backend.workers(stale_after=settings.job_worker_stale_seconds)
        except QueueUnavailable:
            logger.debug("job sweep skipped: Redis is unreachable")
        except StoreError as exc:
            logger.warning("job sweep incomplete: the archive store failed: %s", exc)
        except Exception:
            logger.exception("job sweep failed; retrying")
        await asyncio.sleep(settings.job_sweep_interval)


class ResilientWorker(Worker):
    """arq's worker, outliving Redis outages (see the module docstring)."""

    def __init__(self, *, redis_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._redis_timeout = redis_timeout
        self._down_since: float | None = None
        self._backoff = BACKOFF_FIRST

    async def main(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._redis_timeout):
                    await self.pool.ping()
                break
            except UNREACHABLE as exc:
                await self._outage(exc)
        self._recovered()
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            async with asyncio.timeout(self._redis_timeout * 4):
                await super()._poll_iteration()
        except UNREACHABLE as exc:
            await self._outage(exc)
        else:
            self._recovered()

    async def _outage(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "Redis is unreachable (%s); retrying with back-off up to %.0f s",
                type(exc).__name__,
                BACKOFF_MAX,
            )
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _recovered(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "Redis is reachable again after %.1f s; taking jobs",
                time.monotonic() - self._down_since,
            )
        self._down_since = None
        self._backoff = BACKOFF_FIRST

    async def close(self) -> None:
        # arq's close stops at the first Redis error and would skip `on_shutdown` (jobs handed
        # back, callbacks drained, clients closed): every Redis call here is best effort.
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        with contextlib.suppress(*UNREACHABLE):
            async with asyncio.timeout(self._redis_timeout):
                await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.close(close_connection_pool=True)
        self._pool = None


def worker_options(settings: Settings) -> dict[str, Any]:
    """The arq `Worker` options for `settings` (its Redis pool included)."""
    from arq import func

    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: the job worker serves the Redis backend only")
    return {
        "functions": [func(run, name=RUN_FUNCTION, max_tries=1)],
        "redis_pool": redis_pool(settings.redis_url, timeout=settings.redis_timeout),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": settings.job_concurrency,
        "job_timeout": MAX_RUN_SECONDS,
        "keep_result": 60,
        "poll_delay": min(0.5, settings.job_poll_interval),
    }


def main() -> None:
    """Run one worker until SIGINT or SIGTERM."""
    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    ResilientWorker(redis_timeout=settings.redis_timeout, **worker_options(settings)).run()


if __name__ == "__main__":
    main()
