"""What a person delivering photos sees of orders and images: one word of state each.

The upstream's statuses (`waiting`, `processing`, `processed`, `error`, `expired`, and the
legacy booleans) are folded into the few states the list and the summary show:

* an image is `ready` (its enhanced version can be downloaded), `error` (enhancement failed
  or the image expired: it will not become ready by waiting) or `processing` (anything else,
  including `waiting` for its upload);
* an order is `empty` (no image yet), `processing` (some image may still become ready, or
  HDR brackets are being grouped), `ready` (every image ready), `error` (none ready and none
  will be), or `partial` (some ready, the rest failed).
"""

from __future__ import annotations

from typing import Literal

from app.upstream.models import Image, Order

ImageState = Literal["ready", "processing", "error"]
OrderState = Literal["processing", "ready", "partial", "error", "empty"]

# Statuses after which an image will not become ready without being processed again.
_FAILED_STATUSES = frozenset({"error", "expired"})


def image_state(image: Image) -> ImageState:
    """The one-word state of an image (see the module docstring)."""
    if image.is_ready:
        return "ready"
    if image.status in _FAILED_STATUSES or (image.status is None and image.error):
        return "error"
    return "processing"


def order_state(order: Order) -> OrderState:
    """The one-word state of an order (see the module docstring)."""
    if order.is_merging:
        return "processing"
    states = {image_state(image) for image in order.images}
    if not states:
        return "empty"
    if "processing" in states:
        return "processing"
    if states == {"ready"}:
        return "ready"
    if states == {"error"}:
        return "error"
    return "partial"


def thumbnail_path(order_id: str, image_id: str) -> str:
    """Where this service serves the image's thumbnail."""
    return f"/orders/{order_id}/images/{image_id}/thumbnail"


def cover_image(order: Order) -> Image | None:
    """The image that stands for the order in a list: its first ready one, if any."""
    return next((image for image in order.images if image.is_ready), None)
