"""Rate limits shared through a real redis-server, as several workers or machines share them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from limits import parse_many

from app.core.errors import TooManyRequests
from app.web.ratelimit import RateLimits, build_storage
from testkit.processes import redis_server
from tests.support import require_tool

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server(require_tool("redis-server")) as url:
        yield f"{url}/0"


async def test_two_workers_share_one_budget(redis_url: str) -> None:
    rules = {"downloads": parse_many("3/minute")}
    first = RateLimits(rules=rules, storage=build_storage(redis_url))
    second = RateLimits(rules=rules, storage=build_storage(redis_url))
    await first.hit("downloads", "ip:a")
    await second.hit("downloads", "ip:a")
    await first.hit("downloads", "ip:a")
    with pytest.raises(TooManyRequests) as caught:
        await second.hit("downloads", "ip:a")
    assert int(caught.value.headers["Retry-After"]) >= 1
    assert await first.storage.check()
    await first.aclose()
    await second.aclose()


async def test_an_unreachable_redis_lets_requests_through(refused_port: int) -> None:
    limits = RateLimits(
        rules={"downloads": parse_many("1/minute")},
        storage=build_storage(f"redis://127.0.0.1:{refused_port}/0"),
    )
    await limits.hit("downloads", "ip:a")
    await limits.hit("downloads", "ip:a")  # over the limit, but the storage is down: fail open
    await limits.aclose()
