"""Pillow work: the stand-in "enhancement", output encoding, and synthetic payloads.

All functions here are CPU-bound and synchronous; callers run them in a worker thread.
"""

from __future__ import annotations

import functools
import io
import threading
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

OutputFormat = Literal["jpeg", "png", "webp"]

MIME_TYPES: dict[OutputFormat, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
}
# Refuse to decode anything bigger; Pillow's own bomb check only warns below 2x its limit.
MAX_PIXELS = 60_000_000
WATERMARK_TEXT = "AUTOENHANCE SANDBOX"


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can decode within MAX_PIXELS."""


@dataclass(frozen=True, kw_only=True)
class RenderSpec:
    """How one download should look; hashable so it can key the render cache."""

    format: OutputFormat = "jpeg"
    quality: int = 85
    max_side: int | None = None
    max_width: int | None = None
    scale: float | None = None
    watermark: bool = False
    enhance: bool = True


def _open(data: bytes, *, fit: tuple[int, int] | None = None) -> Image.Image:
    """Decode `data`; with `fit`, JPEGs decode at the smallest scale still covering it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise UnreadableImage(f"image of {image.width}x{image.height} px is too large")
            if fit is not None and image.format == "JPEG":
                # DCT scaling makes previews of large photos several times cheaper.
                side = max(fit)
                image.draft("RGB", (side, side))
            image.load()
        except UnreadableImage:
            raise
        except (
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            raise UnreadableImage(f"cannot decode image: {exc}") from exc
    return ImageOps.exif_transpose(image)


# EXIF orientations that swap width and height (rotations by 90 or 270 degrees).
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def _upright_size(data: bytes) -> tuple[int, int]:
    """Width and height after EXIF orientation, read from the header only."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            orientation = header.getexif().get(0x0112)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(f"cannot decode image: {exc}") from exc
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def probe(data: bytes) -> tuple[int, int]:
    """Return `(width, height)` of an uploaded image.

    Raises:
        UnreadableImage: the bytes are not a decodable image or exceed MAX_PIXELS.
    """
    image = _open(data)
    return image.width, image.height


def enhance(image: Image.Image) -> Image.Image:
    """A cheap, visible "enhancement": stretch levels, then add colour and crispness."""
    image = ImageOps.autocontrast(image.convert("RGB"), cutoff=1)
    image = ImageEnhance.Color(image).enhance(1.15)
    image = ImageEnhance.Contrast(image).enhance(1.05)
    return ImageEnhance.Sharpness(image).enhance(1.4)


def target_size(width: int, height: int, spec: RenderSpec) -> tuple[int, int]:
    """Output dimensions: each limit in `spec` can only shrink, aspect ratio is kept."""
    factor = 1.0
    if spec.scale is not None:
        factor = min(factor, spec.scale)
    if spec.max_side is not None:
        factor = min(factor, spec.max_side / max(width, height))
    if spec.max_width is not None:
        factor = min(factor, spec.max_width / width)
    return max(1, round(width * factor)), max(1, round(height * factor))


def _watermark(image: Image.Image) -> Image.Image:
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=max(10, image.width // 18))
    box = draw.textbbox((0, 0), WATERMARK_TEXT, font=font)
    text_w, text_h = max(1, round(box[2] - box[0])), max(1, round(box[3] - box[1]))
    step_y = text_h * 4
    for row, y in enumerate(range(0, image.height, step_y)):
        offset = (row % 2) * text_w // 2
        for x in range(-offset, image.width, text_w + text_w // 3):
            draw.text((x, y), WATERMARK_TEXT, font=font, fill=(255, 255, 255, 90))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def render(source: bytes, spec: RenderSpec) -> bytes:
    """Decode `source`, apply the enhancement and `spec`, and encode the result.

    Raises:
        UnreadableImage: `source` cannot be decoded.
    """
    size = target_size(*_upright_size(source), spec)
    image = _open(source, fit=size).convert("RGB")
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    if spec.enhance:
        image = enhance(image)
    if spec.watermark:
        image = _watermark(image)
    out = io.BytesIO()
    if spec.format == "jpeg":
        image.save(out, "JPEG", quality=spec.quality, optimize=True)
    elif spec.format == "webp":
        image.save(out, "WEBP", quality=spec.quality, method=2)
    else:
        # PNG is lossless, so quality has nothing to trade; favour speed over size.
        image.save(out, "PNG", compress_level=3)
    return out.getvalue()


@functools.lru_cache(maxsize=3)
def _tiny(fmt: OutputFormat = "jpeg") -> bytes:
    image = Image.new("RGB", (64, 48))
    draw = ImageDraw.Draw(image)
    for y in range(48):
        draw.line([(0, y), (63, y)], fill=(90 + y * 2, 140, 200 - y * 2))
    out = io.BytesIO()
    if fmt == "jpeg":
        image.save(out, "JPEG", quality=80)
    elif fmt == "webp":
        image.save(out, "WEBP", lossless=True)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def min_padded_size() -> int:
    """Smallest payload `padded_image` can produce in every format."""
    # JPEG pads after its end; PNG needs a 12-byte chunk, WebP an 8-byte one (and one odd byte).
    return max(len(_tiny("jpeg")), len(_tiny("png")) + 12, len(_tiny("webp")) + 9)


@functools.lru_cache(maxsize=8)
def padded_jpeg(size: int) -> bytes:
    """A valid JPEG of exactly `size` bytes: a tiny image padded after its EOI marker.

    Decoders stop at EOI, so the padding is ignored; the result is cached per size so a
    benchmark order of many equal-sized images shares one buffer.

    Raises:
        ValueError: `size` is smaller than `min_padded_size()`.
    """
    base = _tiny("jpeg")
    if size < min_padded_size():
        raise ValueError(f"a synthetic image needs at least {min_padded_size()} bytes")
    return base + b"\0" * (size - len(base))


@functools.lru_cache(maxsize=8)
def padded_image(fmt: OutputFormat, size: int) -> bytes:
    """A valid image of `fmt` and exactly `size` bytes, whole by its format's own framing.

    JPEG is `padded_jpeg`. PNG carries the padding in a private ancillary chunk before its
    IEND (decoders skip unknown ancillary chunks); WebP in an unknown RIFF chunk counted in
    its RIFF size (plus one byte after it when the padding is odd, since RIFF chunks are
    even-sized).

    Raises:
        ValueError: `size` is smaller than `min_padded_size()`.
    """
    if fmt == "jpeg":
        return padded_jpeg(size)
    if size < min_padded_size():
        raise ValueError(f"a synthetic image needs at least {min_padded_size()} bytes")
    base = _tiny(fmt)
    room = size - len(base)
    if fmt == "png":
        data = b"\0" * (room - 12)
        chunk = b"sbPd" + data
        body = len(data).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
        return base[:-12] + body + base[-12:]
    data = b"\0" * ((room - 8) & ~1)
    riff = base[12:] + b"SBPD" + len(data).to_bytes(4, "little") + data
    webp = b"RIFF" + (len(riff) + 4).to_bytes(4, "little") + b"WEBP" + riff
    return webp + b"\0" * (size - len(webp))


class RenderCache:
    """Bounded LRU of rendered downloads, by total bytes; safe to use from worker threads."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> bytes | None:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def put(self, key: tuple[object, ...], data: bytes) -> None:
        if len(data) > self._max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = data
            self._bytes += len(data)
            while self._bytes > self._max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
