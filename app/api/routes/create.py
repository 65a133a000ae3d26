"""Order creation (`/api/create-order`, `/api/create-sample-order`) and admin sign-in.

Status policy of order creation: a caller's own key (`X-Autoenhance-Key`) is checked upstream
before any file part is read, so a made-up key costs one cheap upstream call, never a spooled
upload (401 from the upstream's refusal). Every file is then checked (count, size, content)
before anything is created upstream, so a refused upload (400/413/415) leaves nothing behind.
A body that stalls or takes too long is cut off with 408 (`BodyDeadlineMiddleware`). Once the
order exists, each image is registered and uploaded on its own; the answer is 201 with one
line per file (`uploaded`, or the `error`) as soon as at least one image made it, and 502
with the same list (and the order id) when none did. A failure creating the order itself is
401/502/503 as for any upstream call, and nothing was created.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, SecretStr

from app.api.auth import (
    SESSION_COOKIE,
    AdminVia,
    CreatorDep,
    admin_via,
    cookie_session,
    csrf_token,
    issue_session,
    origin_allowed,
    session_of,
)
from app.api.deps import (
    SessionsDep,
    SessionSignerDep,
    SettingsDep,
    SpoolDirDep,
    UpstreamDep,
)
from app.api.upstream import to_app_error
from app.core import metrics
from app.core.config import Settings
from app.core.errors import (
    AppError,
    BadGateway,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    error_responses,
)
from app.core.ratelimit import rate_limit
from app.core.security import Credential, same_secret
from app.core.sessions import SessionStoreError
from app.services.ordering import CreatedOrder, ImageUpload, create_order_with_images
from app.services.ordering import uploads_from_paths as sample_uploads
from app.services.uploads import (
    FileTooLarge,
    NotAnImage,
    NotMultipart,
    TooManyFiles,
    UploadError,
    closing_upload,
    receive_uploads,
)
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError

router = APIRouter(tags=["orders"])

SAMPLE_DIR = Path(__file__).resolve().parents[3] / "sample_images"
SAMPLE_ORDER_NAME = "Sample order"

_MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "The images (JPEG, PNG, WebP, TIFF, HEIC, AVIF, RAW)",
                        },
                        "name": {"type": "string", "description": "Name of the new order"},
                    },
                }
            }
        },
    }
}


class ImageResult(BaseModel):
    file: str
    image_id: str | None
    uploaded: bool
    error: str | None


class OrderCreated(BaseModel):
    order_id: str
    name: str | None
    images: list[ImageResult]
    uploaded: int
    failed: int


class SignIn(BaseModel):
    token: SecretStr = Field(max_length=1024, description="ADMIN_TOKEN")


class AdminSessionOut(BaseModel):
    admin: bool
    via: Literal["bearer", "cookie"] | None = None
    expires_at: datetime | None = None
    csrf_token: str | None = Field(
        default=None, description="Send as X-CSRF-Token on changes authorised by the cookie"
    )


# --- order creation -----------------------------------------------------------------------------


_count_creation = rate_limit("create_orders")


def _upload_refusal(exc: UploadError) -> AppError:
    if isinstance(exc, TooManyFiles | FileTooLarge):
        return PayloadTooLarge(exc.message)
    if isinstance(exc, NotAnImage):
        return UnsupportedMediaType(exc.message, code="not_an_image")
    if isinstance(exc, NotMultipart):
        return UnsupportedMediaType(exc.message, code="not_multipart")
    return BadRequest(exc.message, code="bad_upload")


def _answer(created: CreatedOrder) -> OrderCreated:
    return OrderCreated(
        order_id=created.order_id,
        name=created.name,
        images=[ImageResult(**dataclasses.asdict(image)) for image in created.images],
        uploaded=created.uploaded,
        failed=created.failed,
    )


async def _check_own_key(upstream: AutoenhanceClient, credential: Credential) -> None:
    """Ask the upstream whether a caller's own key is good (one read-only listing, no credit).

    The operator's key is the service's own and is not re-checked on every upload.

    Raises:
        AppError: 401 when the upstream refuses the key; 502/503 as for any upstream call.
    """
    if not credential.is_own_key:
        return
    try:
        await upstream.list_orders(api_key=credential.api_key, per_page=1)
    except UpstreamError as exc:
        raise to_app_error(exc) from exc


async def _create(
    upstream: AutoenhanceClient,
    uploads: list[ImageUpload],
    *,
    credential: Credential,
    name: str | None,
    settings: Settings,
) -> OrderCreated:
    try:
        created = await create_order_with_images(
            upstream,
            uploads,
            api_key=credential.api_key,
            name=name,
            concurrency=settings.upload_concurrency,
        )
    except UpstreamError as exc:
        raise to_app_error(exc) from exc
    metrics.ORDERS_CREATED.inc()
    answer = _answer(created)
    if created.uploaded == 0:
        raise BadGateway(
            {
                "message": "The order was created but no image could be uploaded.",
                **answer.model_dump(),
            },
            code="upload_failed",
        )
    return answer


@router.post(
    "/api/create-order",
    status_code=201,
    response_model=OrderCreated,
    responses=error_responses(400, 401, 403, 408, 413, 415, 429, 502, 503),
    openapi_extra=_MULTIPART_BODY,
    summary="Create an order from uploaded images",
)
async def create_order(
    request: Request,
    credential: CreatorDep,
    settings: SettingsDep,
    upstream: UpstreamDep,
    spool_dir: SpoolDirDep,
) -> OrderCreated:
    """Create an order and upload the images sent in the multipart `files` field."""
    await _count_creation(request)
    await _check_own_key(upstream, credential)
    try:
        received = await receive_uploads(
            request.stream(),
            request.headers.get("content-type"),
            max_files=settings.max_upload_files,
            max_bytes=settings.max_upload_bytes,
            spool_dir=spool_dir,
            spool_memory_bytes=settings.spool_memory_bytes,
        )
    except UploadError as exc:
        raise _upload_refusal(exc) from None
    with closing_upload(received):
        uploads = [ImageUpload(f.filename, f.kind.content_type, f.read) for f in received.files]
        name = received.fields.get("name", "").strip()[:200] or None
        return await _create(upstream, uploads, credential=credential, name=name, settings=settings)


@router.post(
    "/api/create-sample-order",
    status_code=201,
    response_model=OrderCreated,
    responses=error_responses(401, 403, 429, 502, 503),
    summary="Create an order from the bundled sample photos",
)
async def create_sample_order(
    request: Request, credential: CreatorDep, settings: SettingsDep, upstream: UpstreamDep
) -> OrderCreated:
    """Create an order from the sample images shipped with the service."""
    await _count_creation(request)
    paths = sorted(SAMPLE_DIR.glob("*.jpg"))
    uploads = await asyncio.to_thread(sample_uploads, paths)
    return await _create(
        upstream, uploads, credential=credential, name=SAMPLE_ORDER_NAME, settings=settings
    )


# --- admin session ------------------------------------------------------------------------------


async def _whoami(request: Request, settings: Settings, signer: Any) -> AdminSessionOut:
    via = await admin_via(request, settings)
    if via is AdminVia.BEARER:
        return AdminSessionOut(admin=True, via="bearer")
    session = await session_of(request, settings)
    if via is AdminVia.COOKIE and session is not None:
        return AdminSessionOut(
            admin=True,
            via="cookie",
            expires_at=datetime.fromtimestamp(session.expires, tz=UTC),
            csrf_token=csrf_token(signer, session),
        )
    return AdminSessionOut(admin=False)


@router.post(
    "/api/admin/session",
    response_model=AdminSessionOut,
    responses=error_responses(401, 403, 422),
    tags=["admin"],
    summary="Sign in: exchange ADMIN_TOKEN for a session cookie",
)
async def sign_in(
    body: SignIn,
    request: Request,
    response: Response,
    settings: SettingsDep,
    signer: SessionSignerDep,
    sessions: SessionsDep,
) -> AdminSessionOut:
    """Check the token (JSON body, never the query), list a new session, set its cookie."""
    if settings.admin_token is None:
        raise Forbidden("Administration is disabled: ADMIN_TOKEN is not set.")
    if "origin" in request.headers and not origin_allowed(request, settings):
        raise Forbidden("Sign in from this service's own page.", code="csrf_failed")
    if not same_secret(body.token.get_secret_value(), settings.admin_token.get_secret_value()):
        raise Unauthorized("That is not the administrator token.")
    session = issue_session(signer, settings)
    try:
        await sessions.add(session.session_id, expires=session.expires)
    except SessionStoreError as exc:
        raise ServiceUnavailable(
            "Signing in is unavailable: the session store cannot be reached.",
            code="session_store_unavailable",
        ) from exc
    response.set_cookie(
        SESSION_COOKIE,
        session.value,
        max_age=settings.admin_session_ttl,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return AdminSessionOut(
        admin=True,
        via="cookie",
        expires_at=datetime.fromtimestamp(session.expires, tz=UTC),
        csrf_token=csrf_token(signer, session),
    )


@router.get(
    "/api/admin/session",
    response_model=AdminSessionOut,
    tags=["admin"],
    summary="Who am I: administrator or not, and the CSRF token of the session",
)
async def whoami(
    request: Request, response: Response, settings: SettingsDep, signer: SessionSignerDep
) -> AdminSessionOut:
    """Whether this request is an administrator's, and how."""
    response.headers["Cache-Control"] = "no-store"
    return await _whoami(request, settings, signer)


@router.delete(
    "/api/admin/session",
    status_code=204,
    responses=error_responses(503),
    tags=["admin"],
    summary="Sign out: end the session on the server and drop its cookie",
)
async def sign_out(request: Request, settings: SettingsDep, sessions: SessionsDep) -> Response:
    """End the cookie's session in the session store, so that a copy of the cookie stops
    working too, and expire the cookie (only ending one's own session: no CSRF check)."""
    session = cookie_session(request, settings)
    if session is not None:
        try:
            await sessions.revoke(session.session_id)
        except SessionStoreError as exc:
            raise ServiceUnavailable(
                "Signing out failed: the session store cannot be reached; try again.",
                code="session_store_unavailable",
            ) from exc
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
