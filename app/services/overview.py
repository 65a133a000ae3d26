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

from app.archive.naming import archive_filename, photo_title
from app.upstream.models import Image, Order
from app.upstream.options import DownloadOptions

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


def order_title(order: Order) -> str:
    """The order's name, or, for an order without one, its date and first photo.

    ``2025-07-05 house-front``: the day it was made (UTC) and the name of its first photo
    (in shot order) tell a photographer which shoot it is, where its id would not. Without
    a named photo the start of its id stands in (``2025-07-05 order d45dcede``).
    """
    if order.name and order.name.strip():
        return order.name.strip()
    first = next((t for t in (photo_title(i.image_name) for i in order.images) if t), "")
    parts = [order.created_at.strftime("%Y-%m-%d")] if order.created_at else []
    parts.append(first or f"order {order.order_id[:8]}")
    return " ".join(parts)


def archive_name(order: Order, options: DownloadOptions) -> str:
    """The file name of the order's archive with these options: its title, and
    ``(preview)`` when the photos are free previews or the sizes it holds (see
    `archive_filename`)."""
    return archive_filename(
        order_title(order),
        order.order_id,
        preview=options.preview,
        variants=options.variants or (),
    )
