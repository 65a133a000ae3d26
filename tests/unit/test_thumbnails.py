"""The thumbnail checks alone: what a misbehaving upstream's preview becomes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.services.thumbnails import (
    THUMBNAIL_MAX_WIDTH,
    BoundedSink,
    NotAThumbnail,
    fit_thumbnail,
)
from app.upstream.errors import UpstreamProtocolError


def encoded(width: int, height: int, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "media_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_a_preview_that_fits_is_passed_through_unchanged(fmt: str, media_type: str) -> None:
    data = encoded(320, 200, fmt)
    thumbnail = fit_thumbnail(data)
    assert thumbnail.content == data
    assert thumbnail.media_type == media_type


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_a_preview_too_wide_is_scaled_down(fmt: str) -> None:
    thumbnail = fit_thumbnail(encoded(1600, 900, fmt))
    picture = Image.open(io.BytesIO(thumbnail.content))
    assert thumbnail.media_type == "image/jpeg"
    assert picture.format == "JPEG"
    assert picture.size == (THUMBNAIL_MAX_WIDTH, 180)


def test_a_narrow_gif_is_re_encoded_as_jpeg() -> None:
    thumbnail = fit_thumbnail(encoded(100, 50, "GIF"))
    assert thumbnail.media_type == "image/jpeg"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (100, 50)


@pytest.mark.parametrize("data", [b"", b"<html>not an image</html>", encoded(50, 50, "PNG")[:40]])
def test_what_is_no_image_is_refused(data: bytes) -> None:
    with pytest.raises(NotAThumbnail):
        fit_thumbnail(data)


def test_a_picture_too_large_to_decode_is_refused_from_its_header() -> None:
    # A 2100 x 2000 PNG of one colour is small on the wire and large in memory.
    data = encoded(2_100, 2_000, "PNG")
    assert len(data) < 100_000
    with pytest.raises(NotAThumbnail, match="2100x2000"):
        fit_thumbnail(data)


def test_pillows_message_is_not_passed_on() -> None:
    with pytest.raises(NotAThumbnail) as refused:
        fit_thumbnail(b"not an image at all")
    assert "0x" not in str(refused.value)
    assert "BytesIO" not in str(refused.value)


def test_the_sink_stops_at_its_bound() -> None:
    sink = BoundedSink(10)
    sink.write(b"12345")
    sink.write(b"67890")
    with pytest.raises(UpstreamProtocolError):
        sink.write(b"x")
    assert sink.getvalue() == b"1234567890"
