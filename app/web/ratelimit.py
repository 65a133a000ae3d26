"""Rate limits per client, with the `limits` library (in memory, or Redis when configured).

Every request counts against its client address. `X-Forwarded-For` is believed only when the
peer is one of `TRUSTED_PROXIES`: the client is then the right-most address in the chain that
is not a trusted proxy. A request that brings its own Autoenhance key (`X-Autoenhance-Key`)
also counts against the hash of that key: a key adds a budget of its own (a key spread over
many addresses is limited too) and never lifts the address's, so made-up keys buy an
attacker nothing. The key is unchecked at this point, which is why it can only restrict.

Routes attach a rule by name with a dependency:

    @router.post("/orders/{order_id}/jobs", dependencies=[Depends(rate_limit("jobs"))])

Rules: `downloads` (RATE_LIMIT_DOWNLOADS), `lookups` (RATE_LIMIT_LOOKUPS: summaries, HEADs of
archives and the order list), `create_orders` (RATE_LIMIT_CREATE_ORDERS), `jobs`
(RATE_LIMIT_JOBS), `job_status` (RATE_LIMIT_JOB_STATUS), `links` (RATE_LIMIT_LINKS),
`job_downloads` (RATE_LIMIT_JOB_DOWNLOADS), `thumbnails` (RATE_LIMIT_THUMBNAILS), `ask`
(ASK_RATE_LIMIT). A refused request gets the JSON 429 with `Retry-After`. When the Redis
storage fails — refuses, errs, or does not answer within `REDIS_TIMEOUT` (the sockets time
out, and so does each check as a whole) — the request is let through and a warning is logged:
a rate limiter must not take the service down with it, nor make it wait for Redis. After a
failure, requests are let through without asking the storage for `HOLD_OFF` seconds, so a hung
Redis costs one request in that time a deadline here, not every request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from app.core import metrics
from app.core.config import Settings
from app.core.errors import TooManyRequests
from app.core.security import own_key_owner

logger = logging.getLogger("app.ratelimit")

RuleName = Literal[
    "downloads",
    "lookups",
    "create_orders",
    "jobs",
    "job_status",
    "job_downloads",
    "links",
    "thumbnails",
    "ask",
]
# Seconds one check may take when the settings do not say (in-memory storage never waits).
DEFAULT_TIMEOUT = 1.5
# Seconds after a storage failure during which requests are let through without asking it.
HOLD_OFF = 5.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _rules(settings: Settings) -> dict[str, list[RateLimitItem]]:
    configured = {
        "downloads": settings.rate_limit_downloads,
        "lookups": settings.rate_limit_lookups,
        "create_orders": settings.rate_limit_create_orders,
        "jobs": settings.rate_limit_jobs,
        "job_status": settings.rate_limit_job_status,
        "job_downloads": settings.rate_limit_job_downloads,
        "links": settings.rate_limit_links,
        "thumbnails": settings.rate_limit_thumbnails,
        "ask": settings.ask_rate_limit,
    }
    return {name: parse_many(text) if text else [] for name, text in configured.items()}


def build_storage(redis_url: str | None, *, timeout: float = DEFAULT_TIMEOUT) -> Storage:
    """Redis storage when `redis_url` is set (shared by every worker and node), else memory;
    Redis sockets give up after `timeout` seconds."""
    if not redis_url:
        return MemoryStorage(wrap_exceptions=True)
    storage = storage_from_string(
        f"async+{redis_url}",
        implementation="redispy",
        wrap_exceptions=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    assert isinstance(storage, Storage)
    return storage


class RateLimits:
    """The named rules of the service over one storage."""

    def __init__(
        self,
        *,
        rules: dict[str, list[RateLimitItem]],
        storage: Storage,
        trusted_proxies: Iterable[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.rules = rules
        self.storage = storage
        self.timeout = timeout
        self._failed_until = 0.0  # monotonic time until which the storage is not asked
        self.trusted_proxies: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in trusted_proxies
        )
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            rules=_rules(settings),
            storage=build_storage(settings.redis_url, timeout=settings.redis_timeout),
            trusted_proxies=settings.trusted_proxies,
            timeout=settings.redis_timeout,
        )

    async def aclose(self) -> None:
        """Close the Redis connections, if any (memory storage holds none)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            await aclose()

    async def hit(self, rule: str, *clients: str) -> None:
        """Count one request against `rule` for each of `clients`, in order.

        The first client over a limit refuses the request; the clients after it are not
        counted (a refused address does not spend the budget of the key it sent).

        Raises:
            TooManyRequests: a limit of the rule is exhausted; `Retry-After` says when the
                oldest counted request leaves the window.
        """
        for client in clients:
            await self._hit_one(rule, client)

    async def _hit_one(self, rule: str, client: str) -> None:
        if time.monotonic() < self._failed_until:
            return  # the storage failed a moment ago: let the request through at once
        for item in self.rules.get(rule, []):
            try:
                async with asyncio.timeout(self.timeout):
                    if await self._limiter.hit(item, rule, client):
                        continue
                    stats = await self._limiter.get_window_stats(item, rule, client)
            except (StorageError, TimeoutError) as exc:
                self._failed_until = time.monotonic() + HOLD_OFF
                logger.warning(
                    "rate limit storage failed (%s); request let through",
                    exc if isinstance(exc, StorageError) else f"no answer in {self.timeout} s",
                )
                return
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            metrics.RATE_LIMITED.labels(rule).inc()
            raise TooManyRequests(
                f"Too many requests: the limit is {item.amount} per "
                f"{item.multiples} {item.GRANULARITY.name}(s). Retry in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
            )


def client_address(request: Request, trusted: tuple[Network, ...]) -> str:
    """The caller's address, looking through trusted proxies only."""
    peer = request.client.host if request.client else "unknown"
    if not _is_trusted(peer, trusted):
        return peer
    chain = [
        part.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for part in header.split(",")
        if part.strip()
    ]
    client = peer
    for hop in reversed(chain):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a forged or garbled entry: stop at the last address we can vouch for
        client = hop
        if not _is_trusted(hop, trusted):
            break
    return client


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_keys(request: Request, trusted: tuple[Network, ...]) -> tuple[str, ...]:
    """Whom a request counts against: its address, and the hash of its own key if it sent one."""
    address = "ip:" + client_address(request, trusted)
    own_key = request.headers.get("x-autoenhance-key", "").strip()
    if own_key:
        return address, own_key_owner(own_key)
    return (address,)


def rate_limit(rule: RuleName) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency counting the request against `rule` (see the module docstring).

    Raises:
        TooManyRequests: from the dependency, when the client is over the limit.
    """

    async def check_rate_limit(request: Request) -> None:
        limits: RateLimits = request.state.ops.rate_limits
        await limits.hit(rule, *client_keys(request, limits.trusted_proxies))

    check_rate_limit.__name__ = f"rate_limit_{rule}"
    return check_rate_limit
