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
from collections.abc import Coroutine
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker

from app.core.config import Settings
from app.core.logging import configure_logging
from app.imaging.presets import load_presets
from app.jobs.backend import QueueUnavailable
from app.jobs.context import JobContext
from app.jobs.redis import (
    RUN_FUNCTION,
    UNREACHABLE,
    RedisBackend,
    beat,
    leave,
    redis_pool,
)
from app.jobs.runner import run_job
from app.jobs.runtime import open_runtime
from app.jobs.sweeper import sweep
from app.storage import StoreError

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
    """Open this worker's runtime (as a web process opens its own: `open_runtime`) on the
    stack `ctx["resources"]`, then its sweeper and heartbeat; `shutdown` closes that stack."""
    settings: Settings = ctx["settings"]
    if settings.sandbox_mode:
        raise RuntimeError(
            "arq workers need AUTOENHANCE_API_KEY: the embedded sandbox lives inside one web "
            "process; point AUTOENHANCE_API_BASE at `python -m app.sandbox` to test instead"
        )
    resources: contextlib.AsyncExitStack = ctx["resources"]
    redis: ArqRedis = ctx["redis"]
    runtime = await open_runtime(
        settings,
        resources,
        backend=RedisBackend(redis, timeout=settings.redis_timeout),
        presets=load_presets(settings.presets_file),
    )
    jobs = ctx["jobs"] = runtime.jobs
    # Registered for operators (and web processes) to see which workers are up; renewed on a
    # timer, removed on shutdown, forgotten by readers once stale (a killed worker).
    resources.push_async_callback(_leave, redis, jobs)
    _in_background(resources, _sweep_forever(jobs), name="jobs-sweeper")
    await _beat(redis, jobs)
    _in_background(resources, _beat_forever(redis, jobs), name="jobs-beat")
    logger.info("job worker %s ready", jobs.worker_id)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the heartbeat and the sweeper, leave the registry, drain pending callbacks, and
    close the clients and stores: everything `startup` opened, in reverse order."""
    resources: contextlib.AsyncExitStack = ctx["resources"]
    await resources.aclose()


def _in_background(
    resources: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None], *, name: str
) -> None:
    """Run `work` as a task, cancelled (and waited for) when `resources` closes."""
    task = asyncio.create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    resources.push_async_callback(stop)


async def _leave(redis: ArqRedis, jobs: JobContext) -> None:
    with contextlib.suppress(*UNREACHABLE):
        async with asyncio.timeout(jobs.settings.redis_timeout):
            await leave(redis, jobs.worker_id)


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
    this = asyncio.current_task()
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
        # A cancellation that meets an answer arriving can be lost on the way down (as with
        # `asyncio.wait_for` on Python 3.11): stop all the same, or shutdown waits for ever.
        if this is not None and this.cancelling():
            return
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
        "ctx": {"settings": settings, "resources": contextlib.AsyncExitStack()},
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
