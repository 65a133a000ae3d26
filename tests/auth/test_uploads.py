"""The streaming multipart receiver: limits enforced while the body arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.services.uploads import (
    FileTooLarge,
    MalformedUpload,
    NoFiles,
    NotAnImage,
    NotMultipart,
    TooManyFiles,
    clean_filename,
    receive_uploads,
)
from testkit.processes import ROOT

JPEG = (ROOT / "sample_images" / "garden.jpg").read_bytes()
CHUNK = 8192


def multipart(files: list[tuple[str, tuple[str, bytes]]], data: dict[str, str] | None = None):
    request = httpx.Request("POST", "http://test/", files=files, data=data)
    return request.read(), request.headers["content-type"]


class Feed:
    """An async body that counts how much of itself was consumed."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.consumed = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), CHUNK):
            chunk = self.body[start : start + CHUNK]
            self.consumed += len(chunk)
            yield chunk


async def receive(body: bytes, content_type: str, tmp_path: Path, **limits: Any):
    options = {"max_files": 5, "max_bytes": 200_000, "spool_memory_bytes": 16_384, **limits}
    feed = Feed(body)
    return feed, await receive_uploads(feed, content_type, spool_dir=tmp_path, **options)


async def test_keeps_files_in_order_with_sizes_types_and_bytes(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    body, ctype = multipart(
        [("files", ("a.jpg", JPEG)), ("files", ("b.png", png))], data={"name": "My order"}
    )
    _, upload = await receive(body, ctype, tmp_path)
    try:
        assert [(f.filename, f.kind.name, f.size) for f in upload.files] == [
            ("a.jpg", "jpeg", len(JPEG)),
            ("b.png", "png", len(png)),
        ]
        assert upload.files[0].read() == JPEG
        assert upload.files[1].read() == png
        assert upload.fields == {"name": "My order"}
    finally:
        upload.close()


async def test_a_big_file_is_refused_at_the_limit_not_after_reading_it(tmp_path: Path) -> None:
    big = JPEG + b"\x00" * 5_000_000
    body, ctype = multipart([("files", ("huge.jpg", big))])
    feed = Feed(body)
    with pytest.raises(FileTooLarge, match="huge.jpg") as caught:
        await receive_uploads(
            feed, ctype, max_files=5, max_bytes=100_000, spool_dir=tmp_path, spool_memory_bytes=1
        )
    assert caught.value.filename == "huge.jpg"
    assert feed.consumed <= 100_000 + 2 * CHUNK  # stopped at the limit, not at 5 MB
    assert list(tmp_path.iterdir()) == []  # the spooled part was deleted


async def test_a_non_image_is_refused_from_its_first_bytes_whatever_its_name(
    tmp_path: Path,
) -> None:
    fake = b"%PDF-1.7\n" + b"x" * 1_000_000
    body, ctype = multipart([("files", ("ok.jpg", JPEG)), ("files", ("photo.jpg", fake))])
    feed = Feed(body)
    with pytest.raises(NotAnImage, match="photo.jpg"):
        await receive_uploads(
            feed, ctype, max_files=5, max_bytes=10**7, spool_dir=tmp_path, spool_memory_bytes=1
        )
    assert feed.consumed < len(JPEG) + 3 * CHUNK
    assert list(tmp_path.iterdir()) == []


async def test_tiny_non_image_and_empty_file_are_refused(tmp_path: Path) -> None:
    for content in (b"hi", b""):
        body, ctype = multipart([("files", ("x.png", content))])
        with pytest.raises(NotAnImage, match="x.png"):
            await receive(body, ctype, tmp_path)


async def test_one_file_too_many_is_refused(tmp_path: Path) -> None:
    body, ctype = multipart([("files", (f"{i}.jpg", JPEG)) for i in range(3)])
    with pytest.raises(TooManyFiles, match="2"):
        await receive(body, ctype, tmp_path, max_files=2)


async def test_no_files(tmp_path: Path) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nnothing\r\n--b--\r\n'
    with pytest.raises(NoFiles):
        await receive(body, "multipart/form-data; boundary=b", tmp_path)


async def test_a_browsers_empty_file_input_is_no_file(tmp_path: Path) -> None:
    body, ctype = multipart([("files", ("", b""))])
    with pytest.raises(NoFiles):
        await receive(body, ctype, tmp_path)


@pytest.mark.parametrize(
    ("body", "ctype", "error"),
    [
        (b'{"files": []}', "application/json", NotMultipart),
        (b"x", "multipart/form-data", NotMultipart),  # no boundary
        (b"garbage without boundary", "multipart/form-data; boundary=b", MalformedUpload),
    ],
)
async def test_malformed_bodies(tmp_path: Path, body: bytes, ctype: str, error: type) -> None:
    with pytest.raises(error):
        await receive(body, ctype, tmp_path)


async def test_a_file_in_another_field_is_named_in_the_error(tmp_path: Path) -> None:
    body, ctype = multipart([("file", ("a.jpg", JPEG))])
    with pytest.raises(MalformedUpload, match="'file'"):
        await receive(body, ctype, tmp_path)


async def test_an_oversized_text_field_is_refused(tmp_path: Path) -> None:
    body, ctype = multipart([("files", ("a.jpg", JPEG))], data={"name": "x" * 10_000})
    with pytest.raises(MalformedUpload, match="name"):
        await receive(body, ctype, tmp_path)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("C:\\Users\\me\\house.jpg", "house.jpg"),
        ("../../etc/passwd.jpg", "passwd.jpg"),
        ("a\x00b\x1b[31m.jpg", "ab[31m.jpg"),
        ("..", "image-3"),
        ("x" * 500 + ".jpg", "x" * 200),
    ],
)
def test_clean_filename(raw: str, clean: str) -> None:
    assert clean_filename(raw, index=3) == clean


async def test_a_body_cut_inside_a_file_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    body, ctype = multipart([("files", ("a.jpg", JPEG)), ("files", ("b.jpg", JPEG))])
    cut = body[: body.rindex(b"\r\n--")]  # the second file's data, without its closing boundary
    with pytest.raises(MalformedUpload, match="ended in the middle"):
        await receive(cut, ctype, tmp_path, spool_memory_bytes=0)
    assert list(tmp_path.iterdir()) == []
