"""A real archive on disk whose offsets cross 4 GiB, checked by four independent readers.

Every image is small, yet an order of a few hundred of them passes 4 GiB, so offset-only
ZIP64 (ZIP64 extras in central records and the ZIP64 end record) is the case that matters.
The archive holds three 1.5 GiB entries of zeros and a small text entry past the 4 GiB mark.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.archive.zipformat import ZipWriter, archive_size
from tests.support import require_tool

pytestmark = pytest.mark.slow

MODIFIED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
FOUR_GIB = 1 << 32
# Large enough for fast sequential writes, small enough to keep memory flat.
CHUNK = bytes(8 << 20)
BIG_SIZE = 192 * len(CHUNK)  # 1.5 GiB
BIG_NAMES = ["zeros-1.bin", "zeros-2.bin", "zeros-3.bin"]
LAST_NAME = "après-4-GiB.txt"
LAST_DATA = "écrit après la marque des 4 Gio\n".encode() * 20
ENV = {**os.environ, "LC_ALL": "C.UTF-8"}


def zeros_crc32(size: int) -> int:
    crc = 0
    for _ in range(size // len(CHUNK)):
        crc = zlib.crc32(CHUNK, crc)
    return crc


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("zip64") / "large-order.zip"
    big_crc = zeros_crc32(BIG_SIZE)
    writer = ZipWriter()
    try:
        with path.open("wb") as out:
            for name in BIG_NAMES:
                out.write(
                    writer.local_header(name, size=BIG_SIZE, crc32=big_crc, modified=MODIFIED)
                )
                for _ in range(BIG_SIZE // len(CHUNK)):
                    out.write(CHUNK)
                    writer.data_written(len(CHUNK))
            assert writer.offset > FOUR_GIB
            out.write(
                writer.local_header(
                    LAST_NAME, size=len(LAST_DATA), crc32=zlib.crc32(LAST_DATA), modified=MODIFIED
                )
            )
            out.write(LAST_DATA)
            writer.data_written(len(LAST_DATA))
            out.write(writer.finish())
        sizes = [(name, BIG_SIZE) for name in BIG_NAMES] + [(LAST_NAME, len(LAST_DATA))]
        assert path.stat().st_size == writer.offset == archive_size(sizes)
        yield path
    finally:
        path.unlink(missing_ok=True)


def run(*args: str | Path) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], env=ENV, capture_output=True, timeout=240, check=False
    )
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"{args[0]} exited {result.returncode}:\n{output}"
    return output


def test_zipfile_reads_entries_past_4_gib(big_archive: Path) -> None:
    with zipfile.ZipFile(big_archive) as zf:
        infos = zf.infolist()
        assert [info.filename for info in infos] == [*BIG_NAMES, LAST_NAME]
        assert [info.file_size for info in infos] == [BIG_SIZE] * 3 + [len(LAST_DATA)]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        assert infos[-1].header_offset > FOUR_GIB
        assert zf.read(LAST_NAME) == LAST_DATA
        with zf.open(BIG_NAMES[-1]) as member:
            member.seek(BIG_SIZE - 16)
            assert member.read() == bytes(16)
        assert zf.getinfo(BIG_NAMES[0]).CRC == zeros_crc32(BIG_SIZE)

    with big_archive.open("rb") as raw:
        raw.seek(-22 - 20 - 56, os.SEEK_END)
        tail = raw.read()
    assert tail[:4] == b"PK\x06\x06", "ZIP64 end of central directory record"
    assert tail[56:60] == b"PK\x06\x07", "ZIP64 end of central directory locator"
    assert struct.unpack_from("<I", tail, 76 + 16)[0] == 0xFFFFFFFF, "classic offset field"


def test_info_zip_tests_every_entry(big_archive: Path) -> None:
    unzip = require_tool("unzip")
    output = run(unzip, "-t", big_archive)
    assert "No errors detected" in output
    assert re.findall(r"testing: (.+?)\s+OK$", output, flags=re.MULTILINE) == [
        *BIG_NAMES,
        LAST_NAME,
    ]


def test_7zip_tests_every_entry(big_archive: Path) -> None:
    seven_zip = require_tool("7z", "7zz")
    output = run(seven_zip, "t", big_archive)
    assert "Everything is Ok" in output
    assert "Headers Error" not in output
    assert "Warning" not in output
    assert re.search(r"^Files: 4$", output, flags=re.MULTILINE)


def test_libarchive_lists_and_reads_the_last_entry(big_archive: Path) -> None:
    bsdtar = require_tool("bsdtar")
    assert run(bsdtar, "-tf", big_archive).splitlines() == [*BIG_NAMES, LAST_NAME]
    result = subprocess.run(
        [bsdtar, "-xOf", str(big_archive), LAST_NAME],
        env=ENV,
        capture_output=True,
        timeout=240,
        check=True,
    )
    assert result.stdout == LAST_DATA
