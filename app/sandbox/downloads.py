"""Image downloads: `/v3/images/{id}/enhanced`, `/original`, and the `/assets/<token>` target.

With `redirect_downloads` on (the default, like the real API), `/enhanced` and `/original`
validate, charge credits, then answer 302 with a root-relative `Location: /assets/<token>`; the
asset URL needs no key. A relative Location resolves against whatever host the client used, so
it works on a socket and in-process (`http://sandbox.internal/v3` through ASGITransport).

Synthetic images (from `POST /_sandbox/orders`) always serve exactly their fixed number of
bytes, whatever size is asked for: they exist to move an exact number of bytes. The payload
is a valid image of the requested format (a tiny picture padded inside its own framing), so
a client that checks what it received sees the format it asked for.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response

from app.sandbox.deps import ApiKey, DevMode, State
from app.sandbox.errors import InvalidInput, NotFound, SandboxError
from app.sandbox.imaging import (
    MIME_TYPES,
    OutputFormat,
    RenderSpec,
    UnreadableImage,
    padded_image,
    render,
)
from app.sandbox.records import ImageRecord
from app.sandbox.state import SandboxState

router = APIRouter(tags=["downloads"])

DEFAULT_QUALITY = 85
# Longest side for the legacy `size` values; `big` (or no size) is full resolution.
LEGACY_SIZES: dict[str, int | None] = {"small": 640, "large": 1280, "big": None}
_EXTENSIONS: dict[OutputFormat, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}


def _format(value: str | None) -> OutputFormat:
    """Parse `format`. Raises InvalidInput for anything but png, jpeg or webp."""
    if value is None:
        return "jpeg"
    lowered = value.strip().lower()
    if lowered in ("png", "jpeg", "webp"):
        return lowered  # type: ignore[return-value]  # narrowed by the membership test
    raise InvalidInput.of(
        "query", "format", f"Cannot encode {value!r}: must be one of png, jpeg, webp."
    )


class DownloadParams:
    """The query block shared by `/enhanced` and `/original`, validated by FastAPI."""

    def __init__(
        self,
        format: str | None = Query(default=None, max_length=20),
        quality: int | None = Query(default=None, ge=1, le=90),
        preview: bool | None = Query(default=None),
        watermark: bool = Query(default=False),
        max_width: int | None = Query(default=None, ge=1, le=100_000),
        scale: float | None = Query(default=None, gt=0, le=1),
        size: Literal["small", "large", "big"] | None = Query(default=None),
        finetune: bool = Query(default=False),
    ) -> None:
        self.format = _format(format)
        self.quality = quality or DEFAULT_QUALITY
        self.preview = preview
        self.watermark = watermark
        self.max_width = max_width
        self.scale = scale
        self.size = size

    def spec(
        self, *, preview: bool, preview_side: int, watermark: bool, enhance: bool
    ) -> RenderSpec:
        sides = [s for s in (LEGACY_SIZES.get(self.size or "big"),) if s is not None]
        if preview:
            sides.append(preview_side)
        return RenderSpec(
            format=self.format,
            quality=self.quality,
            max_side=min(sides) if sides else None,
            max_width=self.max_width,
            scale=self.scale,
            watermark=watermark,
            enhance=enhance,
        )


Params = Annotated[DownloadParams, Depends()]


def _ensure_ready(state: SandboxState, image: ImageRecord, *, need_processed: bool) -> None:
    has_bytes = image.original is not None or image.fixed_payload is not None
    if image.status == "processed" if need_processed else has_bytes:
        return
    raise SandboxError(
        f"Image is not ready for download (status: {image.status})",
        status=state.config.not_ready_status,
        detail={
            "image_id": image.image_id,
            "status": image.status,
            "status_reason": image.status_reason,
        },
    )


async def _bytes_for(state: SandboxState, image: ImageRecord, spec: RenderSpec) -> bytes:
    if image.fixed_payload is not None:
        if spec.format == "jpeg":
            return image.fixed_payload
        return await anyio.to_thread.run_sync(padded_image, spec.format, len(image.fixed_payload))
    source = image.original
    if source is None:
        raise NotFound("Image has no content", detail={"image_id": image.image_id})
    key = (image.image_id, image.revision, spec)
    cached = state.cache.get(key)
    if cached is not None:
        return cached
    try:
        data = await anyio.to_thread.run_sync(render, source, spec)
    except UnreadableImage as exc:
        raise SandboxError(
            "Image cannot be rendered",
            status=state.config.not_ready_status,
            detail={"image_id": image.image_id, "reason": str(exc)},
        ) from exc
    state.cache.put(key, data)
    return data


async def _deliver(
    request: Request, state: SandboxState, image: ImageRecord, spec: RenderSpec
) -> Response:
    if state.config.redirect_downloads:
        token = state.store.issue_asset(image.image_id, spec)
        location = request.scope.get("root_path", "") + f"/assets/{token}"
        return Response(status_code=302, headers={"Location": location})
    return await _image_response(state, image, spec)


async def _image_response(state: SandboxState, image: ImageRecord, spec: RenderSpec) -> Response:
    data = await _bytes_for(state, image, spec)
    fmt: OutputFormat = spec.format
    filename = f"{image.image_name}.{_EXTENSIONS[fmt]}"
    return Response(
        content=data,
        media_type=MIME_TYPES[fmt],
        headers={
            "Content-Disposition": "inline; filename*=UTF-8''"
            + quote(filename, safe="", errors="replace"),
            "Cache-Control": "private, max-age=3600",
        },
    )


_IMAGE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
    302: {"description": "Redirect to /assets/<token> when redirect_downloads is on"},
}


@router.get("/v3/images/{image_id}/enhanced", responses=_IMAGE_RESPONSES)
async def download_enhanced(
    request: Request,
    state: State,
    key: ApiKey,
    dev: DevMode,
    image_id: str,
    params: Params,
) -> Response:
    """The enhanced image; `preview=false` outside dev mode buys it (one credit, once)."""
    image = state.store.image(image_id, key)
    _ensure_ready(state, image, need_processed=True)
    preview = True if params.preview is None else params.preview
    if not preview and not dev:
        state.store.purchase(image)
    spec = params.spec(
        preview=preview,
        preview_side=state.config.preview_max_side,
        watermark=params.watermark or dev,
        enhance=bool(image.settings.get("enhance", True)),
    )
    return await _deliver(request, state, image, spec)


@router.get("/v3/images/{image_id}/original", responses=_IMAGE_RESPONSES)
async def download_original(
    request: Request,
    state: State,
    key: ApiKey,
    image_id: str,
    params: Params,
) -> Response:
    """The uploaded image, re-encoded as asked; full size unless `preview=true`; free."""
    image = state.store.image(image_id, key)
    _ensure_ready(state, image, need_processed=False)
    spec = params.spec(
        preview=bool(params.preview),
        preview_side=state.config.preview_max_side,
        watermark=params.watermark,
        enhance=False,
    )
    return await _deliver(request, state, image, spec)


@router.get("/assets/{token}", responses=_IMAGE_RESPONSES)
async def download_asset(state: State, token: str) -> Response:
    """Bytes behind a download redirect; the token is the only credential."""
    entry = state.store.asset(token)
    if entry is None:
        raise NotFound("Asset not found or expired")
    image, spec = entry
    return await _image_response(state, image, spec)
