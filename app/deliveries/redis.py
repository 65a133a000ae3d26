"""The scale-out delivery store: records in Redis, shared by every node.

Records are JSON strings under `deliveries:record:<id>`; `deliveries:token:<hash>` names the
delivery of a link, and a sorted set per owner and order lists an order's deliveries.
`update` is optimistic (WATCH/MULTI/EXEC, retried on conflict), as the job records are.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.deliveries.models import DeliveryRecord
from app.deliveries.store import DeliveriesUnavailable, Mutation
from app.jobs.redis import watched_update

PREFIX = "deliveries:"
# Writers racing on one delivery: a few parallel ranges of one download, a PATCH, a PIN.
MAX_CAS_TRIES = 100

logger = logging.getLogger("app.deliveries")

P = ParamSpec("P")
R = TypeVar("R")


# Redis being down (refused, reset), or silent past the deadline.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


def _reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`method` under the store's deadline (`REDIS_TIMEOUT`), raising Redis being down,
    refusing or silent as `DeliveriesUnavailable` (a 503 with Retry-After)."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, RedisDeliveryStore)
        try:
            async with asyncio.timeout(store.timeout):
                return await method(*args, **kwargs)
        except UNREACHABLE as exc:
            logger.warning("delivery store unavailable: %s", type(exc).__name__)
            raise DeliveriesUnavailable() from exc

    return call


def _record_key(delivery_id: str) -> str:
    return f"{PREFIX}record:{delivery_id}"


def _token_key(token_hash: str) -> str:
    return f"{PREFIX}token:{token_hash}"


def _order_key(owner: str, order_id: str) -> str:
    return f"{PREFIX}order:{owner}:{order_id}"


class RedisDeliveryStore:
    name = "redis"

    def __init__(self, redis: Redis, *, timeout: float) -> None:
        self._redis = redis
        self.timeout = timeout  # seconds one call may take, retries of a watched update included

    @classmethod
    def from_url(cls, url: str, *, timeout: float) -> RedisDeliveryStore:
        """A store over a pool that connects on first use (a web process starts while Redis
        is down; delivery requests get 503 until it answers), whose sockets give up after
        `timeout` seconds."""
        return cls(
            Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout),
            timeout=timeout,
        )

    @_reachable
    async def insert(self, record: DeliveryRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_record_key(record.delivery_id), record.model_dump_json())
            pipe.set(_token_key(record.token_hash), record.delivery_id)
            pipe.zadd(
                _order_key(record.owner, record.order_id), {record.delivery_id: record.created_at}
            )
            await pipe.execute()

    @_reachable
    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        raw = await self._redis.get(_record_key(delivery_id))
        return DeliveryRecord.model_validate_json(raw) if raw else None

    @_reachable
    async def by_token(self, token_hash: str) -> DeliveryRecord | None:
        delivery_id = await self._redis.get(_token_key(token_hash))
        if not delivery_id:
            return None
        return await self.get(delivery_id.decode())

    @_reachable
    async def update(self, delivery_id: str, mutate: Mutation) -> DeliveryRecord | None:
        return await watched_update(
            self._redis, _record_key(delivery_id), DeliveryRecord, mutate, tries=MAX_CAS_TRIES
        )

    @_reachable
    async def of_order(self, owner: str, order_id: str) -> list[DeliveryRecord]:
        ids = [m.decode() for m in await self._redis.zrange(_order_key(owner, order_id), 0, -1)]
        if not ids:
            return []
        raws = await self._redis.mget([_record_key(i) for i in ids])
        return [DeliveryRecord.model_validate_json(raw) for raw in raws if raw]

    async def aclose(self) -> None:
        await self._redis.aclose()
