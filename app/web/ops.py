"""The operations resources the lifespan owns: rate limits, error ring, readiness, Sentry API.

`operations(...)` builds them at start-up and closes them on shutdown; handlers reach them
as `request.state.ops`. It also stamps the start time used for uptime, feeds the error ring
from the `app` loggers, and, in multiprocess metrics mode, marks this worker's live gauges
dead when it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from prometheus_client import multiprocess

from app.core import metrics
from app.core.config import Settings
from app.core.sentry import SentryIssues
from app.core.stats import ErrorLog, ErrorLogHandler, multiprocess_mode
from app.upstream.breaker import CircuitBreaker
from app.upstream.readiness import Readiness
from app.web.ratelimit import RateLimits

if TYPE_CHECKING:
    from app.storage import ArchiveStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Operations:
    rate_limits: RateLimits
    error_log: ErrorLog
    readiness: Readiness
    sentry_issues: SentryIssues


@contextlib.asynccontextmanager
async def operations(
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    upstream_base: str,
    operator_key: str | None,
    store: ArchiveStore | None = None,
    breaker: CircuitBreaker | None = None,
) -> AsyncIterator[Operations]:
    """Build the operations resources for one application's lifetime."""
    rate_limits = RateLimits.from_settings(settings)
    error_log = ErrorLog(settings.data_dir / "errors.sqlite3")
    readiness = Readiness(
        http=http,
        upstream_base=upstream_base,
        api_key=operator_key,
        api_version=settings.autoenhance_api_version,
        data_dir=settings.data_dir,
        data_dir_min_free=settings.data_dir_min_free_bytes,
        redis_check=rate_limits.storage.check if settings.redis_url else None,
        store_check=store.probe if store is not None else None,
        store_name=store.description if store is not None else "",
        breaker=breaker,
        ttl=settings.readiness_cache_seconds,
    )
    sentry_issues = SentryIssues.from_settings(settings)
    handler = ErrorLogHandler(error_log)
    app_logger = logging.getLogger("app")
    app_logger.addHandler(handler)
    metrics.STARTED.set(time.time())
    try:
        yield Operations(
            rate_limits=rate_limits,
            error_log=error_log,
            readiness=readiness,
            sentry_issues=sentry_issues,
        )
    finally:
        app_logger.removeHandler(handler)
        await sentry_issues.aclose()
        await rate_limits.aclose()
        if multiprocess_mode():
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
