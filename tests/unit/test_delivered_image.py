"""`DeliveredImage`: a body is a whole image of the requested format, judged as it streams."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app.sandbox.imaging import padded_image
from app.upstream.sniff import DeliveredImage, matches_format

PIL_NAMES = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}


def encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(out, PIL_NAMES[fmt])
    return out.getvalue()


def judge(fmt: str, body: bytes, chunk: int = 7) -> DeliveredImage:
    check = DeliveredImage(fmt)
    for offset in range(0, len(body), chunk):
        check.feed(body[offset : offset + chunk])
    return check


@pytest.mark.parametrize("fmt", list(PIL_NAMES))
def test_whole_images_pass_and_every_cut_is_caught(fmt: str) -> None:
    body = encoded(fmt)
    assert judge(fmt, body).problem() is None
    for cut in (1, 2, 5, len(body) // 2, len(body) - 3):
        problem = judge(fmt, body[:cut]).problem()
        assert problem is not None, cut
        assert problem.cut_short or "not a" in problem.reason


@settings(max_examples=60, deadline=None)
@given(fmt=st.sampled_from(list(PIL_NAMES)), chunk=st.integers(1, 300), data=st.data())
def test_judgement_does_not_depend_on_how_the_body_is_chunked(
    fmt: str, chunk: int, data: st.DataObject
) -> None:
    body = encoded(fmt)
    cut = data.draw(st.integers(len(body) // 2, len(body)))
    whole = judge(fmt, body[:cut], chunk=len(body)).problem()
    assert judge(fmt, body[:cut], chunk=chunk).problem() == whole
    assert (whole is None) == (cut == len(body))


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_padded_synthetic_images_are_whole(fmt: str) -> None:
    assert judge(fmt, padded_image(fmt, 5_001), chunk=1000).problem() is None


def test_jpeg_padding_after_the_end_marker_is_tolerated_but_not_a_cut() -> None:
    body = encoded("jpeg")
    assert judge("jpeg", body + b"\0" * 5000).problem() is None
    assert judge("jpeg", body + b"\0" * 600_000, chunk=300_000).problem() is None
    assert judge("jpeg", body[:-2] + b"\0" * 10).problem() is not None


@pytest.mark.parametrize("padding", [0, 1, 4095, 4096, 4097, 262_143, 262_144, 600_001])
@pytest.mark.parametrize("cut", [0, 2])
def test_a_pooled_body_seen_whole_is_judged_as_its_chunks_are(padding: int, cut: int) -> None:
    """A pooled body is checked in one call over a view of its buffer: trailing NULs on
    either side of the scan's block sizes end the data where chunk by chunk they do."""
    body = encoded("jpeg")
    body = body[: len(body) - cut] + bytes(padding)
    buffer = bytearray(body) + b"\xff" * 100  # a pooled buffer is longer than its body
    whole = DeliveredImage("jpeg")
    whole.feed(memoryview(buffer)[: len(body)])
    assert whole.problem() == judge("jpeg", body, chunk=4000).problem()
    assert (whole.problem() is None) == (cut == 0)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "empty body"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "but an HTML page"),
        (b'{"message": "not ready"}', "but JSON"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "not a JPEG image but a PNG image"),
        (b"GIF89a" + b"\0" * 100, "but unrecognised bytes"),
    ],
)
def test_what_is_not_the_image_is_named(body: bytes, expected: str) -> None:
    problem = judge("jpeg", body).problem()
    assert problem is not None
    assert expected in problem.reason
    assert not problem.cut_short


def test_jpeg_xl_signatures() -> None:
    assert matches_format(b"\xff\x0a\xfa", "jxl")
    assert matches_format(b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl")
    assert not matches_format(b"\xff\xd8\xff", "jxl")
    head = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00\x00\x00\x10ftypjxl \x00\x00\x00\x00"
    box = head + b"\x00\x00\x00\x0bjxlc\xff\x0a\xfa"
    assert judge("jxl", box).problem() is None
    assert judge("jxl", box[:-1]).problem() is not None
    # Cut exactly after the file-type box: boxes line up, but there is no codestream.
    assert judge("jxl", head).problem() is not None


def top_level_box_ends(body: bytes) -> list[int]:
    ends, offset = [], 0
    while offset + 8 <= len(body):
        offset += int.from_bytes(body[offset : offset + 4], "big")
        ends.append(offset)
    return ends


def test_an_avif_cut_between_two_boxes_is_caught() -> None:
    # A cut on a top-level box boundary leaves a well-formed run of boxes: only the boxes
    # an AVIF cannot do without tell it from a whole image.
    body = encoded("avif")
    boundaries = [end for end in top_level_box_ends(body) if end < len(body)]
    assert boundaries
    for cut in boundaries:
        problem = judge("avif", body[:cut]).problem()
        assert problem is not None, cut
        assert problem.cut_short, cut
    assert judge("avif", body).problem() is None
