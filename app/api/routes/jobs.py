"""Async jobs: build an order's archive in the background, poll it, download it later.

A job route that cannot reach the job queue (Redis down or silent past `REDIS_TIMEOUT`)
answers `503 queue_unavailable`, and one that cannot reach the archive store (past
`ARCHIVE_STORE_REQUEST_TIMEOUT`) `503 archive_store_unavailable`, both with `Retry-After`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.api.archives import stored_object_response
from app.api.deps import (
    CredentialDep,
    JobsDep,
    LinkCheck,
    OptionsDep,
    OwnKeyDep,
    ServiceKeyDep,
    SettingsDep,
    SignedLinkDep,
    SignerDep,
    UpstreamDep,
    get_credential,
)
from app.api.responses import StoredObjectResponse
from app.api.schemas.jobs import JobCreated, JobDownloadLink, JobProgress, JobStatus
from app.api.selection import PresetsDep, planned
from app.api.upstream_errors import checked_order_id, fetch_order
from app.archive.naming import content_disposition
from app.archive.outcomes import ZIP_MEDIA_TYPE
from app.core.errors import (
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    error_responses,
)
from app.jobs.callbacks import (
    NOT_ALLOWED,
    CallbackRefused,
    HostNotResolved,
    check_callback_url,
    iso,
    job_link,
    resolve_allowed,
)
from app.jobs.models import JobRecord
from app.jobs.service import ArchiveGone, JobService
from app.storage import ObjectMissing, StoreError
from app.web.ratelimit import rate_limit

logger = logging.getLogger("app.jobs")
router = APIRouter(tags=["jobs"])

# Seconds a caller is asked to wait after the archive store failed to answer.
STORE_RETRY_AFTER = 5
# Jobs a listing shows at most (the newest).
LIST_LIMIT = 100


class JobList(BaseModel):
    order_id: str
    jobs: list[JobStatus]


def _store_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The archive store is unavailable; try again shortly.",
        code="archive_store_unavailable",
        headers={"Retry-After": str(STORE_RETRY_AFTER)},
    )


def _status(request: Request, record: JobRecord) -> JobStatus:
    return JobStatus(
        job_id=record.job_id,
        order_id=record.order_id,
        state=record.state,
        reason=record.reason,
        progress=JobProgress(
            images_done=record.images_done,
            images_total=record.images_total,
            bytes_written=record.bytes_written,
        ),
        failures=record.failures,
        wait=record.wait,
        options=record.options.query(),
        created_at=iso(record.created_at),
        started_at=iso(record.started_at),
        finished_at=iso(record.finished_at),
        expires_at=iso(record.expires_at),
        archive_size=record.archive_size if record.state == "complete" else None,
        worker=record.worker,
        attempts=record.attempts,
        callback=record.callback_outcome,
        status_url=str(request.url_for("job_status", job_id=record.job_id)),
        download_url=str(request.url_for("job_download", job_id=record.job_id)),
    )


async def _owned(jobs: JobService, job_id: str, owner: str) -> JobRecord:
    record = await jobs.get(job_id, owner=owner)
    if record is None:
        raise NotFound("No such job, or it belongs to another credential.", code="unknown_job")
    return record


def _downloadable(record: JobRecord) -> None:
    if record.state == "complete":
        return
    if record.state in ("expired", "cancelled"):
        raise Gone(f"This job's archive is gone: the job is {record.state}.", code="job_gone")
    if record.state == "failed":
        raise Conflict(f"This job failed: {record.reason}", code="job_failed")
    raise Conflict(
        f"The archive is not ready: the job is {record.state} "
        f"({record.images_done} of {record.images_total} images).",
        code="job_not_ready",
    )


@router.post(
    "/orders/{order_id}/jobs",
    status_code=202,
    response_model=JobCreated,
    responses=error_responses(400, 401, 404, 422, 429, 502, 503),
    dependencies=[Depends(rate_limit("jobs"))],
    summary="Build an order's archive in the background",
)
async def create_job(
    order_id: str,
    request: Request,
    options: OptionsDep,
    credential: CredentialDep,
    upstream: UpstreamDep,
    settings: SettingsDep,
    jobs: JobsDep,
    presets: PresetsDep,
    callback_url: Annotated[
        str | None, Query(description="POSTed a signed JSON summary when the job ends")
    ] = None,
    wait: Annotated[
        bool, Query(description="Wait until the order is fully processed, then build")
    ] = False,
) -> JSONResponse:
    """Queue a job writing the same archive as GET /orders/{order_id}/images."""
    order_id = checked_order_id(order_id)
    # Reading the order proves the credential; only then is the callback URL looked at, and
    # every refusal gets the same answer (which check failed would map our network).
    order = await fetch_order(upstream, order_id, credential)
    if callback_url:
        try:
            check_callback_url(callback_url)
            await resolve_allowed(
                httpx.URL(callback_url), allow_private=settings.callback_allow_private
            )
        except HostNotResolved as exc:
            logger.info("callback_url refused: %r", str(exc))
            raise Unprocessable(
                f"callback_url's host {httpx.URL(callback_url).host} could not be resolved from "
                "this service: check the host name (or the service's DNS).",
                code="invalid_callback_url",
            ) from None
        except CallbackRefused as exc:
            logger.info("callback_url refused: %r", str(exc))
            raise Unprocessable(
                f"callback_url is {NOT_ALLOWED}: an absolute http(s) URL of a public host.",
                code="invalid_callback_url",
            ) from None
    if not order.images and not wait and options.images is None:
        raise NotFound("This order has no images yet.", code="empty_order")
    # A selection must name images of the order now, before the job is queued.
    images_total = planned(order, options, presets).files
    record = await jobs.create(
        owner=credential.owner,
        own_key=credential.api_key if credential.is_own_key else None,
        order_id=order_id,
        options=options,
        wait=wait,
        callback_url=callback_url or None,
        base_url=str(request.base_url),
        images_total=images_total,
    )
    status_url = str(request.url_for("job_status", job_id=record.job_id))
    body = JobCreated(
        job_id=record.job_id,
        state=record.state,
        status_url=status_url,
        download_url=str(request.url_for("job_download", job_id=record.job_id)),
        callback_secret=jobs.callback_key(record.job_id) if record.callback_url else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=202,
        headers={"Location": status_url, "Cache-Control": "no-store"},
    )


@router.get(
    "/orders/{order_id}/jobs",
    response_model=JobList,
    responses=error_responses(400, 401, 429, 503),
    dependencies=[Depends(rate_limit("jobs"))],
    summary="The caller's jobs of an order, newest first",
)
async def list_jobs(
    order_id: str, request: Request, credential: CredentialDep, jobs: JobsDep
) -> JobList:
    """Jobs of the order created with this credential (at most 100, newest first); other
    credentials' jobs are not shown, as `GET /jobs/{job_id}` does not show them."""
    order_id = checked_order_id(order_id)
    records = await jobs.for_order(order_id, owner=credential.owner, limit=LIST_LIMIT)
    return JobList(order_id=order_id, jobs=[_status(request, record) for record in records])


@router.get(
    "/jobs/{job_id}",
    name="job_status",
    response_model=JobStatus,
    responses=error_responses(401, 404, 429),
    summary="State and progress of a job",
    dependencies=[Depends(rate_limit("job_status"))],
)
async def job_status(
    job_id: str, request: Request, credential: CredentialDep, jobs: JobsDep
) -> JobStatus:
    """The job's state, progress, per-image failures and expiry."""
    return _status(request, await _owned(jobs, job_id, credential.owner))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobStatus,
    responses=error_responses(401, 404, 429),
    summary="Cancel a job and delete its archive",
    dependencies=[Depends(rate_limit("job_status"))],
)
async def cancel_job(
    job_id: str, request: Request, credential: CredentialDep, jobs: JobsDep
) -> JobStatus:
    """Stop the job (in-flight downloads stop) and remove its files."""
    await _owned(jobs, job_id, credential.owner)
    record = await jobs.cancel(job_id, owner=credential.owner)
    if record is None:
        raise NotFound("No such job, or it belongs to another credential.", code="unknown_job")
    return _status(request, record)


@router.post(
    "/jobs/{job_id}/download-link",
    response_model=JobDownloadLink,
    responses=error_responses(401, 404, 409, 410, 429),
    summary="A signed, expiring link to the archive, usable without credentials",
    dependencies=[Depends(rate_limit("links"))],
)
async def job_download_link(
    job_id: str,
    request: Request,
    credential: CredentialDep,
    jobs: JobsDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> JobDownloadLink:
    """Hand the archive to a browser or a third party: the link expires with DOWNLOAD_LINK_TTL."""
    record = await _owned(jobs, job_id, credential.owner)
    _downloadable(record)
    link = job_link(signer, record, link_ttl=settings.download_link_ttl)
    return JobDownloadLink(
        url=str(request.base_url).rstrip("/") + link.url, expires_at=iso(link.expires)
    )


@router.get(
    "/jobs/{job_id}/download",
    name="job_download",
    response_class=StoredObjectResponse,
    dependencies=[Depends(rate_limit("job_downloads"))],
    responses={
        200: {
            "description": "The archive, with Content-Length, ETag and Last-Modified",
            "content": {ZIP_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        206: {"description": "Part of the archive (HTTP Range; several ranges: multipart)"},
        302: {"description": "ARCHIVE_REDIRECT=true: a short-lived presigned URL of the archive"},
        304: {"description": "If-None-Match names the archive's current ETag"},
        **error_responses(401, 403, 404, 409, 410, 416, 429, 503),
    },
    summary="Download a finished job's archive (resumable)",
)
async def job_download(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    settings: SettingsDep,
    link: SignedLinkDep,
    service_key: ServiceKeyDep,
    own_key: OwnKeyDep,
) -> Response:
    """The archive, with Range, If-Range and If-None-Match; a signed link needs no other
    credential."""
    owner: str | None = None  # a valid signed link opens the job whoever owns it
    if link is LinkCheck.INVALID:
        raise Forbidden("This download link is invalid or has expired.", code="bad_link")
    if link is LinkCheck.ABSENT:
        owner = (await get_credential(settings, link, service_key, own_key)).owner
    record = await jobs.get(job_id, owner=owner)
    if record is None:
        raise NotFound("No such job, or it belongs to another credential.", code="unknown_job")
    _downloadable(record)
    gone = Gone("This job's archive is no longer stored.", code="job_gone")
    try:
        archive = await jobs.archive(record)
        return await stored_object_response(
            request,
            archive.store,
            archive.info,
            etag=archive.etag,
            headers={
                # A job's archive never changes: its own URL is already pinned to one version.
                "Content-Location": request.url.path
                + (f"?{request.url.query}" if request.url.query else ""),
                "Content-Disposition": content_disposition(record.filename or f"{job_id}.zip"),
                "X-Total-Images": str(record.images_total),
                "X-Downloaded": str(record.images_done),
                "X-Failed": str(len(record.failures)),
            },
            redirect_ttl=settings.archive_redirect_ttl if settings.archive_redirect else None,
        )
    except (ArchiveGone, ObjectMissing):
        raise gone from None
    except StoreError as exc:
        logger.warning("job %s: archive store unavailable: %s", job_id, exc)
        raise _store_unavailable() from None


router.add_api_route(
    "/jobs/{job_id}/download",
    job_download,
    methods=["HEAD"],
    response_class=StoredObjectResponse,
    responses={
        200: {"description": "The headers the same GET gets (Content-Length, ETag), no body"},
        304: {"description": "If-None-Match names the archive's current ETag"},
        **error_responses(401, 403, 404, 409, 410, 416, 429, 503),
    },
    summary="Look at a finished job's archive without downloading it",
    operation_id="head_job_download",
    name="job_download_head",
    dependencies=[Depends(rate_limit("job_downloads"))],
)
