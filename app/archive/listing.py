"""`manifest.json`: what an archive holds, for an integrator to check every file and feed it
to a listing system.

The last entry of an archive asked for with `manifest=true`. It names the order (id, name,
version), then every file: its path in the archive, the image it shows (id, name), the
variant it was rendered for, its pixels, bytes and SHA-256; and every image or variant that
could not be included, and why. Field names follow the RESO Data Dictionary's Media resource
where one fits (`MediaObjectID`, `ShortDescription`, `Order`, `ImageWidth`, `ImageHeight`,
`ImageSizeDescription`, `MediaCategory`, `MimeType`); the rest are this service's own.

The text is a pure function of the plan and the archive's records (no clock, no order of a
dict that could change), so it is as deterministic as every other byte of the archive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.archive.naming import photo_title

MANIFEST_NAME = "manifest.json"
# Bump when the layout of manifest.json changes: it is part of the archive's identity.
LISTING_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ListedFile:
    """One planned file of the archive, and what became of it."""

    path: str
    image_id: str
    image_name: str | None
    position: int  # in the order's shot order, from 1
    variant: str | None
    variant_label: str | None
    media_type: str
    size: int
    width: int | None
    height: int | None
    sha256: str | None
    skipped: str | None


def render_listing(
    *,
    order_id: str,
    order_name: str | None,
    version: str,
    files: Sequence[ListedFile],
    not_ready: Sequence[tuple[str, str | None, str]],
) -> bytes:
    """The bytes of `manifest.json` (UTF-8 JSON, ASCII-escaped, two-space indented).

    `not_ready` lists `(image_id, image_name, reason)` of images not delivered at all.
    """
    listed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for item in files:
        if item.skipped is not None:
            skipped.append(
                {
                    "MediaObjectID": item.image_id,
                    "ImageName": item.image_name,
                    "variant": item.variant,
                    "reason": item.skipped,
                }
            )
            continue
        listed.append(
            {
                "path": item.path,
                "MediaObjectID": item.image_id,
                "ImageName": item.image_name,
                "ShortDescription": photo_title(item.image_name) or None,
                "Order": item.position,
                "MediaCategory": "Photo",
                "MimeType": item.media_type,
                "variant": item.variant,
                "ImageSizeDescription": item.variant_label,
                "ImageWidth": item.width,
                "ImageHeight": item.height,
                "bytes": item.size,
                "sha256": item.sha256,
            }
        )
    for image_id, image_name, reason in not_ready:
        skipped.append(
            {"MediaObjectID": image_id, "ImageName": image_name, "variant": None, "reason": reason}
        )
    body = {
        "format": LISTING_FORMAT,
        "order": {"id": order_id, "name": order_name, "version": version},
        "files": listed,
        "skipped": skipped,
    }
    return (json.dumps(body, ensure_ascii=True, indent=2) + "\n").encode("ascii")
