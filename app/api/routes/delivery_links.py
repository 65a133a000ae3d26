"""The recipient's side of a delivery: `/d/{token}` and what hangs below it. No key, no account.

The token is the only credential: at least 128 random bits (192 here), URL-safe, stored only as
its SHA-256 and never logged (the access log and the metrics name the route template
`/d/{token}`, never the path). Every route looks the delivery up afresh, so an expiry or a
revocation answers `410` at once on every node: a plain page for `/d/{token}`, the JSON error
shape for the rest.

A recipient reaches nothing but their delivery: the order, the credential, the variants and
the images all come from the stored delivery; what the URL adds (`variant`, `images`) may only
narrow it, anything else is `403`. With a PIN, the page and JSON routes answer `401` until
`POST /d/{token}/pin` sets the HttpOnly cookie scoped to `/d/{token}`. A locked delivery
serves watermarked previews only (`403` for the archive).

The archive comes from the same engine as every archive (`Downloads.answer`: streamed,
deterministic, resumable, cached), but never as a redirect to the object store: its bytes must
pass here to be counted (`app.deliveries.proof`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Cookie, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response, StreamingResponse

from app.api.archives import download_response, pinned_url, version_gone
from app.api.deps import DecoderDep, DownloadsDep, LimiterDep, SettingsDep, UpstreamDep
from app.api.responses import (
    ZIP_RESPONSE_DOC,
    ZipStreamingResponse,
    close_body,
)
from app.api.schemas.deliveries import (
    DeliveredImage,
    DeliveriesDep,
    DeliveryPage,
    PinBody,
    VariantOffer,
)
from app.api.selection import SelectionDep, planned
from app.api.upstream_errors import fetch_order, to_app_error
from app.core.errors import (
    AppError,
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
    error_responses,
)
from app.deliveries.models import DeliveryRecord
from app.deliveries.previews import PreviewSize, fitted_preview, preview_options
from app.deliveries.proof import ServedBody
from app.deliveries.service import DeliveryGone, DeliveryService, UnknownLink
from app.deliveries.variants import variant_label, variant_options
from app.jobs.callbacks import iso
from app.services.answers import Download
from app.services.conditions import VERSION_PATTERN, archive_version
from app.services.naming import archive_filename, content_disposition
from app.services.plan import NothingToDeliver
from app.services.ranges import Conditions
from app.services.thumbnails import MAX_THUMBNAIL_SOURCE_BYTES, BoundedSink, NotAThumbnail
from app.storage import StoreError
from app.upstream.errors import UpstreamError, UpstreamProtocolError
from app.upstream.options import IMAGE_ID_PATTERN
from app.web.disconnect import CLIENT_CLOSED_REQUEST, unless_client_leaves, until_disconnected
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["delivery link"])

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
PIN_COOKIE = "ae_delivery_pin"
# What `secrets.token_urlsafe` writes; anything else is no token and answers 404 unlooked-up.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+)")
NO_STORE = {"Cache-Control": "no-store"}


async def live_delivery(
    token: str, deliveries: DeliveriesDep, *, opening: bool = False
) -> DeliveryRecord:
    """Raises:
    UnknownLink: malformed or unknown token. DeliveryGone: expired or revoked."""
    if not TOKEN_PATTERN.fullmatch(token):
        raise UnknownLink()
    return await deliveries.for_token(token, opening=opening)


def _pin_cookie(
    cookie: Annotated[str | None, Cookie(alias=PIN_COOKIE, include_in_schema=False)] = None,
) -> str | None:
    return cookie


PinCookieDep = Annotated[str | None, Depends(_pin_cookie)]


def _plain_page(status: int, title: str, message: str) -> HTMLResponse:
    """The page's answer when there is nothing to show: a sentence, no script."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{title}</title><link rel="stylesheet" href="/static/styles.css"></head>'
        f'<body><main class="delivery-gone"><h1>{title}</h1><p>{message}</p></main></body></html>'
    )
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


@router.get(
    "/d/{token}",
    response_class=HTMLResponse,
    responses={404: {"description": "Unknown link"}, 410: {"description": "Expired or revoked"}},
    dependencies=[Depends(rate_limit("lookups"))],
    summary="The delivery page the link opens",
)
async def delivery_page(token: str, deliveries: DeliveriesDep) -> Response:
    """The page for the recipient (photos, download buttons); plain text when gone."""
    try:
        await live_delivery(token, deliveries, opening=True)
    except UnknownLink:
        return _plain_page(404, "Link not found", "This delivery link does not exist.")
    except DeliveryGone as exc:
        return _plain_page(410, "Link no longer valid", str(exc.detail))
    return FileResponse(STATIC_DIR / "delivery.html", headers=NO_STORE)


def _image_url(token: str, image_id: str, size: PreviewSize) -> str:
    return f"/d/{token}/images/{image_id}?size={size}"


@router.get(
    "/d/{token}/details",
    response_model=DeliveryPage,
    responses=error_responses(401, 404, 410, 429, 502, 503),
    dependencies=[Depends(rate_limit("lookups"))],
    summary="What the delivery page shows",
)
async def delivery_details(
    token: str,
    deliveries: DeliveriesDep,
    upstream: UpstreamDep,
    pin_cookie: PinCookieDep,
) -> JSONResponse:
    """The order's name, the message, the photos and one download per variant."""
    record = await live_delivery(token, deliveries, opening=True)
    deliveries.require_pin(record, pin_cookie)
    order = await fetch_order(upstream, record.order_id, deliveries.credential(record))
    allowed = set(record.images) if record.images is not None else None
    images = [i for i in order.images if allowed is None or i.image_id in allowed]
    state: Literal["ready", "locked", "limit_reached"] = "ready"
    if record.locked:
        state = "locked"
    elif record.downloads_left == 0:
        state = "limit_reached"
    sizes = {a.variant: a.total for a in record.archives if a.total is not None}
    page = DeliveryPage(
        recipient=record.recipient,
        photographer=record.photographer,
        message=record.message,
        order_name=order.name,
        locked=record.locked,
        expires_at=iso(record.expires_at) or "",
        downloads_left=record.downloads_left,
        variants=[
            VariantOffer(
                name=name,
                label=variant_label(name),
                images=len(images),
                bytes=sizes.get(name),
                url=f"/d/{token}/archive?variant={name}",
            )
            for name in record.variants
        ],
        images=[
            DeliveredImage(
                image_id=image.image_id,
                name=image.image_name,
                ready=image.is_ready,
                preview_url=_image_url(token, image.image_id, "grid"),
                large_url=_image_url(token, image.image_id, "large"),
            )
            for image in images
        ],
        state=state,
    )
    return JSONResponse(page.model_dump(), headers=NO_STORE)


@router.post(
    "/d/{token}/pin",
    responses={
        200: {"description": "The PIN is right; the cookie is set"},
        303: {"description": "A form post: the cookie is set, back to the page"},
        **error_responses(401, 404, 410, 422, 429, 503),
    },
    dependencies=[Depends(rate_limit("links"))],
    summary="Give the delivery's PIN (form or JSON); sets an HttpOnly cookie for this link",
)
async def delivery_pin(token: str, request: Request, deliveries: DeliveriesDep) -> Response:
    """Wrong PINs are counted; after DELIVERY_PIN_ATTEMPTS the link refuses PINs a while."""
    record = await live_delivery(token, deliveries)
    form = request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )
    try:
        if form:
            raw = (await request.form()).get("pin")
            body = PinBody(pin=raw if isinstance(raw, str) else "")
        else:
            body = PinBody.model_validate_json(await request.body())
    except ValueError:
        raise Unprocessable('Send the PIN as JSON {"pin": "1234"} or a form field pin.') from None
    value = await deliveries.check_pin(record, body.pin)
    response: Response
    if form:
        response = RedirectResponse(f"/d/{token}", status_code=303, headers=NO_STORE)
    else:
        response = JSONResponse({"unlocked": True}, headers=NO_STORE)
    response.set_cookie(
        PIN_COOKIE,
        value,
        max_age=max(1, int(record.expires_at - time.time())),
        path=f"/d/{token}",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


def _checked_image_id(image_id: str) -> str:
    if not IMAGE_ID_PATTERN.fullmatch(image_id):
        raise BadRequest("That is not an image id.", code="invalid_image_id")
    return image_id


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
    image_id = _checked_image_id(image_id)
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


def _served_from(response: Response) -> tuple[int | None, int | None]:
    """The first byte and the archive's size an answer states (None: whole / unknown)."""
    if response.status_code == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
        if match is None:
            return None, None
        return int(match.group(1)), int(match.group(3))
    length = response.headers.get("content-length")
    return None, int(length) if length is not None and length.isdigit() else None


@router.get(
    "/d/{token}/archive",
    response_class=ZipStreamingResponse,
    responses={
        **ZIP_RESPONSE_DOC,
        **error_responses(400, 401, 403, 404, 410, 416, 422, 429, 502, 503),
    },
    dependencies=[Depends(rate_limit("downloads"))],
    summary="Download the delivery's photos as one ZIP (resumable)",
)
async def delivery_archive(
    token: str,
    request: Request,
    deliveries: DeliveriesDep,
    upstream: UpstreamDep,
    downloads: DownloadsDep,
    settings: SettingsDep,
    pin_cookie: PinCookieDep,
    images: SelectionDep = None,
    variant: Annotated[
        str | None, Query(max_length=64, description="One of the delivery's variants")
    ] = None,
    version: Annotated[
        str | None,
        Query(
            pattern=VERSION_PATTERN,
            description="Pin the URL to one version of the archive (its Content-Location "
            "carries it): once the order changed, 410 instead of bytes of another version",
        ),
    ] = None,
) -> Response:
    """The delivery's archive; `images` may narrow it to some of its photos. A `Range` resume
    of a download already started works past `max_downloads`."""
    record = await live_delivery(token, deliveries, opening=True)
    deliveries.require_pin(record, pin_cookie)
    if record.locked:
        raise Forbidden(
            "The photographer has not released the photos yet; previews only for now.",
            code="delivery_locked",
        )
    variant = variant or record.variants[0]
    if variant not in record.variants:
        raise Forbidden(f"This delivery does not offer {variant!r}.", code="variant_not_delivered")
    if images is not None and record.images is not None and set(images) - set(record.images):
        raise Forbidden(
            "Some of those photos are not in this delivery.", code="images_not_delivered"
        )
    chosen = images or (tuple(record.images) if record.images is not None else None)
    credential = deliveries.credential(record)
    order = await fetch_order(upstream, record.order_id, credential)
    plan = planned(order, variant_options(variant, chosen))
    if len(plan.images) > settings.max_images_per_order:
        raise Unprocessable("This delivery holds too many photos for one archive.")
    current = archive_version(plan)
    location = pinned_url(request, current)
    if version is not None and version != current:
        raise version_gone(location)
    # One range at most is honoured (app.services.ranges), so what was served stays countable.
    conditions = Conditions.from_headers("GET", request.headers)
    filename = archive_filename(order.name, order.order_id)
    headers = {
        "Content-Disposition": content_disposition(filename),
        "X-Total-Images": str(len(plan.images)),
        "X-Ready-Images": str(len(plan.deliverable)),
        "Content-Location": location,
    }

    async def answer(use_cache: bool) -> Download:
        try:
            return await downloads.answer(
                plan,
                owner=credential.owner,
                api_key=credential.api_key,
                conditions=conditions,
                headers=headers,
                use_cache=use_cache,
            )
        except NothingToDeliver:
            raise Conflict(
                "None of these photos can be downloaded yet.", code="nothing_ready"
            ) from None

    download = await until_disconnected(request, answer(True))
    if download is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    try:
        # The bytes must pass here to be counted: never a presigned redirect.
        response = await download_response(request, downloads, download, redirect=False)
    except StoreError:  # the cached copy was evicted, or the store failed opening it
        download = await answer(False)
        response = await download_response(request, downloads, download, redirect=False)
    if not isinstance(response, StreamingResponse):
        return response  # 304: nothing served
    return await _counted(response, download, record, deliveries, variant)


async def _counted(
    response: StreamingResponse,
    download: Download,
    record: DeliveryRecord,
    deliveries: DeliveryService,
    variant: str,
) -> Response:
    """`response` admitted (counted against `max_downloads`, or a resume) and its body
    wrapped so that the bytes written are recorded; refused answers release their body."""
    etag = response.headers.get("etag", "")
    start, total = _served_from(response)
    try:
        await deliveries.admit(record, etag=etag, variant=variant, start=start)
    except AppError:
        await close_body(response.body_iterator)
        await download.aclose()
        raise

    async def on_served(first: int, end: int, size: int | None) -> None:
        await deliveries.served(
            record.delivery_id, etag=etag, variant=variant, start=first, end=end, total=size
        )

    response.body_iterator = ServedBody(
        response.body_iterator, start=start or 0, total=total, on_served=on_served
    )
    return response
