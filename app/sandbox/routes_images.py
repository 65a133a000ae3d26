"""`/v3/images` metadata routes and the pre-signed upload URL they hand out."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.sandbox.deps import ApiKey, OptionalKey, State, collection_route
from app.sandbox.errors import NotFound, SandboxError
from app.sandbox.records import SETTING_DEFAULTS

router = APIRouter(tags=["images"])

DEFAULT_CONTENT_TYPE = "image/jpeg"
# S3 answers a pre-signed PUT whose headers do not match the signature like this.
_SIGNATURE_MISMATCH = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
    "<Message>The request signature we calculated does not match the signature you provided."
    "</Message></Error>"
)


class ImageSettings(BaseModel):
    """Enhancement settings; unknown keys are ignored (the API grows new ones often)."""

    model_config = ConfigDict(extra="ignore")

    ai_version: str | None = Field(default=None, max_length=50)
    enhance: bool | None = None
    enhance_type: str | None = Field(default=None, max_length=50)
    cloud_type: Literal["CLEAR", "LOW_CLOUD", "HIGH_CLOUD"] | None = None
    sky_replacement: bool | None = None
    vertical_correction: bool | None = None
    lens_correction: bool | None = None
    privacy: bool | None = None
    upscale: bool | None = None
    window_pull: bool | None = None
    window_pull_type: str | None = Field(default=None, max_length=50)
    threesixty: bool | None = None
    hdr: bool | None = None
    rating: int | None = Field(default=None, ge=0, le=5)
    finetune_settings: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    preset_id: str | None = Field(default=None, max_length=200)

    def merged_into(self, current: dict[str, Any]) -> dict[str, Any]:
        """`current` updated with every setting this body actually sets."""
        return {**current, **self.model_dump(exclude_none=True, include=_SETTING_NAMES)}


_SETTING_NAMES = set(ImageSettings.model_fields)


class ImageIn(ImageSettings):
    """Body of `POST /v3/images/`; `contentType` (docs) and `content_type` (spec) both work."""

    image_name: str = Field(min_length=1, max_length=1000)
    order_id: str | None = Field(default=None, min_length=1, max_length=200)
    image_id: str | None = Field(default=None, min_length=1, max_length=200)
    content_type: str | None = Field(default=None, max_length=200)
    content_type_camel: str | None = Field(default=None, alias="contentType", max_length=200)


@collection_route(router, "/v3/images", "POST")
async def create_image(
    request: Request, state: State, key: ApiKey, body: ImageIn = Body()
) -> dict[str, Any]:
    """Register an image (creating its order if needed) and return where to PUT its bytes."""
    image = state.store.register_image(
        owner=key,
        image_name=body.image_name,
        order_id=body.order_id,
        image_id=body.image_id,
        content_type=body.content_type or body.content_type_camel or DEFAULT_CONTENT_TYPE,
        settings=body.merged_into(dict(SETTING_DEFAULTS)),
    )
    upload_url = str(request.base_url).rstrip("/") + f"/uploads/{image.upload_token}"
    # Newer API versions name it upload_url, older ones s3PutObjectUrl: send both.
    return {**image.out(), "upload_url": upload_url, "s3PutObjectUrl": upload_url}


@router.get("/v3/images/{image_id}")
async def retrieve_image(state: State, key: OptionalKey, image_id: str) -> dict[str, Any]:
    """One image; no key needed, but another key's image is a 404."""
    return state.store.image(image_id, key).out()


@router.delete("/v3/images/{image_id}", status_code=204)
async def delete_image(state: State, key: ApiKey, image_id: str) -> Response:
    """Delete an image; its order stays."""
    state.store.delete_image(state.store.image_for_change(image_id, key))
    return Response(status_code=204)


@router.post("/v3/images/{image_id}/process")
async def reprocess_image(
    state: State, key: ApiKey, image_id: str, body: ImageSettings | None = Body(default=None)
) -> dict[str, Any]:
    """Change settings and enhance again; unspecified settings keep their values."""
    image = state.store.image_for_change(image_id, key)
    if body is not None:
        image.settings = body.merged_into(image.settings)
    if image.original is not None:
        await state.processor.start(image)
    return image.out()


@router.put("/uploads/{token}", tags=["uploads"])
async def upload(request: Request, state: State, token: str) -> Response:
    """Pre-signed upload URL: store the bytes (200, empty body), then start processing."""
    image = state.store.image_by_upload_token(token)
    if image is None:
        raise NotFound("Upload URL not found or expired")
    sent_type = request.headers.get("content-type", "")
    if state.config.enforce_upload_content_type and sent_type != image.content_type:
        return Response(_SIGNATURE_MISMATCH, status_code=403, media_type="application/xml")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > state.config.max_upload_bytes:
            raise SandboxError(
                "Upload too large",
                status=413,
                detail={"max_bytes": state.config.max_upload_bytes},
            )
    image.original = bytes(data)
    image.fixed_payload = None
    state.store.enforce_bounds(keep=image.order_id)
    await state.processor.start(image)
    etag = '"' + hashlib.md5(image.original, usedforsecurity=False).hexdigest() + '"'
    return Response(status_code=200, headers={"ETag": etag})
