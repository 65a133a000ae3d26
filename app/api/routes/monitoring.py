"""Endpoints for monitors and operators: health, readiness, metrics, stats, Sentry."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict

from app.api.auth import AdminDep, is_admin
from app.api.deps import OpsDep, SettingsDep
from app.core.errors import BadGateway, Unauthorized, error_responses
from app.core.security import same_secret
from app.core.sentry import SentryApiError, SentryIssue
from app.core.stats import collect_registry, service_stats

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
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckOut]


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
async def ready(ops: OpsDep, response: Response) -> ReadinessOut:
    """ReadinessOut: upstream reachable (cached probe), circuit not open, store writable, Redis."""
    checks = await ops.readiness.check()
    ok = all(check.ok for check in checks)
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return ReadinessOut(
        status="ready" if ok else "not_ready",
        checks={check.name: CheckOut.model_validate(check) for check in checks},
    )


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
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)],
) -> Response:
    """Prometheus metrics of every worker; needs `Bearer METRICS_TOKEN` when that is set."""
    if settings.metrics_token is not None:
        given = credentials.credentials if credentials is not None else None
        if not same_secret(given, settings.metrics_token.get_secret_value()):
            raise Unauthorized("Metrics need the METRICS_TOKEN as a Bearer token.")
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
    responses=error_responses(401, 403, 502),
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
