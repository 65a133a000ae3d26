"""The arq worker opens the one runtime of a process and closes it all on shutdown.

In-process against a real redis-server: `startup` and `shutdown` are called as arq calls them,
with the context `worker_options` gives.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.jobs.context import JobContext
from app.jobs.redis import UNREACHABLE, WORKERS_KEY
from app.jobs.worker import shutdown, startup, worker_options
from testkit.processes import free_port
from tests.conftest import SettingsFactory

# A database of the shared redis-server no other test uses.
DATABASE = 5


def _context(settings_factory: SettingsFactory, **overrides: Any) -> dict[str, Any]:
    options = worker_options(settings_factory(**overrides))
    return {**options["ctx"], "redis": options["redis_pool"]}


def _background() -> set[str]:
    return {
        task.get_name()
        for task in asyncio.all_tasks()
        if task.get_name() in ("jobs-sweeper", "jobs-beat") and not task.done()
    }


@pytest.mark.redis
async def test_shutdown_closes_everything_startup_opened(
    redis_url: str, make_settings: SettingsFactory
) -> None:
    ctx = _context(make_settings, redis_url=f"{redis_url}/{DATABASE}")
    try:
        await startup(ctx)
        jobs: JobContext = ctx["jobs"]
        assert jobs.worker_id.encode() in await ctx["redis"].hkeys(WORKERS_KEY)
        assert _background() == {"jobs-sweeper", "jobs-beat"}
        callbacks_http = jobs.callbacks._client
        assert not callbacks_http.is_closed

        await shutdown(ctx)

        assert _background() == set()
        assert jobs.worker_id.encode() not in await ctx["redis"].hkeys(WORKERS_KEY)
        assert callbacks_http.is_closed
    finally:
        await ctx["redis"].aclose()


async def test_a_startup_that_fails_half_way_is_closed_by_shutdown(
    make_settings: SettingsFactory,
) -> None:
    # Nothing listens there: the runtime opens, then the first heartbeat fails.
    ctx = _context(make_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.5)
    try:
        with pytest.raises(UNREACHABLE):
            await startup(ctx)
        jobs: JobContext = ctx["jobs"]
        assert _background() == {"jobs-sweeper"}
        await shutdown(ctx)
        assert _background() == set()
        assert jobs.callbacks._client.is_closed
    finally:
        await ctx["redis"].aclose()


async def test_a_worker_refused_at_startup_shuts_down_cleanly(
    make_settings: SettingsFactory,
) -> None:
    ctx = _context(make_settings, redis_url="redis://127.0.0.1:1/0", autoenhance_api_key=None)
    try:
        with pytest.raises(RuntimeError, match="AUTOENHANCE_API_KEY"):
            await startup(ctx)
        await shutdown(ctx)
        assert "jobs" not in ctx
    finally:
        await ctx["redis"].aclose()
