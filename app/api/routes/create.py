"""Order creation: `/api/create-order` and `/api/create-sample-order`.

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
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.api.auth import (
    CreatorDep,
)
from app.api.deps import (
    SettingsDep,
    SpoolDirDep,
    UpstreamDep,
)
from app.api.upstream_errors import to_app_error
from app.core import metrics
from app.core.config import Settings
from app.core.errors import (
    AppError,
    BadGateway,
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_responses,
)
from app.core.security import Credential
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
from app.web.ratelimit import rate_limit

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
