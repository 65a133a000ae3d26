"""Archives with folders (variants) and a manifest.json open in every common reader: Info-ZIP
unzip, 7-Zip, bsdtar (also streamed from the response), Python's zipfile, and Java's streaming
java.util.zip.ZipInputStream (a small reader compiled here with javac)."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path

import httpx

from tests.conftest import create_order
from tests.support import SandboxControl, UvicornThread, require_tool
from tests.variants.support import unique_key

HERE = Path(__file__).parent
NAMES = ["Front door.jpg", "Küche – Süd.jpg", "../../etc/passwd", "CON.jpg", "front door.JPG"]


def java_reader(tmp_path: Path) -> list[str]:
    """The command that runs ZipRead (compiled into `tmp_path`) on standard input."""
    javac = require_tool("javac")
    java = require_tool("java")
    shutil.copy(HERE / "ZipRead.java", tmp_path / "ZipRead.java")
    subprocess.run(
        [javac, "-d", str(tmp_path), str(tmp_path / "ZipRead.java")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return [
        java,
        "-Dfile.encoding=UTF-8",
        "-Dstdout.encoding=UTF-8",
        "-cp",
        str(tmp_path),
        "ZipRead",
    ]


def test_every_reader_opens_an_archive_with_folders_and_a_manifest(
    service: UvicornThread, sandbox: SandboxControl, tmp_path: Path
) -> None:
    unzip = require_tool("unzip")
    sevenzip = require_tool("7z", "7zz")
    bsdtar = require_tool("bsdtar")
    key = unique_key("readers")
    order = create_order(
        sandbox,
        images=5,
        image_bytes=25_000,
        names=NAMES,
        statuses={"4": "processing"},
        api_key=key,
    )
    url = (
        f"{service.url}/orders/{order['order_id']}/images"
        "?variants=mls,print&dev_mode=true&naming=numbered&manifest=true"
    )
    headers = {"X-Autoenhance-Key": key}
    body = httpx.get(url, headers=headers, timeout=60).content
    target = tmp_path / "order.zip"
    target.write_bytes(body)

    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        expected = {info.filename: archive.read(info) for info in archive.infolist()}
    assert list(expected) == [
        f"{folder}/{name}"
        for name in (
            "01 - Front door.jpg",
            "02 - Küche – Süd.jpg",
            "03 - passwd.jpg",
            "04 - CON.jpg",
        )
        for folder in ("MLS", "Print")
    ] + ["_download_report.txt", "manifest.json"]

    subprocess.run([unzip, "-tq", str(target)], check=True, capture_output=True)
    subprocess.run([sevenzip, "t", str(target)], check=True, capture_output=True)
    listing = subprocess.run(
        [bsdtar, "-tf", str(target)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert listing == list(expected)

    out = tmp_path / "streamed"
    out.mkdir()
    extractor = subprocess.Popen([bsdtar, "-xf", "-", "-C", str(out)], stdin=subprocess.PIPE)
    assert extractor.stdin is not None
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        for chunk in response.iter_raw():
            extractor.stdin.write(chunk)
    extractor.stdin.close()
    assert extractor.wait(timeout=30) == 0
    for name, data in expected.items():
        assert (out / name).read_bytes() == data


def test_javas_streaming_reader_opens_an_archive_with_folders_and_a_manifest(
    service: UvicornThread, sandbox: SandboxControl, tmp_path: Path
) -> None:
    java = java_reader(tmp_path)
    key = unique_key("java")
    order = create_order(
        sandbox, images=3, image_bytes=25_000, names=NAMES, statuses={"2": "error"}, api_key=key
    )
    url = (
        f"{service.url}/orders/{order['order_id']}/images"
        "?variants=mls,web,print&dev_mode=true&manifest=true"
    )
    body = httpx.get(url, headers={"X-Autoenhance-Key": key}, timeout=60).content
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        expected = {info.filename: archive.read(info) for info in archive.infolist()}
    assert "MLS/Küche – Süd.jpg" in expected
    assert list(expected)[-2:] == ["_download_report.txt", "manifest.json"]

    read = subprocess.run(java, input=body, check=True, capture_output=True, timeout=120)
    lines = [line.split("\t") for line in read.stdout.decode("utf-8").splitlines()]
    assert lines == [
        [name, str(len(data)), str(zlib.crc32(data))] for name, data in expected.items()
    ]
