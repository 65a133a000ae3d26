"""`GET /orders/{order_id}/images/{image_id}/thumbnail`: a small preview of one image.

Access is the order's: the order is read with the caller's credential (as for a summary or a
download) and the image must be one of its images — checked before the picture is fetched,
so a thumbnail cannot be used to reach an image of another order. See
`app.services.thumbnails` for where the picture comes from and how it is bounded.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response

from app.api.deps import CredentialDep, DecoderDep, LimiterDep, UpstreamDep
from app.api.upstream_errors import checked_image_id, checked_order_id, fetch_order, to_app_error
from app.archive.http_rules import none_match
from app.core.errors import BadGateway, Conflict, NotFound, error_responses
from app.services.overview import image_state
from app.services.thumbnails import (
    MAX_THUMBNAIL_SOURCE_BYTES,
    THUMBNAIL_MAX_WIDTH,
    THUMBNAIL_OPTIONS,
    BoundedSink,
    NotAThumbnail,
    make_thumbnail,
    thumbnail_etag,
)
from app.upstream.errors import UpstreamError, UpstreamProtocolError
from app.web.disconnect import unless_client_leaves
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["orders"])

# Browsers may reuse a thumbnail this long without asking; after that a revalidation costs
# one read of the order and answers 304 when nothing changed. `private`: it is access-checked.
THUMBNAIL_CACHE_CONTROL = "private, max-age=300"
# The answer depends on who asks: never reuse one caller's thumbnail for another credential.
THUMBNAIL_VARY = "X-Autoenhance-Key, X-API-Key, Authorization, Cookie"


@router.get(
    "/orders/{order_id}/images/{image_id}/thumbnail",
    response_class=Response,
    responses={
        200: {
            "description": f"A preview at most {THUMBNAIL_MAX_WIDTH} px wide, with ETag",
            "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **error_responses(400, 401, 404, 409, 429, 502, 503),
    },
    dependencies=[Depends(rate_limit("thumbnails"))],
    summary="A small preview of one image of an order",
)
async def image_thumbnail(
    request: Request,
    order_id: str,
    image_id: str,
    credential: CredentialDep,
    upstream: UpstreamDep,
    limiter: LimiterDep,
    decoder: DecoderDep,
    if_none_match: Annotated[
        str | None, Header(alias="if-none-match", include_in_schema=False)
    ] = None,
) -> Response:
    """The image's free Autoenhance preview, at most 320 px wide (no credits spent)."""
    order_id = checked_order_id(order_id)
    image_id = checked_image_id(image_id)
    order = await fetch_order(upstream, order_id, credential)
    image = next((i for i in order.images if i.image_id == image_id), None)
    if image is None:
        raise NotFound("This order has no image with that id.", code="image_not_in_order")
    if not image.is_ready:
        raise Conflict(
            {
                "message": "This image has no preview yet: it is not enhanced "
                f"({image_state(image)}).",
                "state": image_state(image),
            },
            code="image_not_ready",
        )
    etag = thumbnail_etag(order, image)
    headers = {"ETag": etag, "Cache-Control": THUMBNAIL_CACHE_CONTROL, "Vary": THUMBNAIL_VARY}
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    sink = BoundedSink(MAX_THUMBNAIL_SOURCE_BYTES)
    try:
        async with limiter.slot(object()):
            await upstream.download_enhanced(
                image_id, sink, options=THUMBNAIL_OPTIONS, api_key=credential.api_key
            )
    except UpstreamProtocolError as exc:  # also: the preview passed MAX_THUMBNAIL_SOURCE_BYTES
        raise BadGateway(
            f"The Autoenhance API's preview cannot be used: {exc.message}", code="bad_preview"
        ) from exc
    except UpstreamError as exc:
        raise to_app_error(exc, what="image") from exc
    try:
        thumbnail = await unless_client_leaves(
            request, make_thumbnail(sink.getvalue(), decoder=decoder)
        )
    except NotAThumbnail as exc:
        raise BadGateway(
            f"The Autoenhance API sent a preview this service will not decode: {exc}",
            code="bad_preview",
        ) from None
    return Response(thumbnail.content, media_type=thumbnail.media_type, headers=headers)
