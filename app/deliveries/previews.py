"""The recipient's previews: Autoenhance's free preview of an image, fitted to a width and,
while the delivery is locked, watermarked across the picture ("pay before download").

The upstream's bytes are bounded as for thumbnails (`app.services.thumbnails`): at most
`MAX_THUMBNAIL_SOURCE_BYTES` read, at most `MAX_SOURCE_PIXELS` decoded, and decoded under the
one decoding policy (`app.imaging.decoding`: scan cap, deadline, the decode pool, abandoned when
the caller leaves). A watermark is drawn here rather than asked of the upstream, whose
`watermark` option is the account's own mark and optional.
"""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from app.imaging.decoding import Budget, DecodeRefused, open_image, refusing_unreadable
from app.services.thumbnails import MAX_SOURCE_PIXELS, NotAThumbnail
from app.upstream.options import DownloadOptions

PreviewSize = Literal["grid", "large"]
WIDTHS: dict[PreviewSize, int] = {"grid": 320, "large": 1024}
PREVIEW_QUALITY = 82
WATERMARK_TEXT = "PREVIEW"


def preview_options(size: PreviewSize) -> DownloadOptions:
    """Free preview quality (no credits), JPEG, at most the size's width."""
    return DownloadOptions(format="jpeg", preview=True, max_width=WIDTHS[size])


def fitted_preview(data: bytes, *, size: PreviewSize, watermark: bool, budget: Budget) -> bytes:
    """`data` as a JPEG at most the size's width, watermarked when asked. CPU-bound: run it
    in the decode pool (`DecodePool.run`), which hands it its `budget`.

    Raises:
        NotAThumbnail: not a decodable image, larger than MAX_SOURCE_PIXELS, more scans than
            the policy allows, or its deadline passed.
        DecodeAbandoned: the caller stopped waiting.
    """
    width = WIDTHS[size]
    try:
        with refusing_unreadable():
            picture = open_image(data, budget=budget, max_pixels=MAX_SOURCE_PIXELS)
            with picture:
                picture.draft("RGB", (width, width * 4))
                picture.load()
                image = picture.convert("RGB")
    except NotAThumbnail:
        raise
    except DecodeRefused as exc:
        raise NotAThumbnail(str(exc), reason=exc.reason) from exc
    budget.check()
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))))
    if watermark:
        image = watermarked(image)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=PREVIEW_QUALITY)
    return out.getvalue()


def watermarked(image: PILImage.Image) -> PILImage.Image:
    """`image` with `WATERMARK_TEXT` in rows across it, half transparent."""
    base = image.convert("RGBA")
    layer = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=max(12, base.width // 8))
    left, top, right, bottom = draw.textbbox((0, 0), WATERMARK_TEXT, font=font)
    step_x = max(1, int(right - left) + base.width // 10)
    step_y = max(1, int(bottom - top) * 3)
    for row, y in enumerate(range(0, base.height, step_y)):
        shift = (row % 2) * step_x // 2
        for x in range(-shift, base.width, step_x):
            draw.text((x, y), WATERMARK_TEXT, font=font, fill=(255, 255, 255, 110))
            draw.text((x + 2, y + 2), WATERMARK_TEXT, font=font, fill=(0, 0, 0, 60))
    return PILImage.alpha_composite(base, layer).convert("RGB")
