"""Endpoints for monitors and operators: health, readiness, metrics, stats, Sentry."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from app.api.auth import AdminDep, is_admin
from app.api.deps import JobsDep, OpsDep, SettingsDep
from app.core.errors import BadGateway, Unauthorized, error_responses
from app.core.security import same_secret
from app.core.sentry import SentryApiError, SentryIssue
from app.core.stats import collect_registry, service_stats
from app.jobs.backend import QueueUnavailable
from app.jobs.service import JobService

router = APIRouter(tags=["operations"])
metrics_bearer = HTTPBearer(auto_error=False, description="METRICS_TOKEN, when it is set")


class Health(BaseModel):
    status: Literal["ok"]
    mode: Literal["sandbox", "live"]
    upstream_key_configured: bool
    version: str


class CheckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ok: bool
    detail: str


class ReadinessOut(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, CheckOut]


# Checks that, failing, leave the instance serving (downloads work), only some of it degraded.
DEGRADING = frozenset({"workers"})


async def _workers_check(jobs: JobService) -> CheckOut | None:
    """Whether some job worker sent a heartbeat lately (Redis backend only)."""
    try:
        health = await jobs.worker_health()
    except QueueUnavailable:
        return None  # the `redis` check already fails, and says why
    if health is None:
        return None
    if health.alive:
        return CheckOut(ok=True, detail=f"{health.alive} job worker(s) alive")
    since = (
        "no job worker has registered yet"
        if health.last_beat_age is None
        else f"the last heartbeat of a job worker was {health.last_beat_age:.0f} s ago"
    )
    return CheckOut(
        ok=False,
        detail=f"{since} (JOB_WORKER_STALE_SECONDS is {health.stale_after:.0f}): "
        "new jobs stay queued until a worker runs",
    )


class ErrorEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime  # from the event's Unix time, in UTC
    kind: str
    status: int | None
    route: str | None
    request_id: str | None
    message: str


class Stats(BaseModel):
    # Read from `ServiceStats` and, for administrators, the `ErrorEvent`s (a class docstring
    # would show in /docs).
    model_config = ConfigDict(from_attributes=True)

    orders_processed: int
    images_downloaded: int
    images_failed: int
    archives_served: int
    orders_created: int
    uptime_seconds: float
    recent_errors: list[ErrorEventOut] | None = None


class SentryIssuesOut(BaseModel):
    configured: bool
    message: str | None = None
    issues: list[SentryIssue] = []


@router.get("/health", response_model=Health, operation_id="health")
async def health(request: Request, settings: SettingsDep) -> Health:
    """Liveness: the process answers. No upstream call; never shows a key."""
    return Health(
        status="ok",
        mode=settings.mode,
        upstream_key_configured=settings.autoenhance_api_key is not None,
        version=request.app.version,
    )


@router.head("/health", response_model=Health, operation_id="health_head")
async def health_head(request: Request, settings: SettingsDep) -> Health:
    """Liveness for monitors that send HEAD: the same answer, without a body."""
    return await health(request, settings)


@router.get(
    "/ready",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "A check failed; it is named"}},
)
async def ready(ops: OpsDep, jobs: JobsDep, response: Response) -> ReadinessOut:
    """ReadinessOut: upstream reachable (cached probe), circuit not open, store writable, Redis;
    `degraded` (still 200) when no job worker sent a heartbeat lately."""
    checks = {check.name: CheckOut.model_validate(check) for check in await ops.readiness.check()}
    workers = await _workers_check(jobs)
    if workers is not None:
        checks["workers"] = workers
    failing = {name for name, check in checks.items() if not check.ok}
    response.status_code = 503 if failing - DEGRADING else 200
    response.headers["Cache-Control"] = "no-store"
    status: Literal["ready", "degraded", "not_ready"] = "ready"
    if failing:
        status = "not_ready" if failing - DEGRADING else "degraded"
    return ReadinessOut(status=status, checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        **error_responses(401),
    },
)
async def prometheus_metrics(
    settings: SettingsDep,
    jobs: JobsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)],
) -> Response:
    """Prometheus metrics of every worker; needs `Bearer METRICS_TOKEN` when that is set."""
    if settings.metrics_token is not None:
        given = credentials.credentials if credentials is not None else None
        if not same_secret(given, settings.metrics_token.get_secret_value()):
            raise Unauthorized("Metrics need the METRICS_TOKEN as a Bearer token.")
    with contextlib.suppress(QueueUnavailable):  # the gauges keep their last value
        await jobs.worker_health()
    body = generate_latest(collect_registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


@router.get("/api/stats", response_model=Stats, response_model_exclude_none=True)
async def stats(request: Request, settings: SettingsDep, ops: OpsDep) -> Stats:
    """Service counters across every worker; administrators also get the recent errors."""
    recent = ops.error_log.recent() if await is_admin(request, settings) else None
    return Stats.model_validate(
        {**asdict(service_stats()), "recent_errors": recent}, from_attributes=True
    )


@router.get(
    "/api/sentry/issues",
    response_model=SentryIssuesOut,
    responses=error_responses(401, 403, 502, 503),
)
async def sentry_issues(_: AdminDep, ops: OpsDep) -> SentryIssuesOut:
    """Recent unresolved Sentry issues of the project (administrators)."""
    missing = ops.sentry_issues.missing_settings
    if missing:
        return SentryIssuesOut(
            configured=False,
            message="Sentry's API is not configured: set " + ", ".join(missing) + ".",
        )
    try:
        issues = await ops.sentry_issues.recent()
    except SentryApiError as exc:
        raise BadGateway(str(exc), code="sentry_unavailable") from None
    return SentryIssuesOut(configured=True, issues=issues)


class SentryDebugError(RuntimeError):
    """Raised on purpose by /sentry-debug."""


@router.get("/sentry-debug", responses=error_responses(401, 403, 500), include_in_schema=True)
async def sentry_debug(_: AdminDep) -> None:
    """Raise a test error (administrators): it reaches Sentry and answers the JSON 500."""
    raise SentryDebugError("Test error from /sentry-debug")
