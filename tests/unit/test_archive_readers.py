"""The writer's output checked by independent ZIP readers: Info-ZIP, 7-Zip and libarchive.

Missing programs skip locally and fail in CI (Debian packages: unzip, 7zip, libarchive-tools).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.archive.naming import safe_entry_names
from app.archive.zipformat import ZipWriter, archive_size
from tests.support import require_tool

MODIFIED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
# Non-ASCII names are printed and created as UTF-8 only under a UTF-8 locale.
ENV = {**os.environ, "LC_ALL": "C.UTF-8"}

RAW_ITEMS: list[tuple[str | None, str]] = [
    ("photo.jpg", "img-1"),
    ("Photo.JPG", "img-2"),
    ("Résidence 東京 (salon).png", "img-3"),
    (None, "img-4-empty"),
    ("../../etc/passwd.jpg", "img-5"),
    ("CON.jpeg", "img-6"),
    ("Cafe\u0301 ☕.webp", "img-7"),
]


def _payloads() -> list[bytes]:
    rng = random.Random(20240506)
    return [
        rng.randbytes(3000),
        rng.randbytes(5000),
        "é".encode() * 900,
        b"",
        rng.randbytes(4096),
        b"\xff\xd8\xff" + bytes(2048),
        rng.randbytes(1),
    ]


@pytest.fixture(scope="module")
def expected() -> dict[str, bytes]:
    names = safe_entry_names(RAW_ITEMS, extension="jpg")
    assert names == [
        "photo.jpg",
        "Photo (1).jpg",
        "Résidence 東京 (salon).jpg",
        "img-4-empty.jpg",
        "passwd.jpg",
        "CON_.jpg",
        "Café ☕.jpg",
    ]
    return dict(zip(names, _payloads(), strict=True))


@pytest.fixture(scope="module")
def archive(expected: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readers") / "order.zip"
    writer = ZipWriter()
    with path.open("wb") as out:
        for name, data in expected.items():
            out.write(
                writer.local_header(name, size=len(data), crc32=zlib.crc32(data), modified=MODIFIED)
            )
            out.write(data)
            writer.data_written(len(data))
        out.write(writer.finish())
    assert path.stat().st_size == archive_size((name, len(data)) for name, data in expected.items())
    return path


def run(*args: str | Path, stdin: bytes | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        input=stdin,
        cwd=cwd,
        env=ENV,
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"{args[0]} exited {result.returncode}:\n{output}"
    return output


def extracted_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def test_info_zip_tests_every_entry(archive: Path, expected: dict[str, bytes]) -> None:
    unzip = require_tool("unzip")
    output = run(unzip, "-t", archive)
    assert "No errors detected" in output
    tested = re.findall(r"testing: (.+?)\s+OK$", output, flags=re.MULTILINE)
    assert tested == list(expected)


def test_info_zip_lists_names_sizes_and_crcs(archive: Path, expected: dict[str, bytes]) -> None:
    unzip = require_tool("unzip")
    assert run(unzip, "-Z1", archive).splitlines() == list(expected)
    details = run(unzip, "-Z", "-v", archive).split("Central directory entry #")[1:]
    assert len(details) == len(expected)
    for block, (name, data) in zip(details, expected.items(), strict=True):
        assert f"\n  {name}\n" in block
        assert re.search(r"compression method:\s+none \(stored\)", block)
        assert re.search(r"extended local header:\s+no\n", block)
        assert re.search(rf"32-bit CRC value \(hex\):\s+{zlib.crc32(data):08x}\n", block)
        assert re.search(rf"uncompressed size:\s+{len(data)} bytes", block)
        assert re.search(r"Unix file attributes \(100644 octal\)", block)


def test_info_zip_extracts_byte_for_byte(
    archive: Path, expected: dict[str, bytes], tmp_path: Path
) -> None:
    unzip = require_tool("unzip")
    run(unzip, "-q", archive, "-d", tmp_path)
    assert extracted_files(tmp_path) == expected


def test_7zip_tests_lists_and_extracts(
    archive: Path, expected: dict[str, bytes], tmp_path: Path
) -> None:
    seven_zip = require_tool("7z", "7zz")
    output = run(seven_zip, "t", archive)
    assert "Everything is Ok" in output
    assert "Warning" not in output
    assert "Headers Error" not in output
    listing = run(seven_zip, "l", "-slt", archive).split("\n----------\n", 1)[1]
    entries = [block for block in listing.strip().split("\n\n") if block.strip()]
    assert len(entries) == len(expected)
    for block, (name, data) in zip(entries, expected.items(), strict=True):
        fields = dict(line.split(" = ", 1) for line in block.strip().splitlines() if " = " in line)
        assert fields["Path"] == name
        assert fields["Size"] == str(len(data))
        assert fields["Packed Size"] == str(len(data))
        # p7zip leaves the CRC of an empty file blank; 7-Zip prints 00000000.
        assert int(fields["CRC"] or "0", 16) == zlib.crc32(data)
        assert fields["Method"] == "Store"
    run(seven_zip, "x", f"-o{tmp_path}", archive)
    assert extracted_files(tmp_path) == expected


def test_libarchive_lists_entries(archive: Path, expected: dict[str, bytes]) -> None:
    bsdtar = require_tool("bsdtar")
    assert run(bsdtar, "-tf", archive).splitlines() == list(expected)


def test_libarchive_extracts_a_stream_from_stdin(
    archive: Path, expected: dict[str, bytes], tmp_path: Path
) -> None:
    bsdtar = require_tool("bsdtar")
    # Reading from a pipe forces the streaming reader, which never sees the central
    # directory and relies on the sizes in each local header.
    run(bsdtar, "-xf", "-", stdin=archive.read_bytes(), cwd=tmp_path)
    assert extracted_files(tmp_path) == expected
