"""The scale-out backend: job records in Redis, jobs run by arq workers in other processes.

Selected by `REDIS_URL`. Web processes store records and enqueue; `arq
app.jobs.worker.WorkerSettings` processes (any number, on any machine reaching Redis and the
archive store) run them. Each hand-over to arq carries the record's `dispatch` number and
uses `<job id>:<dispatch>` as the arq job id, so a re-queued job is a new arq job and a stale
delivery (an arq retry of a run whose lease was already taken back) is ignored by the runner.

Records are JSON strings under `jobs:record:<id>`; `update` is optimistic (WATCH/MULTI/EXEC,
retried on conflict). A sorted set indexes all jobs and a set per order lists its jobs (for
webhooks and the order's job listing). The payload that crosses the network holds only ids: a
caller's own key stays sealed in the record (see `app.jobs.keybox`).

Every call has a deadline, `REDIS_TIMEOUT`: the pool's sockets time out after it, and each
backend method as a whole (a compare-and-set may take several round trips) is cancelled after
it. A Redis that is down, refuses or hangs (`kill -STOP`) is a `QueueUnavailable` (503 with
`Retry-After`) within that time, never a request that waits for Redis to come back.

Workers register in the hash `jobs:workers` (worker id -> JSON `{pid, host, beat}`) and renew
`beat` every third of `JOB_WORKER_STALE_SECONDS`; an entry older than that is a worker that
died (SIGKILL leaves no chance to deregister) and is removed by whoever reads the registry.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from arq.connections import ArqRedis
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from app.jobs.backend import Mutation, QueueUnavailable, WorkerBeat
from app.jobs.models import JobRecord, JobState

PREFIX = "jobs:"
INDEX = PREFIX + "index"
WORKERS_KEY = PREFIX + "workers"  # worker id -> {"pid", "host", "beat"} of arq workers
RUN_FUNCTION = "run_job"
# Conflicting writers to one record are a handful at most (runner, sweeper, a DELETE).
MAX_CAS_TRIES = 50


logger = logging.getLogger("app.jobs")


P = ParamSpec("P")
R = TypeVar("R")
# Redis being down (refused, reset), or silent past the deadline.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


M = TypeVar("M", bound=BaseModel)


async def watched_update(
    redis: Redis, key: str, model: type[M], mutate: Callable[[M], bool], *, tries: int
) -> M | None:
    """Read the record at `key`, let `mutate` change it in place, and write it back only if
    nobody wrote `key` meanwhile (WATCH/MULTI), retrying up to `tries` times. `mutate`
    answers False to leave the record as it is. None when there is no record.

    Raises:
        RuntimeError: every try met a concurrent write.
    """
    for _ in range(tries):
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if not raw:
                    return None
                record = model.model_validate_json(raw)
                if not mutate(record):
                    return record
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.set(key, record.model_dump_json())
                await pipe.execute()
                return record
            except WatchError:
                continue
    raise RuntimeError(f"{key}: too many concurrent updates")


def redis_pool(url: str, *, timeout: float) -> ArqRedis:
    """An arq pool for `url` whose sockets give up after `timeout` seconds (connecting and
    every read). It connects on first use, so creating it never waits for Redis."""
    # from_url makes the client own its connection pool, so closing the client closes it.
    pool: ArqRedis = ArqRedis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return pool


class _Bounded(Protocol):
    _timeout: float


def _reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`method` under the backend's deadline, raising Redis being down, refusing or silent as
    `QueueUnavailable` (callers get a 503 with Retry-After)."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        backend: _Bounded = args[0]  # type: ignore[assignment]
        try:
            async with asyncio.timeout(backend._timeout):
                return await method(*args, **kwargs)
        except UNREACHABLE as exc:
            logger.warning("job store unavailable: %s", type(exc).__name__ or "timeout")
            raise QueueUnavailable() from exc

    return call


def _record_key(job_id: str) -> str:
    return f"{PREFIX}record:{job_id}"


def _order_key(order_id: str) -> str:
    return f"{PREFIX}order:{order_id}"


class RedisBackend:
    """Job records in Redis; runs go through the arq queue."""

    name = "redis"

    def __init__(self, redis: ArqRedis, *, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

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
        return await watched_update(
            self._redis, _record_key(job_id), JobRecord, mutate, tries=MAX_CAS_TRIES
        )

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

    @_reachable
    async def workers(self, *, stale_after: float) -> list[WorkerBeat]:
        """The workers that sent a heartbeat in the last `stale_after` seconds; entries of
        workers silent for longer (killed, or cut off) are removed."""
        return await live_workers(self._redis, stale_after=stale_after)

    async def aclose(self) -> None:
        await self._redis.aclose()


# Removes a registry entry only if it still holds the value that was judged stale.
_FORGET = (
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
    "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0"
)


async def beat(redis: ArqRedis, worker_id: str, *, pid: int, host: str) -> None:
    """Register `worker_id` as alive now (a worker calls this on a timer)."""
    entry = json.dumps({"pid": pid, "host": host, "beat": time.time()})
    await redis.hset(WORKERS_KEY, worker_id, entry)  # type: ignore[misc]


async def leave(redis: ArqRedis, worker_id: str) -> None:
    """Remove `worker_id` from the registry (a worker calls this as it stops)."""
    await redis.hdel(WORKERS_KEY, worker_id)  # type: ignore[misc]


async def live_workers(redis: ArqRedis, *, stale_after: float) -> list[WorkerBeat]:
    """Registered workers whose last heartbeat is under `stale_after` seconds old; the others
    are removed from the registry (a worker that comes back registers again)."""
    now = time.time()
    entries: dict[bytes, bytes] = await redis.hgetall(WORKERS_KEY)  # type: ignore[misc]
    live: list[WorkerBeat] = []
    dead: list[bytes] = []
    for key, raw in entries.items():
        try:
            data = json.loads(raw)
            entry = WorkerBeat(
                key.decode(), int(data["pid"]), str(data["host"]), float(data["beat"])
            )
        except (ValueError, KeyError, TypeError):
            dead.append(key)  # an entry of an older version, or garbage: no heartbeat
            continue
        if now - entry.beat > stale_after:
            dead.append(key)
        else:
            live.append(entry)
    if dead:
        for key in dead:  # only if unchanged: a worker that just beat again stays
            await redis.eval(_FORGET, 1, WORKERS_KEY, key.decode(), entries[key].decode())  # type: ignore[misc]
        logger.warning(
            "forgot %d job worker(s) without a heartbeat for %.0f s: %s",
            len(dead),
            stale_after,
            ", ".join(key.decode(errors="replace") for key in dead),
        )
    return live
