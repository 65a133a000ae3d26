"""The renderer: one full-quality JPEG as a preset asks for it, the same bytes every time.

`render(data, preset, budget=..., max_pixels=...)` returns a `Rendered` (the JPEG and its
size) or a `Skipped` (the reason, for the report). It runs on libvips (pyvips), which
`make bench-render` measures at about twice Pillow's speed for `mls` from 12-megapixel
JPEGs, in a fraction of the memory: libvips streams the picture through a pipeline a few
scanlines at a time instead of decoding it whole. What it does, in this order:

1. reads the header under the decoding policy (`open_image`, Pillow: scan cap,
   `max_pixels`) before libvips sees a byte;
2. builds libvips' thumbnail pipeline (`thumbnail_buffer`): the picture decoded
   sequentially, at a reduced scale where the codec allows (shrink-on-load: libjpeg's DCT
   scaling, never below the target size), resized with Lanczos to the preset's long edge or
   box (`contain`: inside it), the EXIF orientation applied, converted to sRGB (an embedded
   ICC profile applied by LittleCMS, perceptual intent; an image without one, or with one
   LittleCMS cannot read, taken as sRGB already);
3. for `pad`, letterboxes onto a white canvas of exactly the box's size (centred);
4. runs the pipeline into memory once (the output's pixels only), watched by `budget`: past
   the deadline, or when the caller leaves, libvips is told to stop (`set_kill`) at its
   next tile;
5. encodes baseline JPEG (4:2:0 chroma, optimised Huffman tables) with libvips' built-in
   sRGB profile (`SRGB_ICC`) embedded and no
   other metadata (no EXIF, XMP, IPTC or comment), at the preset's quality, or, when that is
   over `max_bytes`, at the highest quality that fits, found by binary search: the result
   fits and one quality higher does not. If even quality 1 does not fit, the image is
   `Skipped`.

Original presets (`print`) pass `data` through unchanged after the header checks.

Everything is deterministic for one `RENDERER_VERSION` (libvips and its JPEG codec): the same
input and preset give the same bytes, in any process and with any number of libvips threads
(each output pixel is computed the same way whichever thread computes it); a version change
may change bytes, so the version belongs in anything that names them.

libvips is set up once, on the first render (`_libvips`): its operation cache off (every
render is of a different picture; a cache would only hold pictures in memory), one thread
per pipeline (renders run side by side in the decode pool, one per worker, so the pool's size
is the CPU the service spends, and no cycles go to handing tiles between threads), and
loaders libvips marks untrusted blocked (the picture comes from outside).

CPU-bound: `render_in` runs it in the `app.imaging.pool.DecodePool`, which gives it its
`budget`.
"""

from __future__ import annotations

import functools
import mmap
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvips
from PIL import Image

from app.imaging.decoding import (
    Budget,
    DecodeAbandoned,
    DecodeRefused,
    open_image,
    refusing_unreadable,
)
from app.imaging.pool import DecodePool
from app.imaging.presets import Preset

LOWEST_QUALITY = 1
NO_PIXEL_BOUND = 2**62
PAD_COLOUR = (255, 255, 255)
# Threads of one libvips pipeline: the decode pool runs renders side by side (see above).
VIPS_THREADS = 1
# 4:2:0 chroma at every quality, as cameras and Pillow do (libvips' default keeps full chroma
# from quality 90): half the encoding time, a fifth fewer bytes, half the coefficient buffer
# that optimised Huffman tables hold (19 MB for 2048 x 1536 px at full chroma).
CHROMA_SUBSAMPLING = "on"

_ORIENTATION_TAG = 0x0112
_KEEP_ICC_ONLY = pyvips.enums.ForeignKeep.ICC
# A truncated picture is refused, not completed in grey (libvips' default is to carry on).
_LOADER_OPTIONS = "fail_on=truncated"
_CODEC_BANNER = re.compile(rb"(mozjpeg|libjpeg-turbo) version (\d+(?:\.\d+)+)")


def _jpeg_codec() -> str:
    """The JPEG codec libvips runs with, from the version banner compiled into it: in the
    libvips library itself (pyvips-binary links its codec in), else in the system's libjpeg
    it loaded (not one vendored in another wheel's `*.libs`, such as Pillow's);
    `jpeg-unknown` where the loaded libraries cannot be listed (no /proc)."""
    try:
        mapped = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return "jpeg-unknown"
    paths = {line.split(maxsplit=5)[-1] for line in mapped if "/" in line}
    libvips = sorted(path for path in paths if "/libvips" in path)
    libjpeg = sorted(path for path in paths if "/libjpeg" in path and ".libs/" not in path)
    for path in [*libvips, *libjpeg]:
        try:
            with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as m:
                found = _CODEC_BANNER.search(m)
                if found:
                    return f"{bytes(found[1]).decode()}-{bytes(found[2]).decode()}"
        except (OSError, ValueError):
            continue
    return "jpeg-unknown"


LIBVIPS_VERSION = ".".join(str(pyvips.version(part)) for part in range(3))
RENDERER_VERSION = f"libvips-{LIBVIPS_VERSION}+{_jpeg_codec()}"


@functools.cache
def _libvips() -> Any:
    """pyvips, set up for rendering (see the module docstring); once per process."""
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(VIPS_THREADS)
    pyvips.block_untrusted_set(True)
    return pyvips


def _builtin_srgb() -> bytes:
    profile: bytes = pyvips.Image.profile_load("srgb")
    return profile


# libvips' built-in sRGB profile: compiled into the library, so fixed for one version.
SRGB_ICC = _builtin_srgb()


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
            a readable image (truncated included; an original preset: not a JPEG), or past
            the deadline.
        DecodeAbandoned: the caller stopped waiting.
    """
    # An original is never decoded: the pixel bound, a bound on memory, does not apply.
    bound = NO_PIXEL_BOUND if preset.original else max_pixels
    with refusing_unreadable(), open_image(data, budget=budget, max_pixels=bound) as picture:
        if preset.original:
            if picture.format != "JPEG":
                raise DecodeRefused("it is not a JPEG", reason="unreadable")
            width, height = upright_size(picture)
            return Rendered(content=data, width=width, height=height, quality=None)
        profiled = bool(picture.info.get("icc_profile"))
    image = _pixels(data, preset, budget, profiled=profiled)
    return _encoded(image, preset, budget)


def _orientation(picture: Image.Image) -> int:
    value = picture.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(picture: Image.Image) -> tuple[int, int]:
    """Width and height as the picture is shown (after its EXIF orientation)."""
    width, height = picture.size
    return (height, width) if _orientation(picture) >= 5 else (width, height)


def _pixels(data: bytes, preset: Preset, budget: Budget, *, profiled: bool) -> Any:
    """The preset's picture (steps 2-4 of the module docstring), in memory. `profiled`: the
    header carries an ICC profile; without one the picture is sRGB already, and asking
    libvips for sRGB anyway would cost a colour transform of every source pixel (4x the
    whole render's time for a 12-megapixel photo).

    Raises:
        DecodeRefused: libvips cannot read it, or the deadline passed;
        DecodeAbandoned: the caller left.
    """
    vips = _libvips()
    # A rendered preset has exactly one of the two (`Preset` checks it).
    width, height = preset.box or (preset.long_edge or 0, preset.long_edge or 0)
    try:
        colour = {"output_profile": "srgb", "intent": "perceptual"} if profiled else {}
        image = vips.Image.thumbnail_buffer(
            data,
            width,
            height=height,
            size="down",
            option_string=_LOADER_OPTIONS,
            **colour,
        )
        if image.hasalpha():
            image = image.flatten(background=list(PAD_COLOUR))
        if image.interpretation != "srgb" or image.bands != 3:
            image = image.colourspace("srgb")
        if preset.fit == "pad" and preset.box is not None:
            box_width, box_height = preset.box
            image = image.embed(
                (box_width - image.width) // 2,
                (box_height - image.height) // 2,
                box_width,
                box_height,
                extend="background",
                background=list(PAD_COLOUR),
            )
        return _computed(image, budget)
    except vips.Error as exc:
        budget.check()  # a stop the budget asked for is reported as such
        raise DecodeRefused("it is not a readable image", reason="unreadable") from exc


def _computed(image: Any, budget: Budget) -> Any:
    """`image`'s pipeline run into memory, stopped at the next tile once `budget` is spent.

    The pixels are copied out into a new image of their own: an image libvips computes from
    a watched one (`copy_memory`'s) still reports its progress to it, so it would call back
    into a watcher freed with the pipeline (a crash when the copy is encoded).

    Raises:
        pyvips.Error: libvips failed, or was stopped (the caller checks `budget` for why).
    """

    def watch(progressing: Any, _progress: Any) -> None:
        try:
            budget.check()
        except (DecodeRefused, DecodeAbandoned):
            progressing.set_kill(True)

    image.set_progress(True)
    image.signal_connect("eval", watch)
    pixels = image.write_to_memory()
    return pyvips.Image.new_from_memory(
        pixels, image.width, image.height, image.bands, image.format
    ).copy(interpretation=image.interpretation)


def _encoded(image: Any, preset: Preset, budget: Budget) -> Rendered | Skipped:
    def at(quality: int) -> bytes:
        budget.check()
        content: bytes = image.jpegsave_buffer(
            Q=quality,
            optimize_coding=True,
            subsample_mode=CHROMA_SUBSAMPLING,
            keep=_KEEP_ICC_ONLY,
            profile="srgb",
        )
        return content

    width, height = image.width, image.height

    def rendered(content: bytes, quality: int) -> Rendered:
        return Rendered(content=content, width=width, height=height, quality=quality)

    best = at(preset.quality)
    cap = preset.max_bytes
    if cap is None or len(best) <= cap:
        return rendered(best, preset.quality)
    lowest = at(LOWEST_QUALITY)
    if len(lowest) > cap:
        return Skipped(
            f"{width}x{height} px does not fit in {cap:,} bytes even at JPEG "
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
