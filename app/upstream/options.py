"""Download options: the upstream's own query for an enhanced image, plus a selection.

`DownloadQuery` declares each option once, with its bounds and description; the routes use it
as their query model, so /docs shows exactly these. `DownloadOptions` adds the selection of
images and is what the batch pipeline, jobs and signed links carry.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ImageFormat = Literal["jpeg", "png", "webp", "avif", "jxl"]
Naming = Literal["original", "numbered", "address"]

# Longest `variants=` value worth parsing: a few preset names (each at most 32 characters).
MAX_VARIANTS_CHARS = 200
# The options an archive gained with variants; at their defaults they are left out of every
# fingerprint and identity, so an archive without them keeps the ETag it always had.
ARCHIVE_OPTIONS = ("variants", "naming", "manifest")

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
    naming: Naming = Field(
        default="original",
        description="File names in the archive: original (the photos' own names), numbered "
        "(`01 - Kitchen.jpg`, in shot order) or address (`12-harbour-view-01.jpg`, from the "
        "order's name)",
    )
    manifest: bool = Field(
        default=False,
        description="Add manifest.json at the end: every file's path, image, size, pixels and "
        "SHA-256",
    )


class VariantsNotAllowed(ValueError):
    """Variants asked for with options they cannot go with (previews, another format)."""


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
    variants: tuple[str, ...] | None = Field(
        default=None,
        description="Presets (see GET /presets): one top-level folder per preset, each with "
        "every image rendered for it",
    )

    @field_validator("variants", mode="before")
    @classmethod
    def _split_variants(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            if len(value) > 16 or not all(isinstance(v, str) and len(v) <= 32 for v in value):
                raise ValueError("variants names at most 16 presets of at most 32 characters")
            return tuple(dict.fromkeys(value)) or None
        return value

    @model_validator(mode="after")
    def _variants_allowed(self) -> Self:
        if self.variants:
            problem = variants_problem(self)
            if problem is not None:
                raise VariantsNotAllowed(problem)
        return self

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
        if self.variants:
            params["variants"] = ",".join(self.variants)
        if self.naming != "original":
            params["naming"] = self.naming
        if self.manifest:
            params["manifest"] = "true"
        return params

    def canonical(self) -> dict[str, Any]:
        """The options as JSON for identities: the archive options only when set, so an
        archive without them is named as it was before they existed."""
        defaults = DownloadOptions()
        left_out = {
            name for name in ARCHIVE_OPTIONS if getattr(self, name) == getattr(defaults, name)
        }
        return self.model_dump(mode="json", exclude=left_out)

    def fingerprint(self) -> str:
        """A stable short hash of the options, for cache keys.

        Without a selection (or variants, naming, manifest) the hash is what it was before
        those existed, so archives cached by an earlier version stay valid.
        """
        dumped = self.canonical()
        if self.images is None:
            dumped.pop("images")
        canonical = json.dumps(dumped, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def variants_problem(options: DownloadQuery) -> str | None:
    """Why these options cannot carry variants, or None when they can.

    Variants are rendered from the full-quality JPEG (which costs credits), and set their own
    sizes and quality.
    """
    if options.preview and not options.dev_mode:
        return (
            "Variants are rendered from the full-quality image, which costs credits: add "
            "preview=false (or dev_mode=true to try it without spending any)."
        )
    if options.format != "jpeg":
        return "Variants are JPEG: leave out format (or give format=jpeg)."
    given = [
        name
        for name in ("quality", "max_width", "scale", "watermark")
        if getattr(options, name) is not None
    ]
    if given:
        return f"Variants set their own size and quality: leave out {', '.join(given)}."
    return None


def _flag(value: bool) -> str:
    return "true" if value else "false"
