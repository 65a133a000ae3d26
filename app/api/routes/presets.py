"""`GET /presets`: the sizes this service renders an order's images in (built-in and the
operator's `PRESETS_FILE`), so the page and integrators can offer them."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.imaging.presets import MAX_VARIANTS, Preset
from app.imaging.render import RENDERER_VERSION

router = APIRouter(tags=["orders"])


class PresetOut(BaseModel):
    name: str = Field(description="What to name in `variants=`")
    label: str = Field(description="The folder of the archive its images go to")
    description: str
    format: Literal["jpeg"] = "jpeg"
    original: bool = Field(description="The full-quality image as delivered, unchanged")
    long_edge: int | None = Field(description="Longest side, px")
    box: tuple[int, int] | None = Field(description="Width and height to fit in, px")
    fit: Literal["contain", "pad"] = Field(description="contain: inside; pad: letterboxed")
    max_bytes: int | None = Field(description="Largest file, bytes")
    quality: int | None = Field(description="JPEG quality ceiling (None: not re-encoded)")
    watermark: bool


class PresetsOut(BaseModel):
    presets: list[PresetOut]
    max_variants: int = Field(description="Presets one download may name at most")
    renderer: str = Field(description="The imaging library and codecs that render them")


def _out(preset: Preset) -> PresetOut:
    return PresetOut(
        name=preset.name,
        label=preset.label,
        description=preset.description,
        original=preset.original,
        long_edge=preset.long_edge,
        box=preset.box,
        fit=preset.fit,
        max_bytes=preset.max_bytes,
        quality=None if preset.original else preset.quality,
        watermark=preset.watermark,
    )


@router.get("/presets", summary="The image sizes (presets) this service offers")
async def list_presets(request: Request) -> PresetsOut:
    """Every preset: built-in `mls`, `web` and `print`, and the operator's own."""
    presets: dict[str, Preset] = request.app.state.presets
    return PresetsOut(
        presets=[_out(preset) for preset in presets.values()],
        max_variants=MAX_VARIANTS,
        renderer=RENDERER_VERSION,
    )
