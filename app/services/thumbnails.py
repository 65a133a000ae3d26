"""Thumbnails: a small preview of an enhanced image, checked and bounded.

The picture comes from Autoenhance's free preview, `GET /v3/images/{id}/enhanced` with
`preview=true&max_width=320&format=jpeg` (the current API; the legacy `/preview` route is not
used because newer API versions fold it into `/enhanced`). Nothing is bought: previews cost no
credits.

What comes back is not trusted: at most `MAX_THUMBNAIL_SOURCE_BYTES` are read (the download
stops there), the bytes must be an image of at most `MAX_SOURCE_PIXELS` (read from its header,
before decoding) and, for a JPEG, within the decoding policy's scan cap. One wider than
`THUMBNAIL_MAX_WIDTH` (an upstream that ignored `max_width`) is scaled down here, in the
application's `DecodePool` under its deadline (`app.imaging`), so a misbehaving upstream costs
bounded memory and CPU. A JPEG, PNG or WebP that already fits is passed through unchanged.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image as PILImage

from app.imaging.decoding import (
    Budget,
    DecodeRefused,
    DecodingPolicy,
    open_image,
    refusing_unreadable,
)
from app.imaging.pool import DecodePool
from app.upstream.errors import UpstreamProtocolError
from app.upstream.models import Image, Order
from app.upstream.options import DownloadOptions

THUMBNAIL_MAX_WIDTH = 320
# A 320 px preview is tens of KB; anything far beyond that is not a thumbnail.
MAX_THUMBNAIL_SOURCE_BYTES = 4 * 1024 * 1024
# Largest picture decoded when it must be scaled down: 12 MB of RGB at most per decode. A
# preview asked for 320 px wide has no business being larger.
MAX_SOURCE_PIXELS = 4_000_000
THUMBNAIL_QUALITY = 80
THUMBNAIL_OPTIONS = DownloadOptions(format="jpeg", preview=True, max_width=THUMBNAIL_MAX_WIDTH)
_PASS_THROUGH = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class NotAThumbnail(DecodeRefused):
    """The upstream's preview is not an image this service can serve."""


class BoundedSink(io.BytesIO):
    """An in-memory sink that refuses to grow past `limit` bytes.

    Raises (from `write`):
        UpstreamProtocolError: the upstream sent more than `limit` bytes; the download is
            abandoned there (the error is not retried).
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.limit:
            raise UpstreamProtocolError(f"the preview is larger than {self.limit} bytes")
        return super().write(data)


@dataclass(frozen=True, slots=True)
class Thumbnail:
    content: bytes
    media_type: str


async def make_thumbnail(data: bytes, *, decoder: DecodePool) -> Thumbnail:
    """`fit_thumbnail(data)` in the decode pool, under its policy.

    Raises:
        NotAThumbnail: as `fit_thumbnail`, also when the decode's deadline passed.
        DecoderBusy: the decode pool is full.
    """
    return await decoder.run(lambda budget: fit_thumbnail(data, budget=budget))


def fit_thumbnail(data: bytes, *, budget: Budget | None = None) -> Thumbnail:
    """`data` as a thumbnail at most THUMBNAIL_MAX_WIDTH wide. CPU-bound: run it through
    `make_thumbnail`; without a `budget`, the default policy and no deadline.

    Raises:
        NotAThumbnail: not a decodable image, larger than MAX_SOURCE_PIXELS, more scans than
            the policy allows, or its deadline passed (the refusal's `reason` says which).
        DecodeAbandoned: the caller stopped waiting.
    """
    budget = budget or Budget(DecodingPolicy())
    try:
        with refusing_unreadable():
            picture = open_image(data, budget=budget, max_pixels=MAX_SOURCE_PIXELS)
            with picture:
                kind = _PASS_THROUGH.get(picture.format or "")
                if kind is not None and picture.width <= THUMBNAIL_MAX_WIDTH:
                    picture.verify()
                    return Thumbnail(content=data, media_type=kind)
                picture.draft("RGB", (THUMBNAIL_MAX_WIDTH, THUMBNAIL_MAX_WIDTH * 4))
                picture.load()
                small = _scaled(picture.convert("RGB"))
    except NotAThumbnail:
        raise
    except DecodeRefused as exc:
        raise NotAThumbnail(str(exc), reason=exc.reason) from exc
    budget.check()
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=THUMBNAIL_QUALITY)
    return Thumbnail(content=out.getvalue(), media_type="image/jpeg")


def _scaled(picture: PILImage.Image) -> PILImage.Image:
    if picture.width <= THUMBNAIL_MAX_WIDTH:
        return picture
    ratio = THUMBNAIL_MAX_WIDTH / picture.width
    return picture.resize((THUMBNAIL_MAX_WIDTH, max(1, round(picture.height * ratio))))


def thumbnail_etag(order: Order, image: Image) -> str:
    """A validator that changes whenever the image or its order changes upstream.

    Computed from metadata only, so a revalidation (If-None-Match) is answered 304 without
    fetching the picture. The image's `revision` (a digest of every field of its record that
    may change its bytes: settings, `ai_version`, `scene` ...) is in it because re-enhancing an
    image ends in the same status as before, and the order's `last_updated_at` is not trusted
    to move.
    """
    stamp = order.last_updated_at.isoformat() if order.last_updated_at else ""
    raw = "|".join(
        [
            order.order_id,
            image.image_id,
            image.revision,
            str(image.status),
            str(image.date_added),
            stamp,
            THUMBNAIL_OPTIONS.fingerprint(),
        ]
    )
    return '"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"'
