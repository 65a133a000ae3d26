"""The recipient's side of a delivery: `/d/{token}` and what hangs below it. No key, no account.

The token is the only credential: at least 128 random bits (192 here), URL-safe, stored only as
its SHA-256 and never logged (the access log and the metrics name the route template
`/d/{token}`, never the path). Every route looks the delivery up afresh
(`app.api.delivery_access`), so an expiry or a revocation answers `410` at once on every node:
a plain page for `/d/{token}`, the JSON error shape for the rest.

A recipient reaches nothing but their delivery: the order, the credential, the variants and
the images all come from the stored delivery; what the URL adds (`variant`, `images`) may only
narrow it, anything else is `403`. With a PIN, the page and JSON routes answer `401` until
`POST /d/{token}/pin` sets the HttpOnly cookie scoped to `/d/{token}`. A locked delivery
serves watermarked previews only (`403` for the archive).

This module has the page, what it shows and the PIN; the previews are in
`app.api.routes.delivery_previews`, the archive (and the counting of its bytes) in
`app.api.routes.delivery_archive`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response

from app.api.delivery_access import NO_STORE, PIN_COOKIE, PinCookieDep, live_delivery
from app.api.deps import DownloadsDep, UpstreamDep
from app.api.schemas.deliveries import (
    DeliveredImage,
    DeliveriesDep,
    DeliveryPage,
    PinBody,
    VariantOffer,
)
from app.api.selection import PresetsDep
from app.api.upstream_errors import fetch_order
from app.archive.downloads import Downloads
from app.archive.plan import UnknownImages, plan_batch
from app.archive.validators import identify
from app.core.errors import Unprocessable, error_responses
from app.deliveries.errors import DeliveryGone, UnknownLink
from app.deliveries.models import DeliveryRecord
from app.deliveries.previews import PreviewSize
from app.deliveries.variants import UnknownVariant, variant_label, variant_options
from app.imaging.presets import Preset
from app.jobs.callbacks import iso
from app.upstream.models import Order
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["delivery link"])

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"


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


async def _archive_size(
    record: DeliveryRecord,
    order: Order,
    variant: str,
    *,
    owner: str,
    downloads: Downloads,
    presets: Mapping[str, Preset],
) -> int | None:
    """The size of the archive "Download all" of `variant` gets now, when it is known without
    fetching a photo: from what this delivery was served of that very archive (its ETag, so
    neither a selection's archive nor an earlier version of the order), else from a complete
    copy in the archive cache. None otherwise."""
    chosen = tuple(record.images) if record.images is not None else None
    try:
        plan = plan_batch(order, variant_options(variant, chosen, presets), presets=presets)
    except (UnknownImages, UnknownVariant):
        return None
    served = record.archive(identify(plan, owner=owner).etag)
    if served is not None and served.total is not None:
        return served.total
    return await downloads.cached_size(plan, owner=owner)


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
    downloads: DownloadsDep,
    pin_cookie: PinCookieDep,
    presets: PresetsDep,
) -> JSONResponse:
    """The order's name, the message, the photos and one download per variant (with the size
    of its archive when that is known without fetching a photo)."""
    record = await live_delivery(token, deliveries, opening=True)
    deliveries.require_pin(record, pin_cookie)
    credential = deliveries.credential(record)
    order = await fetch_order(upstream, record.order_id, credential)
    allowed = set(record.images) if record.images is not None else None
    images = [i for i in order.images if allowed is None or i.image_id in allowed]
    state: Literal["ready", "locked", "limit_reached"] = "ready"
    if record.locked:
        state = "locked"
    elif record.downloads_left == 0:
        state = "limit_reached"
    sizes = await asyncio.gather(
        *(
            _archive_size(
                record,
                order,
                name,
                owner=credential.owner,
                downloads=downloads,
                presets=presets,
            )
            for name in record.variants
        )
    )
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
                label=variant_label(name, presets),
                images=len(images),
                bytes=size,
                url=f"/d/{token}/archive?variant={name}",
            )
            for name, size in zip(record.variants, sizes, strict=True)
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
