"""`GET /orders/{order_id}/images/{image_id}`: one enhanced photo of an order, on its own.

For the page's photo viewer and its "Download this photo": the same options as the ZIP
(`preview`, `format`, `quality`, `max_width`, ...; full quality only with `preview=false`), the
same access (the order is read with the caller's credential and the image must be one of its
ready images, before a byte is fetched), and the name the photo has in the ZIP, with
``(preview)`` before the extension for a free preview. The photo is spooled (in memory up to
`SPOOL_MEMORY_BYTES`, then in `DATA_DIR/spool`) and sent once it is whole, with its
`Content-Length`: one photo is small next to an archive, and a broken upstream transfer then
becomes an error answer rather than a truncated picture.

With `variants=<one preset>` the photo is rendered for that preset as in an archive of that
one size (the same renderer, the same bytes, in the shared decode pool), named
``garden (MLS).jpg``;
one photo is one file, so more than one preset is a 422 that points at the archive.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import (
    CredentialDep,
    LimiterDep,
    OptionsDep,
    RendererDep,
    SettingsDep,
    SignerDep,
    SpoolDirDep,
    UpstreamDep,
)
from app.api.schemas.links import DownloadLink
from app.api.selection import PresetsDep, planned
from app.api.upstream_errors import (
    checked_image_id,
    checked_order_id,
    fetch_order,
    to_app_error,
)
from app.archive.naming import PREVIEW_MARK, content_disposition
from app.archive.plan import BatchPlan, PlannedImage
from app.archive.rendering import EntrySkipped, Renderer, RendererBusy
from app.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
    error_responses,
)
from app.imaging.pool import DecoderBusy
from app.imaging.presets import Preset
from app.services.overview import image_state
from app.upstream.errors import UpstreamError
from app.upstream.options import DownloadOptions
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["download"])

PHOTO_PATH = "/orders/{order_id}/images/{image_id}"
# Bytes read from the spool per chunk sent.
SEND_CHUNK = 64 * 1024
_MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "jxl": "image/jxl",
}


def photo_filename(
    planned_image: PlannedImage, options: DownloadOptions, variant: Preset | None = None
) -> str:
    """The photo's name in the ZIP; ``garden (preview).jpg`` for a free preview, ``garden
    (MLS).jpg`` rendered for a preset."""
    name = planned_image.entry_name
    mark = f" ({variant.label})" if variant is not None else PREVIEW_MARK
    if variant is None and not options.preview:
        return name
    stem, dot, extension = name.rpartition(".")
    return f"{stem}{mark}{dot}{extension}" if dot else name + mark


async def _ready_photo(
    upstream: UpstreamDep,
    credential: CredentialDep,
    order_id: str,
    image_id: str,
    options: DownloadOptions,
    presets: PresetsDep,
) -> tuple[PlannedImage, BatchPlan]:
    """The planned image `image_id` of the order, checked to be one of its ready images, and
    the plan it is part of (how it is asked of the upstream; its variant).

    Raises:
        BadRequest: a malformed order or image id (before any upstream call).
        Unprocessable: more than one preset in `variants` (`one_variant_per_photo`), or one
            this service does not offer.
        NotFound: unknown order, or no image of that id in it (`image_not_in_order`).
        Conflict: the image is not enhanced (yet) (`image_not_ready`).
    """
    order_id = checked_order_id(order_id)
    checked_image_id(image_id)
    if options.variants and len(options.variants) > 1:
        raise Unprocessable(
            "One photo is one file: name one preset in variants=, or download the photo in "
            f"several sizes as an archive: GET /orders/{order_id}/images?images={image_id}"
            f"&variants={','.join(options.variants)}.",
            code="one_variant_per_photo",
        )
    order = await fetch_order(upstream, order_id, credential)
    plan = planned(order, options.model_copy(update={"images": None}), presets)
    found = next((p for p in plan.images if p.image.image_id == image_id), None)
    if found is None:
        raise NotFound("This order has no image with that id.", code="image_not_in_order")
    if not found.ready:
        raise Conflict(
            {
                "message": "This photo is not enhanced yet "
                f"({image_state(found.image)}); try again when it is ready.",
                "state": image_state(found.image),
            },
            code="image_not_ready",
        )
    return found, plan


async def _rendered(spool: IO[bytes], variant: Preset, renderer: Renderer) -> bytes:
    """The fetched photo in `spool` rendered for `variant`.

    Raises:
        Unprocessable: it cannot be (over the byte cap at the lowest quality, refused by the
            decoding policy: `variant_not_possible`, with the reason).
        DecoderBusy: the decode pool is full (503, Retry-After).
    """
    async with renderer.slot(object()):
        spool.seek(0)
        data = spool.read()
        try:
            output = await renderer.output(data, variant)
        except RendererBusy:
            raise DecoderBusy() from None
        except EntrySkipped as exc:
            raise Unprocessable(exc.message, code="variant_not_possible") from None
    return data if output.content is None else output.content


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    try:
        spool.seek(0)
        while chunk := spool.read(SEND_CHUNK):
            yield chunk
    finally:
        spool.close()


_PHOTO_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The enhanced photo (attachment, named as in the ZIP)",
        "content": {media: {} for media in _MEDIA_TYPES.values()},
    },
    **error_responses(400, 401, 404, 409, 422, 429, 502, 503),
}


@router.head(
    PHOTO_PATH,
    response_class=StreamingResponse,
    responses=_PHOTO_RESPONSES,
    dependencies=[Depends(rate_limit("downloads"))],
    summary="What GET of one photo would answer (its name), without fetching it",
    operation_id="head_order_photo",
)
@router.get(
    PHOTO_PATH,
    response_class=StreamingResponse,
    responses=_PHOTO_RESPONSES,
    dependencies=[Depends(rate_limit("downloads"))],
    summary="One enhanced photo of an order (free preview by default, like the ZIP)",
    operation_id="download_order_photo",
)
async def order_photo(
    order_id: str,
    image_id: str,
    request: Request,
    options: OptionsDep,
    credential: CredentialDep,
    upstream: UpstreamDep,
    limiter: LimiterDep,
    settings: SettingsDep,
    spool_dir: SpoolDirDep,
    presets: PresetsDep,
    renderer: RendererDep,
) -> Response:
    """The photo with these options; `HEAD` checks it without fetching the picture."""
    found, plan = await _ready_photo(upstream, credential, order_id, image_id, options, presets)
    variant = plan.variants[0] if plan.variants else None
    filename = photo_filename(found, options, variant)
    headers = {"Content-Disposition": content_disposition(filename)}
    media_type = _MEDIA_TYPES["jpeg" if variant is not None else options.format]
    if request.method == "HEAD":
        head = Response(media_type=media_type, headers=headers)
        del head.headers["content-length"]  # unknown until the photo is fetched, not 0
        return head
    spool_dir.mkdir(parents=True, exist_ok=True)
    spool = tempfile.SpooledTemporaryFile(  # closed by _chunks, or below on failure
        max_size=settings.spool_memory_bytes, mode="w+b", dir=str(spool_dir)
    )
    try:
        async with limiter.slot(object()):
            downloaded = await upstream.download_enhanced(
                image_id, spool, options=plan.fetch_options, api_key=credential.api_key
            )
        if variant is not None:
            content = await _rendered(spool, variant, renderer)
            spool.close()
            headers["Content-Length"] = str(len(content))
            return Response(content, media_type=media_type, headers=headers)
    except UpstreamError as exc:
        spool.close()
        raise to_app_error(exc, what="image") from exc
    except BaseException:
        spool.close()
        raise
    headers["Content-Length"] = str(downloaded.size)
    return StreamingResponse(_chunks(spool), media_type=media_type, headers=headers)


@router.post(
    f"{PHOTO_PATH}/download-link",
    response_model=DownloadLink,
    responses=error_responses(400, 401, 403, 404, 409, 422, 429, 502, 503),
    dependencies=[Depends(rate_limit("links"))],
    summary="A short-lived signed link to one photo, for a browser's download manager",
)
async def create_photo_link(
    order_id: str,
    image_id: str,
    options: OptionsDep,
    credential: CredentialDep,
    settings: SettingsDep,
    signer: SignerDep,
    upstream: UpstreamDep,
    presets: PresetsDep,
    body: Annotated[DownloadOptions | None, Body()] = None,
) -> DownloadLink:
    """Sign `GET /orders/{order_id}/images/{image_id}` with these options (as for the ZIP)."""
    if credential.is_own_key:
        raise Forbidden(
            "Signed links spend this service's own key, so they cannot be made for your own "
            "Autoenhance key. Download with your key in the X-Autoenhance-Key header instead.",
            code="own_key_not_linkable",
        )
    chosen = (body or options).model_copy(update={"images": None})
    await _ready_photo(upstream, credential, order_id, image_id, chosen, presets)
    path = f"/orders/{checked_order_id(order_id)}/images/{image_id}"
    link = signer.sign(path, chosen.query(), ttl=settings.download_link_ttl)
    return DownloadLink.of(link)
