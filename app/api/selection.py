"""`?images=<id>,<id>,…`: the archive holds just those images of the order; `?variants=`:
in the sizes of those presets.

The query is checked here (count, id syntax, known presets) before anything else happens;
that every id is in the order is checked by planning (`plan_batch`), which runs once the order
is read and before any image is fetched. Every refusal is a 422 naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Query, Request

from app.archive.plan import BatchPlan, UnknownImages, plan_batch
from app.core.errors import Unprocessable
from app.imaging.presets import MAX_VARIANTS, Preset, parse_variants
from app.upstream.models import Order
from app.upstream.options import (
    MAX_SELECTED_IMAGES,
    MAX_SELECTION_CHARS,
    MAX_VARIANTS_CHARS,
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


def get_presets(request: Request) -> Mapping[str, Preset]:
    """The presets this service offers (built-in and `PRESETS_FILE`'s)."""
    presets: Mapping[str, Preset] = request.app.state.presets
    return presets


PresetsDep = Annotated[Mapping[str, Preset], Depends(get_presets)]


def variant_names(
    request: Request,
    variants: Annotated[
        str | None,
        Query(
            max_length=MAX_VARIANTS_CHARS,
            description=f"Comma-separated presets (see GET /presets), at most {MAX_VARIANTS}: "
            "one top-level folder each (`MLS/`, `Print/`), every image in each. Needs "
            "preview=false (or dev_mode=true).",
        ),
    ] = None,
) -> tuple[str, ...] | None:
    """The presets `?variants=` names, each one this service offers, or None.

    Raises:
        Unprocessable: an unknown preset (named; code `unknown_variant`), none, or too many.
    """
    if variants is None:
        return None
    return tuple(preset.name for preset in parse_variants(variants, get_presets(request)))


VariantsDep = Annotated[tuple[str, ...] | None, Depends(variant_names)]


def checked_variants(options: DownloadOptions, presets: Mapping[str, Preset]) -> None:
    """Refuse, before any upstream call, variants of `options` this service does not offer.

    Raises:
        Unprocessable: as `variant_names`.
    """
    if options.variants:
        parse_variants(",".join(options.variants), presets)


def planned(order: Order, options: DownloadOptions, presets: Mapping[str, Preset]) -> BatchPlan:
    """`plan_batch`, with a selection naming foreign images refused as a 422.

    Raises:
        Unprocessable: `options.images` holds ids that are not in the order (named in
            `detail.image_ids`), or a variant is not one of `presets`.
    """
    try:
        return plan_batch(order, options, presets=presets)
    except UnknownImages as exc:
        shown = exc.image_ids[:20]
        raise Unprocessable(
            {
                "message": "These images are not in the order: " + ", ".join(shown),
                "image_ids": shown,
            },
            code="unknown_images",
        ) from None
