"""The photographer's deliveries: create a link for a client, read, change and revoke it.

Who may deliver an order: the same rules as for listing orders — a caller's own key
(`X-Autoenhance-Key`), an administrator for the operator's key, anyone in sandbox mode. A
delivery is visible only to the owner of the credential that made it. The recipient's side
of the link is in `app.api.routes.delivery_links` (and its previews and archive beside it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.api.auth import operator_or_own_key
from app.api.deps import SettingsDep, UpstreamDep
from app.api.schemas.deliveries import (
    DeliveriesDep,
    DeliveryChange,
    DeliveryCreate,
    DeliveryCreated,
    DeliveryList,
    DeliveryView,
    delivery_view,
)
from app.api.selection import PresetsDep, planned
from app.api.upstream_errors import checked_order_id, fetch_order
from app.core.config import Settings
from app.core.errors import Unprocessable, error_responses
from app.core.security import Credential
from app.deliveries.models import DeliveryRecord
from app.deliveries.service import DeliverySpec
from app.deliveries.variants import UnknownVariant, checked_variants
from app.imaging.presets import Preset
from app.jobs.callbacks import (
    NOT_ALLOWED,
    CallbackRefused,
    check_callback_url,
    iso,
    resolve_allowed,
)
from app.upstream.options import DownloadOptions, InvalidSelection, checked_selection
from app.web.ratelimit import rate_limit

logger = logging.getLogger("app.deliveries")
router = APIRouter(tags=["deliveries"])

DelivererDep = Annotated[Credential, Depends(operator_or_own_key("Delivering orders with"))]


def _status_url(request: Request, record: DeliveryRecord) -> str:
    return str(request.url_for("delivery_status", delivery_id=record.delivery_id))


def _view(request: Request, record: DeliveryRecord) -> DeliveryView:
    return delivery_view(record, status_url=_status_url(request, record))


def _expiry(value: datetime | None, settings: Settings) -> float | None:
    """`value` as a Unix time, checked: in the future and within DELIVERY_MAX_TTL.

    Raises:
        Unprocessable: in the past, or later than the maximum.
    """
    if value is None:
        return None
    at = value.timestamp()
    now = time.time()
    if at <= now:
        raise Unprocessable("expires_at must be in the future.", code="invalid_expiry")
    if at > now + settings.delivery_max_ttl:
        raise Unprocessable(
            f"expires_at may be at most {settings.delivery_max_ttl} seconds from now "
            f"(DELIVERY_MAX_TTL), that is before {iso(now + settings.delivery_max_ttl)}.",
            code="invalid_expiry",
        )
    return at


def _variants(names: list[str], presets: Mapping[str, Preset]) -> list[str]:
    try:
        return checked_variants(names, presets)
    except UnknownVariant as exc:
        raise Unprocessable(
            {
                "message": f"There is no variant {exc.name[:40]!r}; known: " + ", ".join(presets),
                "variant": exc.name,
            },
            code="unknown_variant",
        ) from None


async def _callback(url: str | None, settings: Settings) -> str | None:
    if not url:
        return None
    try:
        check_callback_url(url)
        await resolve_allowed(httpx.URL(url), allow_private=settings.callback_allow_private)
    except CallbackRefused as exc:
        logger.info("callback_url refused: %r", str(exc))
        raise Unprocessable(
            f"callback_url is {NOT_ALLOWED}: an absolute http(s) URL of a public host.",
            code="invalid_callback_url",
        ) from None
    return url


@router.post(
    "/orders/{order_id}/deliveries",
    status_code=201,
    response_model=DeliveryCreated,
    responses=error_responses(400, 401, 403, 404, 422, 429, 502, 503),
    dependencies=[Depends(rate_limit("links"))],
    summary="Create a delivery: a link your client opens to take the photos",
)
async def create_delivery(
    order_id: str,
    body: DeliveryCreate,
    request: Request,
    credential: DelivererDep,
    upstream: UpstreamDep,
    settings: SettingsDep,
    deliveries: DeliveriesDep,
    presets: PresetsDep,
) -> JSONResponse:
    """The answer's `url` is the link to send; it is shown this once (only its hash is kept)."""
    order_id = checked_order_id(order_id)
    variants = _variants(body.variants, presets)  # before any upstream call
    expires_at = _expiry(body.expires_at, settings)
    images = None
    if body.images is not None:
        try:
            images = checked_selection(body.images)
        except InvalidSelection as exc:
            raise Unprocessable(str(exc), code="invalid_selection") from None
    order = await fetch_order(upstream, order_id, credential)
    # The selection must name images of the order now, not when the link is first opened.
    planned(order, DownloadOptions(images=images), presets)
    callback_url = await _callback(body.callback_url, settings)
    spec = DeliverySpec(
        recipient=body.recipient.strip() or body.recipient,
        variants=variants,
        images=list(images) if images is not None else None,
        expires_at=expires_at,
        pin=body.pin,
        max_downloads=body.max_downloads,
        locked=body.locked,
        message=body.message,
        photographer=body.photographer,
        callback_url=callback_url,
    )
    record, token = await deliveries.create(
        spec,
        owner=credential.owner,
        own_key=credential.api_key if credential.is_own_key else None,
        order_id=order_id,
        base_url=str(request.base_url),
    )
    status_url = _status_url(request, record)
    created = DeliveryCreated(
        delivery_id=record.delivery_id,
        url=str(request.base_url).rstrip("/") + f"/d/{token}",
        status=record.status(),
        expires_at=iso(record.expires_at) or "",
        status_url=status_url,
        callback_secret=deliveries.callback_secret(record) if record.callback_url else None,
    )
    return JSONResponse(
        created.model_dump(),
        status_code=201,
        headers={"Location": status_url, "Cache-Control": "no-store"},
    )


@router.get(
    "/orders/{order_id}/deliveries",
    response_model=DeliveryList,
    responses=error_responses(400, 401, 403, 429, 503),
    dependencies=[Depends(rate_limit("lookups"))],
    summary="The deliveries you made of an order",
)
async def list_deliveries(
    order_id: str, request: Request, credential: DelivererDep, deliveries: DeliveriesDep
) -> DeliveryList:
    """Oldest first, each with its status and events."""
    order_id = checked_order_id(order_id)
    records = await deliveries.of_order(order_id, owner=credential.owner)
    return DeliveryList(deliveries=[_view(request, record) for record in records])


@router.get(
    "/deliveries/{delivery_id}",
    name="delivery_status",
    response_model=DeliveryView,
    responses=error_responses(401, 403, 404, 429, 503),
    dependencies=[Depends(rate_limit("job_status"))],
    summary="A delivery: its status (sent, opened, downloading, delivered, ...) and events",
)
async def delivery_status(
    delivery_id: str, request: Request, credential: DelivererDep, deliveries: DeliveriesDep
) -> DeliveryView:
    """`delivered` carries the proof: when, which variant, how many bytes, the ETag."""
    return _view(request, await deliveries.owned(delivery_id, owner=credential.owner))


@router.patch(
    "/deliveries/{delivery_id}",
    response_model=DeliveryView,
    responses=error_responses(401, 403, 404, 410, 422, 429, 503),
    dependencies=[Depends(rate_limit("job_status"))],
    summary="Change a delivery's expiry, download limit or lock",
)
async def change_delivery(
    delivery_id: str,
    body: DeliveryChange,
    request: Request,
    credential: DelivererDep,
    settings: SettingsDep,
    deliveries: DeliveriesDep,
) -> DeliveryView:
    """Unlocking (`locked: false`) releases the full photos at once."""
    given = body.model_fields_set
    changes: dict[str, object] = {}
    if "expires_at" in given:
        if body.expires_at is None:
            raise Unprocessable("expires_at cannot be null.", code="invalid_expiry")
        changes["expires_at"] = _expiry(body.expires_at, settings)
    if "max_downloads" in given:
        changes["max_downloads"] = body.max_downloads
    if "locked" in given:
        if body.locked is None:
            raise Unprocessable("locked is true or false.", code="invalid_lock")
        changes["locked"] = body.locked
    if not changes:
        raise Unprocessable(
            "Nothing to change: give expires_at, max_downloads or locked.", code="no_change"
        )
    record = await deliveries.change(delivery_id, owner=credential.owner, changes=changes)
    return _view(request, record)


@router.delete(
    "/deliveries/{delivery_id}",
    response_model=DeliveryView,
    responses=error_responses(401, 403, 404, 429, 503),
    dependencies=[Depends(rate_limit("job_status"))],
    summary="Revoke a delivery: its link answers 410 at once, on every node",
)
async def revoke_delivery(
    delivery_id: str, request: Request, credential: DelivererDep, deliveries: DeliveriesDep
) -> DeliveryView:
    """The delivery and its events stay readable here; only the link stops working."""
    return _view(request, await deliveries.revoke(delivery_id, owner=credential.owner))
