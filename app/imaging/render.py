"""The renderer: one full-quality JPEG as a preset asks for it, the same bytes every time.

`render(data, preset, budget=..., max_pixels=...)` returns a `Rendered` (the JPEG and its
size) or a `Skipped` (the reason, for the report). What it does, in this order:

1. reads the header under the decoding policy (`open_image`: scan cap, `max_pixels`);
2. decodes at a reduced scale where the codec allows (Pillow's `draft`: libjpeg's DCT scaling
   by 1/2, 1/4 or 1/8, never below the target size), so memory follows the output size;
3. resizes with Lanczos to the preset's long edge or box (`contain`: inside it);
4. converts to sRGB: an embedded ICC profile is applied (LittleCMS, perceptual intent); an
   image without one, or with one LittleCMS cannot read, is taken as sRGB already;
5. applies the EXIF orientation, then, for `pad`, letterboxes onto a white canvas of exactly
   the box's size (centred);
6. encodes baseline JPEG with the sRGB profile embedded and no other metadata (no EXIF, XMP,
   comment or thumbnail), at the preset's quality, or, when that is over `max_bytes`, at the
   highest quality that fits, found by binary search: the result fits and one quality
   higher does not. If even quality 1 does not fit, the image is `Skipped`.

Original presets (`print`) pass `data` through unchanged after the header checks.

Everything is deterministic for one `RENDERER_VERSION` (Pillow, its libjpeg-turbo and
LittleCMS): the same input and preset give the same bytes, which archives rely on for their
ETag; a version change may change bytes, so the version belongs in anything that names them.

CPU-bound: `render_in` runs it in the `app.imaging.pool.DecodePool`, which gives it its
`budget`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import PIL
from PIL import Image, ImageCms, features

from app.imaging.decoding import Budget, DecodeRefused, open_image, refusing_unreadable
from app.imaging.pool import DecodePool
from app.imaging.presets import Preset

RENDERER_VERSION = (
    f"pillow-{PIL.__version__}"
    f"+libjpeg-turbo-{features.version('libjpeg_turbo')}"
    f"+lcms-{features.version('littlecms2')}"
)
LOWEST_QUALITY = 1
NO_PIXEL_BOUND = 2**62
PAD_COLOUR = (255, 255, 255)

# EXIF orientation -> the transposition that shows the picture upright (as ImageOps does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112


def _fixed_srgb_profile() -> bytes:
    """LittleCMS's built-in sRGB profile with a fixed creation date (bytes 24-35 of the ICC
    header): LittleCMS stamps the current time, which would make every render differ."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    year_2000 = bytes.fromhex("07d0 0001 0001 0000 0000 0000")  # 2000-01-01 00:00:00
    return profile[:24] + year_2000 + profile[36:]


SRGB_ICC = _fixed_srgb_profile()
_SRGB = ImageCms.ImageCmsProfile(io.BytesIO(SRGB_ICC))


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    content: bytes
    width: int
    height: int
    quality: int | None  # None: passed through unchanged


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


async def render_in(
    pool: DecodePool, data: bytes, preset: Preset, *, max_pixels: int
) -> Rendered | Skipped:
    """`render` in a thread of `pool`, under its policy (scan cap, deadline, bounded queue).

    Raises:
        DecoderBusy: the pool is full; DecodeRefused: as `render`;
        asyncio.CancelledError: the caller was cancelled (the render is abandoned).
    """
    return await pool.run(lambda budget: render(data, preset, budget=budget, max_pixels=max_pixels))


def render(data: bytes, preset: Preset, *, budget: Budget, max_pixels: int) -> Rendered | Skipped:
    """`data` (a full-quality image) rendered for `preset`; see the module docstring.

    Raises:
        DecodeRefused: past the scan cap or `max_pixels` (not for an original preset), not
            a readable image (an original
            preset: not a JPEG), or past the deadline.
        DecodeAbandoned: the caller stopped waiting.
    """
    # An original is never decoded: the pixel bound, a bound on memory, does not apply.
    bound = NO_PIXEL_BOUND if preset.original else max_pixels
    with refusing_unreadable():
        picture = open_image(data, budget=budget, max_pixels=bound)
        with picture:
            if preset.original:
                if picture.format != "JPEG":
                    raise DecodeRefused("it is not a JPEG", reason="unreadable")
                width, height = upright_size(picture)
                return Rendered(content=data, width=width, height=height, quality=None)
            orientation = _orientation(picture)
            upright = upright_size(picture)
            target = _target(upright, preset)
            stored = (target[1], target[0]) if orientation >= 5 else target
            picture.draft("RGB", stored)
            picture.load()
            icc = picture.info.get("icc_profile")
            image = _resized(picture, stored)
    budget.check()
    image = _in_srgb(image, icc if isinstance(icc, bytes) else None)
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    if preset.fit == "pad" and preset.box is not None:
        image = _padded(image, preset.box)
    image.info = {}  # nothing of the source's metadata is written
    return _encoded(image, preset, budget)


def _orientation(picture: Image.Image) -> int:
    value = picture.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(picture: Image.Image) -> tuple[int, int]:
    """Width and height as the picture is shown (after its EXIF orientation)."""
    width, height = picture.size
    return (height, width) if _orientation(picture) >= 5 else (width, height)


def _target(size: tuple[int, int], preset: Preset) -> tuple[int, int]:
    """The upright size `size` is scaled to (never up)."""
    width, height = size
    if preset.long_edge is not None:
        scale = min(1.0, preset.long_edge / max(width, height))
    elif preset.box is not None:
        scale = min(1.0, preset.box[0] / width, preset.box[1] / height)
    else:
        scale = 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    if picture.mode not in ("RGB", "L", "CMYK"):
        picture = picture.convert("RGB")
    if picture.size == size:
        return picture.copy()
    return picture.resize(size, Image.Resampling.LANCZOS)


def _in_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                image,
                source,
                _SRGB,
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
                outputMode="RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # an unreadable profile: the picture is taken as sRGB
        if converted is not None:
            return converted
    return image if image.mode == "RGB" else image.convert("RGB")


def _padded(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    canvas = Image.new("RGB", box, PAD_COLOUR)
    canvas.paste(image, ((box[0] - image.width) // 2, (box[1] - image.height) // 2))
    return canvas


def _encoded(image: Image.Image, preset: Preset, budget: Budget) -> Rendered | Skipped:
    def at(quality: int) -> bytes:
        budget.check()
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, optimize=True, icc_profile=SRGB_ICC)
        return out.getvalue()

    def rendered(content: bytes, quality: int) -> Rendered:
        return Rendered(content=content, width=image.width, height=image.height, quality=quality)

    best = at(preset.quality)
    cap = preset.max_bytes
    if cap is None or len(best) <= cap:
        return rendered(best, preset.quality)
    lowest = at(LOWEST_QUALITY)
    if len(lowest) > cap:
        return Skipped(
            f"{image.width}x{image.height} px does not fit in {cap:,} bytes even at JPEG "
            f"quality {LOWEST_QUALITY} ({len(lowest):,} bytes)"
        )
    # Invariant: `fits` fits at quality `low`, quality `high` does not.
    low, high, fits = LOWEST_QUALITY, preset.quality, lowest
    while high - low > 1:
        middle = (low + high) // 2
        content = at(middle)
        if len(content) <= cap:
            low, fits = middle, content
        else:
            high = middle
    return rendered(fits, low)
