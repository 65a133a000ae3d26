"""The scale-out backend: job records in Redis, jobs run by arq workers in other processes.

Selected by `REDIS_URL`. Web processes store records and enqueue; `arq
app.jobs.worker.WorkerSettings` processes (any number, on any machine reaching Redis and the
archive store) run them. Each hand-over to arq carries the record's `dispatch` number and
uses `<job id>:<dispatch>` as the arq job id, so a re-queued job is a new arq job and a stale
delivery (an arq retry of a run whose lease was already taken back) is ignored by the runner.

Records are JSON strings under `jobs:record:<id>`; `update` is optimistic (WATCH/MULTI/EXEC,
retried on conflict). A sorted set indexes all jobs and a set per order lists its jobs (for
webhooks). The payload that crosses the network holds only ids: a caller's own key stays
sealed in the record (see `app.jobs.keybox`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from arq.connections import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from app.jobs.backend import Mutation, QueueUnavailable
from app.jobs.models import JobRecord, JobState

PREFIX = "jobs:"
INDEX = PREFIX + "index"
WORKERS_KEY = PREFIX + "workers"  # worker id -> pid of the arq workers that are up
RUN_FUNCTION = "run_job"
# Conflicting writers to one record are a handful at most (runner, sweeper, a DELETE).
MAX_CAS_TRIES = 50


logger = logging.getLogger("app.jobs")


P = ParamSpec("P")
R = TypeVar("R")


def _reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`method`, raising Redis being down or silent as `QueueUnavailable` (callers get a 503)."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            logger.warning("job store unavailable: %s", type(exc).__name__)
            raise QueueUnavailable() from exc

    return call


def _record_key(job_id: str) -> str:
    return f"{PREFIX}record:{job_id}"


def _order_key(order_id: str) -> str:
    return f"{PREFIX}order:{order_id}"


class RedisBackend:
    """Job records in Redis; runs go through the arq queue."""

    name = "redis"

    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis

    @_reachable
    async def insert(self, record: JobRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_record_key(record.job_id), record.model_dump_json())
            pipe.zadd(INDEX, {record.job_id: record.created_at})
            pipe.sadd(_order_key(record.order_id), record.job_id)
            await pipe.execute()

    @_reachable
    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self._redis.get(_record_key(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    @_reachable
    async def update(self, job_id: str, mutate: Mutation) -> JobRecord | None:
        key = _record_key(job_id)
        for _ in range(MAX_CAS_TRIES):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if not raw:
                        return None
                    record = JobRecord.model_validate_json(raw)
                    if not mutate(record):
                        return record
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, record.model_dump_json())
                    await pipe.execute()
                    return record
                except WatchError:
                    continue
        raise RuntimeError(f"job {job_id}: too many concurrent updates")

    @_reachable
    async def delete(self, job_id: str) -> None:
        record = await self.get(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_record_key(job_id))
            pipe.zrem(INDEX, job_id)
            if record is not None:
                pipe.srem(_order_key(record.order_id), job_id)
            await pipe.execute()

    @_reachable
    async def job_ids(
        self, *, states: Iterable[JobState] | None = None, order_id: str | None = None
    ) -> list[str]:
        if order_id is not None:
            members = await self._redis.smembers(_order_key(order_id))  # type: ignore[misc]
            ids = sorted(m.decode() for m in members)
        else:
            ids = [m.decode() for m in await self._redis.zrange(INDEX, 0, -1)]
        if states is None or not ids:
            return ids
        wanted = set(states)
        raws = await self._redis.mget([_record_key(job_id) for job_id in ids])
        return [
            job_id
            for job_id, raw in zip(ids, raws, strict=True)
            if raw and JobRecord.model_validate_json(raw).state in wanted
        ]

    @_reachable
    async def dispatch(self, record: JobRecord) -> None:
        defer = None
        if record.not_before > time.time():
            defer = datetime.fromtimestamp(record.not_before, tz=UTC)
        await self._redis.enqueue_job(
            RUN_FUNCTION,
            record.job_id,
            record.dispatch,
            _job_id=f"{record.job_id}:{record.dispatch}",
            _defer_until=defer,
        )

    async def aclose(self) -> None:
        await self._redis.aclose()
