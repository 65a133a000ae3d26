"""Download options: the upstream's own query for an enhanced image, plus a selection.

`DownloadQuery` declares each option once, with its bounds and description; the routes use it
as their query model, so /docs shows exactly these. `DownloadOptions` adds the selection of
images and is what the batch pipeline, jobs and signed links carry.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ImageFormat = Literal["jpeg", "png", "webp", "avif", "jxl"]

# A selection names at most this many images: enough for any real order's pick, and a
# `?images=` query of that many UUIDs (~19 KB) still fits in every server's request line.
MAX_SELECTED_IMAGES = 500
# Autoenhance image ids are UUIDs; client-chosen ids are accepted if they stay in this shape.
IMAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Longest `?images=` value worth parsing: MAX_SELECTED_IMAGES ids of 100 chars and commas.
MAX_SELECTION_CHARS = MAX_SELECTED_IMAGES * 101


class InvalidSelection(ValueError):
    """An image selection that is empty, too long, or holds something that is no image id."""


def parse_selection(text: str) -> tuple[str, ...]:
    """The image ids of a comma-separated `?images=` value, in the order given, deduplicated.

    Raises:
        InvalidSelection: no id at all, more than MAX_SELECTED_IMAGES, or a malformed id.
    """
    if len(text) > MAX_SELECTION_CHARS:
        raise InvalidSelection(f"At most {MAX_SELECTED_IMAGES} images can be selected.")
    return checked_selection([part.strip() for part in text.split(",") if part.strip()])


def checked_selection(ids: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`ids` checked (see `parse_selection`) and deduplicated, first occurrence kept.

    Raises:
        InvalidSelection: as `parse_selection`.
    """
    if not ids:
        raise InvalidSelection("The selection is empty: name at least one image id.")
    unique = tuple(dict.fromkeys(ids))
    if len(unique) > MAX_SELECTED_IMAGES:
        raise InvalidSelection(f"At most {MAX_SELECTED_IMAGES} images can be selected.")
    for image_id in unique:
        if not isinstance(image_id, str) or not IMAGE_ID_PATTERN.fullmatch(image_id):
            shown = repr(image_id)[:60]
            raise InvalidSelection(f"{shown} is not an image id.")
    return unique


class DownloadQuery(BaseModel):
    """The options as query parameters; parameters that are not options are ignored (the
    routes declare their own beside it, and unknown ones never were an error)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: ImageFormat = Field(
        default="jpeg", description="Image format requested from Autoenhance"
    )
    quality: int | None = Field(default=None, ge=1, le=90, description="Encoding quality")
    preview: bool = Field(
        default=True,
        description="Free preview quality (default). false = full quality; costs credits",
    )
    watermark: bool | None = Field(default=None, description="Apply the watermark")
    max_width: int | None = Field(default=None, ge=1, le=20_000, description="Max width, px")
    scale: float | None = Field(default=None, gt=0, le=1, description="Scale factor 0-1")
    dev_mode: bool = Field(
        default=False, description="Send x-dev-mode: true (try the flow without credits)"
    )


class DownloadOptions(DownloadQuery):
    """How each enhanced image is requested from the upstream.

    `preview` defaults to true because full-quality downloads cost credits; `dev_mode` sends
    `x-dev-mode: true` so the purchase flow can be tried without spending any. `images`, when
    set, restricts the archive to those image ids (kept in the order's own order by planning);
    it is part of the fingerprint, so a selection has its own cache entry and ETag.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: tuple[str, ...] | None = Field(
        default=None, description="Only these image ids (default: every image of the order)"
    )

    @field_validator("images", mode="before")
    @classmethod
    def _check_images(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return parse_selection(value)
        if isinstance(value, list | tuple):
            if len(value) > MAX_SELECTED_IMAGES:
                raise InvalidSelection(f"At most {MAX_SELECTED_IMAGES} images can be selected.")
            return checked_selection([item if isinstance(item, str) else "" for item in value])
        return value

    def upstream_params(self) -> dict[str, str]:
        """Query parameters for `GET /images/{id}/enhanced` (booleans as the API spells them)."""
        params: dict[str, str] = {"format": self.format, "preview": _flag(self.preview)}
        if self.quality is not None:
            params["quality"] = str(self.quality)
        if self.watermark is not None:
            params["watermark"] = _flag(self.watermark)
        if self.max_width is not None:
            params["max_width"] = str(self.max_width)
        if self.scale is not None:
            params["scale"] = repr(self.scale)
        return params

    def query(self) -> dict[str, str]:
        """The options as this service's own query string (for links and job URLs)."""
        params = self.upstream_params()
        if self.dev_mode:
            params["dev_mode"] = "true"
        if self.images is not None:
            params["images"] = ",".join(self.images)
        return params

    def fingerprint(self) -> str:
        """A stable short hash of the options, for cache keys.

        Without a selection the hash is what it was before selections existed, so archives
        cached by an earlier version stay valid.
        """
        dumped = self.model_dump(mode="json", exclude={"images"} if self.images is None else None)
        canonical = json.dumps(dumped, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _flag(value: bool) -> str:
    return "true" if value else "false"
