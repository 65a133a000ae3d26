"""GET /orders/{order_id}: look at an order before downloading it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.api.deps import CredentialDep, UpstreamDep
from app.api.routes.batch import OptionsDep
from app.api.upstream import checked_order_id, fetch_order
from app.core.errors import error_responses
from app.core.ratelimit import rate_limit
from app.services.batch import REPORT_NAME, plan_batch

router = APIRouter(tags=["orders"])


class ImageSummary(BaseModel):
    image_id: str
    image_name: str | None
    status: str | None
    status_reason: str | None
    ready: bool
    entry_name: str


class OrderSummary(BaseModel):
    order_id: str
    name: str | None
    status: str | None
    is_processing: bool | None
    last_updated_at: datetime | None
    image_count: int
    ready_count: int
    not_ready_count: int
    report_entry: str | None
    images: list[ImageSummary]


@router.get(
    "/orders/{order_id}",
    response_model=OrderSummary,
    responses=error_responses(400, 401, 404, 422, 429, 502, 503),
    summary="Summary of an order: its images, their status and their names in the ZIP",
    dependencies=[Depends(rate_limit("lookups"))],
)
async def order_summary(
    order_id: str, options: OptionsDep, credential: CredentialDep, upstream: UpstreamDep
) -> OrderSummary:
    """What a download of this order with these options would contain."""
    order = await fetch_order(upstream, checked_order_id(order_id), credential)
    plan = plan_batch(order, options)
    ready = len(plan.deliverable)
    return OrderSummary(
        order_id=order.order_id,
        name=order.name,
        status=order.status,
        is_processing=order.is_processing,
        last_updated_at=order.last_updated_at,
        image_count=len(plan.images),
        ready_count=ready,
        not_ready_count=len(plan.images) - ready,
        report_entry=REPORT_NAME if ready < len(plan.images) else None,
        images=[
            ImageSummary(
                image_id=p.image.image_id,
                image_name=p.image.image_name,
                status=p.image.status,
                status_reason=p.image.status_reason,
                ready=p.ready,
                entry_name=p.entry_name,
            )
            for p in plan.images
        ],
    )
