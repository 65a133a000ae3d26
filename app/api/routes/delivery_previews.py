"""`GET /d/{token}/images/{image_id}`: a preview of one photo of a delivery, for the
recipient's grid and larger view: Autoenhance's free preview (no credits), fitted and, while the
delivery is locked, watermarked (`app.deliveries.previews`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.api.delivery_access import PinCookieDep, live_delivery
from app.api.deps import DecoderDep, LimiterDep, UpstreamDep
from app.api.schemas.deliveries import DeliveriesDep
from app.api.upstream_errors import checked_image_id, fetch_order, to_app_error
from app.core.errors import BadGateway, Conflict, NotFound, error_responses
from app.deliveries.previews import PreviewSize, fitted_preview, preview_options
from app.services.thumbnails import MAX_THUMBNAIL_SOURCE_BYTES, BoundedSink, NotAThumbnail
from app.upstream.errors import UpstreamError, UpstreamProtocolError
from app.web.disconnect import unless_client_leaves
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["delivery link"])


@router.get(
    "/d/{token}/images/{image_id}",
    response_class=Response,
    responses={
        200: {
            "description": "A JPEG preview; watermarked while locked",
            "content": {"image/jpeg": {}},
        },
        **error_responses(400, 401, 404, 409, 410, 429, 502, 503),
    },
    dependencies=[Depends(rate_limit("thumbnails"))],
    summary="A preview of one photo of the delivery",
)
async def delivery_image(
    token: str,
    image_id: str,
    deliveries: DeliveriesDep,
    upstream: UpstreamDep,
    limiter: LimiterDep,
    decoder: DecoderDep,
    pin_cookie: PinCookieDep,
    request: Request,
    size: Annotated[PreviewSize, Query(description="grid (320 px) or large (1024 px)")] = "grid",
) -> Response:
    """The free Autoenhance preview (no credits), watermarked while the delivery is locked."""
    record = await live_delivery(token, deliveries)
    deliveries.require_pin(record, pin_cookie)
    image_id = checked_image_id(image_id)
    not_here = NotFound("This delivery has no image with that id.", code="image_not_delivered")
    if record.images is not None and image_id not in record.images:
        raise not_here
    credential = deliveries.credential(record)
    order = await fetch_order(upstream, record.order_id, credential)
    image = next((i for i in order.images if i.image_id == image_id), None)
    if image is None:
        raise not_here
    if not image.is_ready:
        raise Conflict("This photo is not ready yet.", code="image_not_ready")
    sink = BoundedSink(MAX_THUMBNAIL_SOURCE_BYTES)
    try:
        async with limiter.slot(object()):
            await upstream.download_enhanced(
                image_id, sink, options=preview_options(size), api_key=credential.api_key
            )
    except UpstreamProtocolError as exc:
        raise BadGateway(f"The preview cannot be used: {exc.message}", code="bad_preview") from exc
    except UpstreamError as exc:
        raise to_app_error(exc, what="image") from exc
    try:
        data = sink.getvalue()
        content = await unless_client_leaves(
            request,
            decoder.run(
                lambda budget: fitted_preview(
                    data, size=size, watermark=record.locked, budget=budget
                )
            ),
        )
    except NotAThumbnail as exc:
        raise BadGateway(f"The preview cannot be used: {exc}", code="bad_preview") from None
    # Never cached: unlocking must show the clean photo at once.
    return Response(
        content, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"}
    )
