"""`/_sandbox/*`: health, synthetic orders, faults, request log, credits, reset.

These routes need no key, are never logged and are never affected by faults, so a test can
always clear what it injected.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Header, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sandbox.deps import State
from app.sandbox.errors import NotFound
from app.sandbox.faults import Fault, StuckFault
from app.sandbox.imaging import min_padded_size, padded_jpeg
from app.sandbox.processing import INJECTED_ERROR_REASON
from app.sandbox.records import ImageStatus

router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

MAX_SYNTHETIC_IMAGES = 10_000
MAX_SYNTHETIC_BYTES = 1024 * 1024 * 1024
MAX_NAME_CHARS = 1000


class SyntheticOrderIn(BaseModel):
    """A ready-made order for benchmarks and failure scenarios.

    Every image's download is exactly `image_bytes` bytes (a tiny image of the requested
    format, padded). `statuses` and `status_reasons` override single images by 0-based index;
    `names` sets image names by index (the rest are `image-0001`, ...). `name` and `names`
    may hold lone surrogates (`"\\udc80"` escapes), served back as such, to try a client on
    names UTF-8 cannot encode. Statuses are final:
    no processing happens on synthetic images. `api_key` makes the order private to that key;
    without it the order is shared like the demo order.
    """

    model_config = ConfigDict(extra="forbid")

    images: int = Field(default=10, ge=0, le=MAX_SYNTHETIC_IMAGES)
    image_bytes: int = Field(default=200_000, ge=1, le=MAX_SYNTHETIC_BYTES)
    # Lengths are checked in `_check`: a length constraint would refuse lone surrogates.
    name: str = "Synthetic order"
    order_id: str | None = Field(default=None, min_length=1, max_length=200)
    status: ImageStatus = "processed"
    statuses: dict[int, ImageStatus] = Field(default_factory=dict)
    status_reasons: dict[int, str] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list, max_length=MAX_SYNTHETIC_IMAGES)
    api_key: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _check(self) -> SyntheticOrderIn:
        if len(self.name) > MAX_NAME_CHARS or any(len(n) > MAX_NAME_CHARS for n in self.names):
            raise ValueError(f"names are at most {MAX_NAME_CHARS} characters")
        if self.image_bytes < min_padded_size():
            raise ValueError(f"image_bytes must be at least {min_padded_size()}")
        bad = [i for i in [*self.statuses, *self.status_reasons] if not 0 <= i < self.images]
        if bad:
            raise ValueError(f"image index out of range: {bad[0]}")
        return self


class CreditsIn(BaseModel):
    credits: int = Field(ge=0)


class ImageStatusIn(BaseModel):
    status: ImageStatus
    status_reason: str | None = Field(default=None, max_length=1000)


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok"}


@router.post("/orders")
async def create_synthetic_order(state: State, body: SyntheticOrderIn) -> dict[str, Any]:
    """Create a ready-made order (see SyntheticOrderIn); returns its OrderOut."""
    payload = await anyio.to_thread.run_sync(padded_jpeg, body.image_bytes)
    order = state.store.create_order(owner=body.api_key, name=body.name, order_id=body.order_id)
    for index in range(body.images):
        status = body.statuses.get(index, body.status)
        reason = body.status_reasons.get(index)
        if status == "error" and reason is None:
            reason = INJECTED_ERROR_REASON
        name = body.names[index] if index < len(body.names) else f"image-{index + 1:04d}"
        image = state.store.add_processed_image(order, name=name, fixed_payload=payload)
        image.status, image.status_reason = status, reason
    state.store.enforce_bounds(keep=order.order_id)
    return state.store.order_out(order)


@router.get("/stats")
async def stats(state: State) -> dict[str, int]:
    """What the store holds now: orders, images and image bytes (and their bounds)."""
    store = state.store
    return {
        "orders": len(store.orders),
        "images": len(store.images),
        "stored_bytes": store.stored_bytes(),
        "max_orders": store.max_orders or 0,
        "max_stored_bytes": store.max_bytes or 0,
    }


@router.post("/images/{image_id}/status")
async def set_image_status(state: State, image_id: str, body: ImageStatusIn) -> dict[str, Any]:
    """Force one image's status (and reason), e.g. to simulate an expired or failed image."""
    image = state.store.images.get(image_id)
    if image is None:
        raise NotFound("Image not found", detail={"image_id": image_id})
    image.revision += 1  # cancels any processing still pending for it
    state.store.set_status(image, body.status, body.status_reason)
    return image.out()


@router.get("/faults")
async def list_faults(state: State) -> dict[str, Any]:
    """The faults in force, with ids and remaining counts, and how many requests a latency,
    stall or bandwidth fault is holding right now (`waiting`)."""
    return {
        "faults": [active.describe() for active in state.faults.active()],
        "waiting": state.faults.waiting(),
    }


@router.post("/faults")
async def add_faults(state: State, body: Annotated[Fault | list[Fault], Body()]) -> dict[str, Any]:
    """Put one fault (object) or several (array) in force; returns the added records."""
    added = [state.faults.add(fault) for fault in (body if isinstance(body, list) else [body])]
    for active in added:
        if isinstance(active.fault, StuckFault):
            for image_id in active.fault.image_ids or []:
                image = state.store.images.get(image_id)
                # Images without bytes yet are caught when their upload is processed.
                if image is None or (image.original is None and image.fixed_payload is None):
                    continue
                taken = state.faults.take_stuck(image_id)
                if taken is not None:
                    state.processor.hold(image, *taken)
    return {"faults": [active.describe() for active in added]}


@router.delete("/faults", status_code=204)
async def clear_faults(state: State) -> Response:
    """Clear every fault, including those set at start-up (a reset restores those).

    Requests still held by a latency, stall or bandwidth fault are dropped at once.
    """
    state.faults.clear()
    return Response(status_code=204)


@router.delete("/faults/{fault_id}", status_code=204)
async def remove_fault(state: State, fault_id: int) -> Response:
    """Retire one fault."""
    if not state.faults.remove(fault_id):
        raise NotFound("Fault not found", detail={"fault_id": fault_id})
    return Response(status_code=204)


# The key travels in the header the API itself reads, never in a URL that ends up in logs.
LogKey = Annotated[
    str | None,
    Header(
        alias="x-api-key",
        max_length=1000,
        description="Only requests made with this key (an asset leg counts for the key whose "
        "download redirected to it)",
    ),
]


@router.get("/requests")
async def list_requests(state: State, api_key: LogKey = None) -> dict[str, Any]:
    """API requests seen so far, oldest first (never including key values)."""
    return {"requests": state.log.list(api_key)}


@router.delete("/requests", status_code=204)
async def clear_requests(state: State, api_key: LogKey = None) -> Response:
    """Forget the logged requests (only those made with `api_key` when given)."""
    state.log.clear(api_key)
    return Response(status_code=204)


@router.get("/account")
async def account(state: State) -> dict[str, int]:
    """Credits left for full-size purchases."""
    return {"credits": state.store.credits}


@router.put("/account")
async def set_account(state: State, body: CreditsIn) -> dict[str, int]:
    """Set the credits left."""
    state.store.credits = body.credits
    return {"credits": state.store.credits}


@router.post("/reset")
async def reset(state: State) -> dict[str, str]:
    """Wipe orders, faults, log and cache back to the start state."""
    state.reset()
    return {"status": "ok"}
