"""Archives produced by the service read cleanly in every common unzipper, including a
streaming extractor fed straight from the HTTP response."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import httpx

from tests.conftest import create_order
from tests.support import UvicornThread, require_tool

NAMES = ["Front door.jpg", "Küche – Süd.jpg", "../../etc/passwd", "CON.jpg", "front door.JPG"]


def test_every_reader_accepts_the_archive(
    service: UvicornThread, sandbox: httpx.Client, tmp_path: Path
) -> None:
    unzip = require_tool("unzip")
    sevenzip = require_tool("7z", "7zz")
    bsdtar = require_tool("bsdtar")
    order = create_order(
        sandbox, images=5, image_bytes=25_000, names=NAMES, statuses={"4": "processing"}
    )
    url = f"{service.url}/orders/{order['order_id']}/images"
    target = tmp_path / "order.zip"
    target.write_bytes(httpx.get(url, timeout=60).content)

    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        expected = {info.filename: archive.read(info) for info in archive.infolist()}
    assert list(expected) == [
        "Front door.jpg",
        "Küche – Süd.jpg",
        "passwd.jpg",
        "CON_.jpg",
        "_download_report.txt",
    ]

    subprocess.run([unzip, "-tq", str(target)], check=True, capture_output=True)
    subprocess.run([sevenzip, "t", str(target)], check=True, capture_output=True)
    listing = subprocess.run(
        [bsdtar, "-tf", str(target)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert listing == list(expected)

    # A streaming reader sees only the bytes as they arrive: it relies on sizes and CRCs in
    # the local headers, which is why the writer never uses data descriptors.
    out = tmp_path / "streamed"
    out.mkdir()
    extractor = subprocess.Popen([bsdtar, "-xf", "-", "-C", str(out)], stdin=subprocess.PIPE)
    assert extractor.stdin is not None
    with httpx.stream("GET", url, timeout=60) as response:
        for chunk in response.iter_raw():
            extractor.stdin.write(chunk)
    extractor.stdin.close()
    assert extractor.wait(timeout=30) == 0
    for name, data in expected.items():
        assert (out / name).read_bytes() == data
