"""Image formats by their first bytes, whatever the file name says."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.upstream.sniff import SNIFF_BYTES, sniff_image


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format=fmt)
    return buffer.getvalue()[:SNIFF_BYTES]


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 16


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (encoded("JPEG"), "jpeg"),
        (encoded("PNG"), "png"),
        (encoded("WEBP"), "webp"),
        (encoded("TIFF"), "tiff"),
        (b"MM\x00*" + b"\x00" * 60, "tiff"),
        (b"II+\x00" + b"\x00" * 60, "tiff"),  # BigTIFF
        (ftyp(b"heic", b"mif1", b"heic"), "heic"),
        (ftyp(b"mif1", b"mif1", b"heic"), "heic"),
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "avif"),
        (ftyp(b"mif1", b"mif1", b"avif"), "avif"),
        (ftyp(b"crx ", b"crx ", b"isom"), "cr3"),
        (b"FUJIFILMCCD-RAW 0201FF383501" + b"\x00" * 40, "raf"),
    ],
)
def test_recognises_every_accepted_format(head: bytes, name: str) -> None:
    kind = sniff_image(head, filename="upload.bin")
    assert kind is not None
    assert kind.name == name


@pytest.mark.parametrize(
    ("filename", "name", "content_type"),
    [
        ("IMG_1.DNG", "dng", "image/x-adobe-dng"),
        ("a.cr2", "cr2", "image/x-canon-cr2"),
        ("a.nef", "nef", "image/x-nikon-nef"),
        ("a.arw", "arw", "image/x-sony-arw"),
        ("a.tif", "tiff", "image/tiff"),
        ("no-extension", "tiff", "image/tiff"),
    ],
)
def test_tiff_based_raw_is_named_by_extension(filename: str, name: str, content_type: str) -> None:
    kind = sniff_image(b"II*\x00" + b"\x00" * 60, filename=filename)
    assert kind is not None
    assert (kind.name, kind.content_type) == (name, content_type)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"%PDF-1.7\n" + b"\x00" * 60,
        b"GIF89a" + b"\x00" * 60,
        b"PK\x03\x04" + b"\x00" * 60,
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 40,  # a video
        b"\x00\x00\x00\x04ftypheic" + b"\x00" * 40,  # box size too small to be real
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\xff\xd8",  # two bytes of a JPEG are not a JPEG
    ],
)
def test_refuses_what_is_not_an_image(head: bytes) -> None:
    assert sniff_image(head, filename="holiday.jpg") is None
