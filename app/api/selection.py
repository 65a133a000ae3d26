"""`?images=<id>,<id>,…`: the archive holds just those images of the order.

The query is checked here (count, id syntax) before anything else happens; that every id is in
the order is checked by planning (`plan_batch`), which runs once the order is read and before
any image is fetched. Both refusals are 422s naming what is wrong.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.core.errors import Unprocessable
from app.services.plan import BatchPlan, UnknownImages, plan_batch
from app.upstream.models import Order
from app.upstream.options import (
    MAX_SELECTED_IMAGES,
    MAX_SELECTION_CHARS,
    DownloadOptions,
    InvalidSelection,
    parse_selection,
)


def image_selection(
    images: Annotated[
        str | None,
        Query(
            max_length=MAX_SELECTION_CHARS,
            description=f"Comma-separated image ids: only these images (at most "
            f"{MAX_SELECTED_IMAGES}), in the order's order. Default: every image.",
        ),
    ] = None,
) -> tuple[str, ...] | None:
    """The selected image ids, or None for the whole order.

    Raises:
        Unprocessable: an empty list, too many ids, or something that is no image id.
    """
    if images is None:
        return None
    try:
        return parse_selection(images)
    except InvalidSelection as exc:
        raise Unprocessable(str(exc), code="invalid_selection") from None


SelectionDep = Annotated[tuple[str, ...] | None, Depends(image_selection)]


def planned(order: Order, options: DownloadOptions) -> BatchPlan:
    """`plan_batch`, with a selection naming foreign images refused as a 422.

    Raises:
        Unprocessable: `options.images` holds ids that are not in the order (named in
            `detail.image_ids`).
    """
    try:
        return plan_batch(order, options)
    except UnknownImages as exc:
        shown = exc.image_ids[:20]
        raise Unprocessable(
            {
                "message": "These images are not in the order: " + ", ".join(shown),
                "image_ids": shown,
            },
            code="unknown_images",
        ) from None
