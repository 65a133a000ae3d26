"""`GET /orders` (your orders) and `GET /orders/{order_id}` (look before downloading).

Who may list orders: a caller with their own key (`X-Autoenhance-Key`) sees the orders of
that key; the operator's orders are listed only to an administrator, even when no
`SERVICE_API_KEY` is set (the operator's account holds every customer's orders); in sandbox
mode nothing is private, so anyone who may use the service may list. The summary reads one
order with the same credential rules as a download.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, ValidationError

from app.api.auth import ListerDep
from app.api.deps import (
    CredentialDep,
    OptionsDep,
    UpstreamDep,
)
from app.api.selection import PresetsDep, planned
from app.api.upstream_errors import checked_order_id, fetch_order, to_app_error
from app.archive.naming import photo_title
from app.archive.plan import REPORT_NAME
from app.core.errors import BadGateway, Unprocessable, error_responses
from app.core.security import Credential
from app.services.overview import (
    ImageState,
    OrderState,
    archive_name,
    cover_image,
    image_state,
    order_state,
    order_title,
    thumbnail_path,
)
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import UpstreamError, UpstreamRejected
from app.upstream.models import Order, OrderPage
from app.web.ratelimit import rate_limit

router = APIRouter(tags=["orders"])

DEFAULT_PAGE = 20
MAX_PAGE = 50
# The upstream may answer a shorter page than asked (its per_page cap); a page of this service
# is filled from at most this many upstream pages.
MAX_UPSTREAM_PAGES = 5
# A cursor is the upstream's opaque offset token in base64url: whatever the token looks like,
# the cursor is safe in a URL. Longer tokens than this are not believed.
MAX_OFFSET_CHARS = 1000
MAX_CURSOR_CHARS = 4 * -(-MAX_OFFSET_CHARS // 3)
CURSOR_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


TITLE_DESCRIPTION = "The order's name, or its date and first photo when it has none"


class ImageSummary(BaseModel):
    image_id: str
    image_name: str | None
    title: str = Field(
        description='The photo\'s name without folders or extension (`garden`); "" if none'
    )
    status: str | None
    status_reason: str | None
    ready: bool
    state: ImageState = Field(description="ready, processing or error")
    entry_name: str
    thumbnail_url: str | None = Field(
        description="Path of the image's thumbnail; null until the image is ready"
    )


class OrderSummary(BaseModel):
    order_id: str
    name: str | None
    title: str = Field(description=TITLE_DESCRIPTION)
    archive_name: str = Field(
        description="The ZIP's file name with these options (`<title> (preview).zip` for previews)"
    )
    status: str | None
    state: OrderState = Field(description="processing, ready, partial, error or empty")
    is_processing: bool | None
    created_at: datetime | None
    last_updated_at: datetime | None
    image_count: int
    ready_count: int
    not_ready_count: int
    report_entry: str | None
    images: list[ImageSummary]


class OrderListItem(BaseModel):
    order_id: str
    name: str | None
    title: str = Field(description=TITLE_DESCRIPTION)
    created_at: datetime | None
    image_count: int
    status: OrderState = Field(description="processing, ready, partial, error or empty")
    thumbnail_url: str | None = Field(
        description="Path of the thumbnail of the order's first ready image, or null"
    )


class OrderList(BaseModel):
    orders: list[OrderListItem] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null = end")


def encode_cursor(offset: str) -> str:
    return base64.urlsafe_b64encode(offset.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The upstream offset token inside a cursor.

    Raises:
        Unprocessable: not a cursor this service handed out.
    """
    try:
        if not CURSOR_PATTERN.fullmatch(cursor):
            raise ValueError(cursor)
        offset = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable(
            "That is not a cursor this service handed out.", code="invalid_cursor"
        ) from None
    if not offset or not offset.isprintable():
        raise Unprocessable("That is not a cursor this service handed out.", code="invalid_cursor")
    return offset


async def _upstream_page(
    upstream: AutoenhanceClient, credential: Credential, *, per_page: int, offset: str | None
) -> OrderPage:
    """One page of the upstream's order list, every failure mapped to this service's errors.

    Raises:
        Unprocessable: the upstream refused the offset (a cursor no longer valid).
        AppError: 401, 502 or 503 as for any upstream call; 502 for an answer that is not an
            order list, or whose next offset is not a short string.
    """
    try:
        page = await upstream.list_orders(
            api_key=credential.api_key, per_page=per_page, offset=offset
        )
    except UpstreamRejected as exc:
        if offset is not None and exc.status_code in (400, 422):
            raise Unprocessable(
                "That cursor is not valid (any more); start from the first page.",
                code="invalid_cursor",
            ) from exc
        raise to_app_error(exc) from exc
    except UpstreamError as exc:
        raise to_app_error(exc) from exc
    except (ValidationError, ValueError, AttributeError, TypeError) as exc:
        raise BadGateway(
            "The Autoenhance API answered with something that is no order list."
        ) from exc
    if page.next_offset is not None and not 0 < len(page.next_offset) <= MAX_OFFSET_CHARS:
        raise BadGateway("The Autoenhance API answered with an unusable page token.")
    return page


def _list_item(order: Order) -> OrderListItem:
    cover = cover_image(order)
    return OrderListItem(
        order_id=order.order_id,
        name=order.name,
        title=order_title(order),
        created_at=order.created_at,
        image_count=len(order.images) or int(order.total_images or 0),
        status=order_state(order),
        thumbnail_url=thumbnail_path(order.order_id, cover.image_id) if cover else None,
    )


@router.get(
    "/orders",
    response_model=OrderList,
    responses=error_responses(401, 403, 422, 429, 502, 503),
    dependencies=[Depends(rate_limit("lookups"))],
    summary="Your recent orders, newest first, one page at a time",
)
async def list_orders(
    credential: ListerDep,
    upstream: UpstreamDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Orders per page")] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_CHARS, description="`next_cursor` of the previous page"),
    ] = None,
) -> OrderList:
    """The orders of your key (or, for administrators, of the service's key)."""
    offset = decode_cursor(cursor) if cursor is not None else None
    orders: list[Order] = []
    for _ in range(MAX_UPSTREAM_PAGES):
        page = await _upstream_page(
            upstream, credential, per_page=limit - len(orders), offset=offset
        )
        orders.extend(page.orders[: limit - len(orders)])
        offset = page.next_offset
        if offset is None or len(orders) >= limit or not page.orders:
            break
    return OrderList(
        orders=[_list_item(order) for order in orders],
        next_cursor=encode_cursor(offset) if offset is not None else None,
    )


@router.get(
    "/orders/{order_id}",
    response_model=OrderSummary,
    responses=error_responses(400, 401, 404, 422, 429, 502, 503),
    summary="Summary of an order: its images, their status and their names in the ZIP",
    dependencies=[Depends(rate_limit("lookups"))],
)
async def order_summary(
    order_id: str,
    options: OptionsDep,
    credential: CredentialDep,
    upstream: UpstreamDep,
    presets: PresetsDep,
) -> OrderSummary:
    """What a download of this order with these options (and `images`) would contain."""
    order = await fetch_order(upstream, checked_order_id(order_id), credential)
    plan = planned(order, options, presets)
    ready = len(plan.deliverable)
    return OrderSummary(
        order_id=order.order_id,
        name=order.name,
        title=order_title(order),
        archive_name=archive_name(order, options),
        status=order.status,
        state=order_state(order),
        is_processing=order.is_processing,
        created_at=order.created_at,
        last_updated_at=order.last_updated_at,
        image_count=len(plan.images),
        ready_count=ready,
        not_ready_count=len(plan.images) - ready,
        report_entry=REPORT_NAME if ready < len(plan.images) else None,
        images=[
            ImageSummary(
                image_id=p.image.image_id,
                image_name=p.image.image_name,
                title=photo_title(p.image.image_name),
                status=p.image.status,
                status_reason=p.image.status_reason,
                ready=p.ready,
                state=image_state(p.image),
                entry_name=p.entry_name,
                thumbnail_url=(
                    thumbnail_path(order.order_id, p.image.image_id) if p.ready else None
                ),
            )
            for p in plan.images
        ],
    )
