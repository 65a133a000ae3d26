"""`/v3/orders` routes: create, list, retrieve, rename, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from app.sandbox.deps import ApiKey, OptionalKey, State, collection_route
from app.sandbox.store import MAX_PER_PAGE

router = APIRouter(tags=["orders"])

ID_FIELD = Field(default=None, min_length=1, max_length=200)


class OrderIn(BaseModel):
    """Body of create/edit; unknown keys are ignored like newer upstream fields."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=1000)
    order_id: str | None = ID_FIELD


@collection_route(router, "/v3/orders", "POST")
async def create_order(
    state: State, key: ApiKey, body: OrderIn | None = Body(default=None)
) -> dict[str, Any]:
    """Create an empty order (status `waiting`); 409 when `order_id` is taken."""
    body = body or OrderIn()
    order = state.store.create_order(owner=key, name=body.name, order_id=body.order_id)
    return state.store.order_out(order)


@collection_route(router, "/v3/orders", "GET")
async def list_orders(
    state: State,
    key: ApiKey,
    per_page: int = Query(default=5, ge=1, le=1000),
    offset: str | None = Query(default=None, max_length=200),
) -> dict[str, Any]:
    """One page of the caller's orders (newest first); `next_offset` is null on the last."""
    page, next_offset = state.store.list_orders(key, per_page=per_page, offset=offset)
    return {
        "orders": [state.store.order_out(order) for order in page],
        "pagination": {"per_page": min(per_page, MAX_PER_PAGE), "next_offset": next_offset},
    }


@router.get("/v3/orders/{order_id}")
async def retrieve_order(state: State, key: OptionalKey, order_id: str) -> dict[str, Any]:
    """The order with its images; no key needed, but another key's order is a 404."""
    return state.store.order_out(state.store.order(order_id, key))


@router.patch("/v3/orders/{order_id}")
async def update_order(
    state: State, key: ApiKey, order_id: str, body: OrderIn | None = Body(default=None)
) -> dict[str, Any]:
    """Rename an order (the only editable field upstream)."""
    order = state.store.order_for_change(order_id, key)
    if body is not None and body.name is not None:
        order.name = body.name
        order.touch()
    return state.store.order_out(order)


@router.delete("/v3/orders/{order_id}", status_code=204)
async def delete_order(state: State, key: ApiKey, order_id: str) -> Response:
    """Delete an order and its images."""
    state.store.delete_order(state.store.order_for_change(order_id, key))
    return Response(status_code=204)
