"""The renderer alone: every preset's limits on the decoded output, colour, orientation,
padding, the quality search, skips, bounds and determinism."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import subprocess
import sys
import time

import pytest
import pyvips
from PIL import Image, JpegImagePlugin

from app.imaging.decoding import Budget, DecodeAbandoned, DecodeRefused, DecodingPolicy
from app.imaging.pool import DecodePool
from app.imaging.presets import BUILT_IN, Preset
from app.imaging.render import RENDERER_VERSION, SRGB_ICC, Rendered, Skipped, render, render_in
from testkit.processes import ROOT

MAX_PIXELS = 64_000_000
RED, GREEN = (230, 20, 20), (20, 230, 20)


def photo(width: int = 3000, height: int = 2000, *, quality: int = 92, **save: object) -> bytes:
    """A photo-like JPEG: smooth gradients under some noise (compresses like a real one)."""
    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 24)
    picture = Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, **save)
    return out.getvalue()


def rendered(data: bytes, preset: Preset) -> Rendered:
    result = render(data, preset, budget=Budget(DecodingPolicy()), max_pixels=MAX_PIXELS)
    assert isinstance(result, Rendered), result
    return result


def decoded(result: Rendered) -> Image.Image:
    picture = Image.open(io.BytesIO(result.content))
    picture.load()
    assert picture.format == "JPEG"
    assert picture.size == (result.width, result.height)
    return picture


def markers(data: bytes) -> list[int]:
    """The markers of a JPEG's header, up to its first scan."""
    found, pos = [], 2
    while data[pos + 1] != 0xDA:
        found.append(data[pos + 1])
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return found


def exif_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


SOURCE = photo()
PARAGON = Preset(name="paragon", label="Paragon", box=(1280, 960), max_bytes=125_000)
SMARTMLS = Preset(name="smartmls", label="SmartMLS", box=(1024, 768), fit="pad")


@pytest.mark.parametrize("name", ["mls", "web"])
def test_a_built_in_preset_meets_every_limit(name: str) -> None:
    preset = BUILT_IN[name]
    assert preset.long_edge is not None
    assert preset.max_bytes is not None
    result = rendered(photo(4000, 3000, exif=exif_orientation(1), comment=b"camera"), preset)
    picture = decoded(result)
    assert max(picture.size) == preset.long_edge
    assert picture.size == (preset.long_edge, preset.long_edge * 3 // 4)
    assert len(result.content) <= preset.max_bytes
    assert picture.mode == "RGB"
    assert JpegImagePlugin.get_sampling(picture) == 2  # 4:2:0 chroma, as cameras write it
    assert picture.info["icc_profile"] == SRGB_ICC
    # No metadata but the profile (APP2): no EXIF/XMP (APP1), IPTC (APP13) or comment (COM).
    assert {m for m in markers(result.content) if 0xE0 <= m <= 0xEF or m == 0xFE} == {0xE2}
    assert not picture.getexif()


def test_print_is_the_delivered_jpeg_unchanged() -> None:
    result = render(SOURCE, BUILT_IN["print"], budget=Budget(DecodingPolicy()), max_pixels=10**6)
    assert isinstance(result, Rendered)
    assert result.content == SOURCE
    assert (result.width, result.height, result.quality) == (3000, 2000, None)


def test_print_refuses_what_is_not_a_jpeg() -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 30)).save(out, "PNG")
    with pytest.raises(DecodeRefused, match="not a JPEG"):
        render(out.getvalue(), BUILT_IN["print"], budget=Budget(DecodingPolicy()), max_pixels=10**6)


def test_a_smaller_picture_is_never_enlarged() -> None:
    picture = decoded(rendered(photo(800, 600), BUILT_IN["mls"]))
    assert picture.size == (800, 600)


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (300, 200)), (6, (200, 300)), (8, (200, 300))]
)
def test_the_orientation_is_applied(orientation: int, size: tuple[int, int]) -> None:
    # A red square in the stored picture's top-left corner, green elsewhere.
    stored = Image.new("RGB", (600, 400), GREEN)
    stored.paste(RED, (0, 0, 120, 120))
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif_orientation(orientation))
    preset = Preset(name="small", label="Small", long_edge=300)
    picture = decoded(rendered(out.getvalue(), preset)).convert("RGB")
    assert picture.size == size
    # Upright, the corner moves: 6 (rotate 90 CW to show) puts it top-right, 8 bottom-left.
    corner = {1: (5, 5), 6: (size[0] - 6, 5), 8: (5, size[1] - 6)}[orientation]
    r, g, _ = picture.getpixel(corner)  # type: ignore[misc]
    assert r > 180
    assert g < 80


def test_pad_letterboxes_to_the_box_aspect() -> None:
    portrait = photo(1500, 2000)
    result = rendered(portrait, SMARTMLS)
    picture = decoded(result).convert("RGB")
    assert picture.size == (1024, 768)
    # The picture is 576 px wide in the middle, white bars of 224 px on either side.
    assert picture.getpixel((10, 384)) == (255, 255, 255)
    assert picture.getpixel((1013, 384)) == (255, 255, 255)
    assert picture.getpixel((512, 384)) != (255, 255, 255)


def test_contain_fits_inside_the_box() -> None:
    picture = decoded(rendered(photo(3000, 3000), PARAGON))
    assert picture.size == (960, 960)


def test_the_byte_cap_gets_the_highest_quality_that_fits() -> None:
    capped = rendered(SOURCE, PARAGON)
    assert len(capped.content) <= 125_000
    assert capped.quality is not None
    assert 1 < capped.quality < PARAGON.quality
    # One quality higher would not have fitted.
    higher = PARAGON.model_copy(update={"quality": capped.quality + 1, "max_bytes": None})
    assert len(rendered(SOURCE, higher).content) > 125_000
    same = PARAGON.model_copy(update={"quality": capped.quality, "max_bytes": None})
    assert rendered(SOURCE, same).content == capped.content


def test_a_picture_that_fits_at_the_ceiling_keeps_it() -> None:
    assert rendered(SOURCE, BUILT_IN["mls"]).quality == BUILT_IN["mls"].quality


def test_a_picture_that_cannot_fit_is_skipped_with_the_reason() -> None:
    noisy = Image.effect_noise((3000, 2000), 120).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "JPEG", quality=95)
    preset = Preset(name="tiny", label="Tiny", long_edge=3000, max_bytes=10_000)
    result = render(out.getvalue(), preset, budget=Budget(DecodingPolicy()), max_pixels=MAX_PIXELS)
    assert isinstance(result, Skipped)
    assert "does not fit in 10,000 bytes even at JPEG quality 1" in result.reason


def test_an_embedded_profile_is_converted_to_srgb() -> None:
    # sRGB's own profile with its red and green colorants exchanged: a pixel stored as pure
    # red in that space is sRGB's green.
    table = bytearray(SRGB_ICC)
    count = struct.unpack(">I", table[128:132])[0]
    entries = {bytes(table[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    table[red + 4 : red + 12], table[green + 4 : green + 12] = (
        table[green + 4 : green + 12],
        table[red + 4 : red + 12],
    )
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (255, 0, 0)).save(
        out, "JPEG", quality=95, icc_profile=bytes(table)
    )
    picture = decoded(rendered(out.getvalue(), Preset(name="s", label="S", long_edge=200)))
    r, g, _ = picture.convert("RGB").getpixel((100, 75))  # type: ignore[misc]
    assert g > 200
    assert r < 60
    assert picture.info["icc_profile"] == SRGB_ICC


def test_an_unreadable_profile_is_taken_as_srgb() -> None:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), RED).save(out, "JPEG", quality=95, icc_profile=b"garbage" * 20)
    picture = decoded(rendered(out.getvalue(), Preset(name="s", label="S", long_edge=200)))
    r, g, _ = picture.convert("RGB").getpixel((100, 75))  # type: ignore[misc]
    assert r > 200
    assert g < 60
    assert picture.info["icc_profile"] == SRGB_ICC


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [("CMYK", (0, 255, 255, 0), RED), ("L", 128, (128, 128, 128)), ("RGB", GREEN, GREEN)],
)
def test_every_colour_model_becomes_srgb(
    mode: str, colour: object, expected: tuple[int, int, int]
) -> None:
    out = io.BytesIO()
    Image.new(mode, (400, 300), colour).save(out, "JPEG", quality=95)  # type: ignore[arg-type]
    result = rendered(out.getvalue(), Preset(name="s", label="S", long_edge=200))
    picture = decoded(result)
    assert picture.mode == "RGB"
    assert picture.info["icc_profile"] == SRGB_ICC
    pixel = picture.getpixel((100, 75))
    assert isinstance(pixel, tuple)
    assert all(abs(got - want) < 40 for got, want in zip(pixel, expected, strict=True)), pixel


@pytest.mark.parametrize("preset", [BUILT_IN["mls"], PARAGON, SMARTMLS], ids=lambda p: p.name)
def test_rendering_is_deterministic(preset: Preset) -> None:
    assert rendered(SOURCE, preset).content == rendered(SOURCE, preset).content


def test_a_picture_past_the_pixel_bound_is_refused() -> None:
    with pytest.raises(DecodeRefused) as refused:
        render(SOURCE, BUILT_IN["mls"], budget=Budget(DecodingPolicy()), max_pixels=5_000_000)
    assert refused.value.reason == "pixels"


def test_a_truncated_picture_is_refused() -> None:
    with pytest.raises(DecodeRefused) as refused:
        rendered(SOURCE[: len(SOURCE) // 2], BUILT_IN["mls"])
    assert refused.value.reason == "unreadable"


def test_a_scan_bomb_is_refused() -> None:
    progressive = photo(600, 400, progressive=True)
    with pytest.raises(DecodeRefused) as refused:
        render(
            progressive,
            BUILT_IN["web"],
            budget=Budget(DecodingPolicy(max_scans=5)),
            max_pixels=MAX_PIXELS,
        )
    assert refused.value.reason == "scans"


def test_the_renderer_names_its_library_and_jpeg_codec() -> None:
    libvips = ".".join(str(pyvips.version(part)) for part in range(3))
    library, codec = RENDERER_VERSION.split("+")
    assert library == f"libvips-{libvips}"
    assert re.fullmatch(r"(mozjpeg|libjpeg-turbo)-\d+(\.\d+)+", codec), codec


class StoppedAt(Budget):
    """A budget that is abandoned, or runs out of time, at its `at`-th check, and counts the
    checks made after that."""

    def __init__(self, at: int, *, how: str = "abandon") -> None:
        super().__init__(DecodingPolicy())
        self.at, self.how, self.checks = at, how, 0

    def check(self) -> None:
        self.checks += 1
        if self.checks == self.at:
            if self.how == "abandon":
                self.abandon()
            else:
                self._deadline = time.monotonic() - 1
        super().check()


@pytest.mark.parametrize(
    ("how", "raised"), [("abandon", DecodeAbandoned), ("deadline", DecodeRefused)]
)
def test_a_running_render_stops_when_its_budget_is_spent(how: str, raised: type[Exception]) -> None:
    # The budget is checked at every tile libvips computes, and once before the encode: a
    # render stopped 30 tiles before its end checks it once or twice more, not 30 times.
    whole = StoppedAt(at=0)
    render(SOURCE, BUILT_IN["mls"], budget=whole, max_pixels=MAX_PIXELS)
    assert whole.checks > 60
    stopped = StoppedAt(at=whole.checks - 30, how=how)
    with pytest.raises(raised):
        render(SOURCE, BUILT_IN["mls"], budget=stopped, max_pixels=MAX_PIXELS)
    assert stopped.checks - stopped.at <= 2


RENDER_ELSEWHERE = """
import hashlib, sys
import pyvips
from app.imaging.decoding import Budget, DecodingPolicy
from app.imaging.presets import BUILT_IN
from app.imaging.render import _libvips, render
_libvips()
pyvips.concurrency_set(int(sys.argv[1]))
data = sys.stdin.buffer.read()
result = render(data, BUILT_IN[sys.argv[2]], budget=Budget(DecodingPolicy()), max_pixels=10**8)
print(hashlib.sha256(result.content).hexdigest())
"""


CMYK_IN_A_FRESH_PROCESS = """
import io
from PIL import Image
from app.imaging.decoding import Budget, DecodingPolicy
from app.imaging.presets import Preset
from app.imaging.render import render
out = io.BytesIO()
Image.new("CMYK", (400, 300), (0, 255, 255, 0)).save(out, "JPEG")
preset = Preset(name="s", label="S", long_edge=200)
result = render(out.getvalue(), preset, budget=Budget(DecodingPolicy()), max_pixels=10**8)
print(len(result.content))
"""


def test_the_encoded_pixels_outlive_the_watched_pipeline() -> None:
    # A CMYK picture's pipeline, once freed, was called back into while its copy was encoded
    # (a crash); in a fresh process the freed memory is reused at once, so it shows every time.
    done = subprocess.run(
        [sys.executable, "-c", CMYK_IN_A_FRESH_PROCESS], capture_output=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert int(done.stdout) > 0


@pytest.mark.parametrize("name", ["mls", "web"])
def test_the_same_bytes_in_another_process_with_more_threads(name: str) -> None:
    here = hashlib.sha256(rendered(SOURCE, BUILT_IN[name]).content).hexdigest()
    there = subprocess.run(
        [sys.executable, "-c", RENDER_ELSEWHERE, "4", name],
        input=SOURCE,
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    assert there.stdout.decode().strip() == here


async def test_rendering_in_the_pool_runs_under_its_policy() -> None:
    pool = DecodePool(workers=1, queue=0, policy=DecodingPolicy(max_scans=5))
    try:
        result = await render_in(pool, SOURCE, BUILT_IN["web"], max_pixels=MAX_PIXELS)
        assert isinstance(result, Rendered)
        assert result.content == rendered(SOURCE, BUILT_IN["web"]).content
        with pytest.raises(DecodeRefused) as refused:
            await render_in(
                pool, photo(600, 400, progressive=True), BUILT_IN["web"], max_pixels=MAX_PIXELS
            )
        assert refused.value.reason == "scans"
    finally:
        pool.close()
