"""ZipWriter and archive_size: every archive is read back with zipfile entry by entry."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.archive.naming import safe_entry_names
from app.archive.zipformat import ZipWriter, archive_size

MODIFIED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
MAX_32 = 0xFFFFFFFF
LOCAL = struct.Struct("<4sHHHHHIIIHH")
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
END = struct.Struct("<4sHHHHIIH")
ZIP64_END = struct.Struct("<4sQHHIIQQQQ")
LOCATOR = struct.Struct("<4sIQI")

SAMPLE = [
    ("photo.jpg", b"\xff\xd8" + bytes(range(256)) * 8),
    ("Ünïcödé 東京.jpg", b"non-ascii name"),
    ("empty.jpg", b""),
    ("photo (1).jpg", b"x" * 4096),
]


def build(
    entries: Sequence[tuple[str, bytes]],
    *,
    modified: datetime = MODIFIED,
    comment: bytes = b"",
    chunk: int = 1000,
) -> bytes:
    writer = ZipWriter()
    out = io.BytesIO()
    for name, data in entries:
        out.write(
            writer.local_header(name, size=len(data), crc32=zlib.crc32(data), modified=modified)
        )
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            out.write(piece)
            writer.data_written(len(piece))
        assert writer.offset == out.tell()
    out.write(writer.finish(comment))
    assert writer.offset == out.tell()
    assert writer.entries == len(entries)
    return out.getvalue()


def assert_reads_back(archive: bytes, entries: Sequence[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert [info.filename for info in infos] == [name for name, _ in entries]
        for info, (name, data) in zip(infos, entries, strict=True):
            assert info.file_size == info.compress_size == len(data)
            assert info.CRC == zlib.crc32(data)
            assert info.compress_type == zipfile.ZIP_STORED
            assert not info.flag_bits & 0x08, "no data descriptor"
            assert bool(info.flag_bits & 0x800) == (not name.isascii())
            assert info.create_system == 3
            assert info.external_attr >> 16 == 0o100644
            assert info.extra == b""
            assert zf.read(info) == data


def test_round_trip_entry_by_entry() -> None:
    archive = build(SAMPLE, comment=b"order 42")
    assert_reads_back(archive, SAMPLE)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.comment == b"order 42"
        assert {info.date_time for info in zf.infolist()} == {(2024, 5, 6, 7, 8, 8)}


def test_empty_archive() -> None:
    archive = build([])
    assert archive == END.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)
    assert zipfile.ZipFile(io.BytesIO(archive)).infolist() == []


def test_local_header_carries_crc_and_sizes() -> None:
    data = b"local header test"
    header = ZipWriter().local_header(
        "a.jpg", size=len(data), crc32=zlib.crc32(data), modified=MODIFIED
    )
    fields = LOCAL.unpack_from(header)
    signature, version, flags, method, _, _, crc, csize, usize, name_len, extra_len = fields
    assert signature == b"PK\x03\x04"
    assert (version, flags, method) == (20, 0, 0)
    assert (crc, csize, usize) == (zlib.crc32(data), len(data), len(data))
    assert (name_len, extra_len) == (5, 0)
    assert header[LOCAL.size :] == b"a.jpg"


def test_utf8_flag_only_for_non_ascii_names() -> None:
    ascii_header = ZipWriter().local_header("plain.jpg", size=0, crc32=0, modified=MODIFIED)
    utf8_header = ZipWriter().local_header("café.jpg", size=0, crc32=0, modified=MODIFIED)
    assert LOCAL.unpack_from(ascii_header)[2] == 0
    assert LOCAL.unpack_from(utf8_header)[2] == 0x800
    assert utf8_header[LOCAL.size :] == "café.jpg".encode()


def test_same_input_gives_identical_bytes() -> None:
    first = hashlib.sha256(build(SAMPLE)).hexdigest()
    assert hashlib.sha256(build(SAMPLE, chunk=7)).hexdigest() == first
    later = build(SAMPLE, modified=MODIFIED + timedelta(seconds=2))
    assert hashlib.sha256(later).hexdigest() != first


@pytest.mark.parametrize(
    ("modified", "expected"),
    [
        (datetime(2024, 5, 6, 7, 8, 9), (2024, 5, 6, 7, 8, 8)),
        (datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), (2024, 5, 6, 7, 8, 8)),
        (
            datetime(2024, 5, 6, 9, 8, 10, tzinfo=timezone(timedelta(hours=2))),
            (2024, 5, 6, 7, 8, 10),
        ),
        (datetime(1970, 1, 1, tzinfo=UTC), (1980, 1, 1, 0, 0, 0)),
        (datetime(1979, 12, 31, 23, 59, 59), (1980, 1, 1, 0, 0, 0)),
        (datetime(2107, 12, 31, 23, 59, 59), (2107, 12, 31, 23, 59, 58)),
        (datetime(2200, 1, 1, tzinfo=UTC), (2107, 12, 31, 23, 59, 58)),
        (datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))), (2107, 12, 31, 23, 59, 58)),
        (datetime.min.replace(tzinfo=timezone(timedelta(hours=5))), (1980, 1, 1, 0, 0, 0)),
    ],
)
def test_timestamps_are_utc_clamped_and_even(modified: datetime, expected: tuple[int, ...]) -> None:
    archive = build([("a.jpg", b"a")], modified=modified)
    assert zipfile.ZipFile(io.BytesIO(archive)).infolist()[0].date_time == expected


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [("a", b"")],
        SAMPLE,
        [(f"{index}.jpg", bytes(index)) for index in range(50)],
        [("é" * 30_000, b"long multibyte name")],
    ],
)
@pytest.mark.parametrize("comment", [b"", b"a comment"])
def test_archive_size_matches_output(entries: list[tuple[str, bytes]], comment: bytes) -> None:
    archive = build(entries, comment=comment)
    assert archive_size(((name, len(data)) for name, data in entries), comment=comment) == len(
        archive
    )
    assert_reads_back(archive, entries)


def test_names_are_validated() -> None:
    writer = ZipWriter()
    with pytest.raises(ValueError, match="empty"):
        writer.local_header("", size=0, crc32=0, modified=MODIFIED)
    with pytest.raises(ValueError, match="directory"):
        writer.local_header("folder/", size=0, crc32=0, modified=MODIFIED)
    with pytest.raises(ValueError, match="65535"):
        writer.local_header("é" * 32_768, size=0, crc32=0, modified=MODIFIED)
    writer.local_header("é" * 32_767 + "a", size=0, crc32=0, modified=MODIFIED)
    writer.local_header("a.jpg", size=0, crc32=0, modified=MODIFIED)
    with pytest.raises(ValueError, match="duplicate"):
        writer.local_header("a.jpg", size=0, crc32=0, modified=MODIFIED)
    with pytest.raises(ValueError, match="duplicate"):
        archive_size([("a.jpg", 1), ("a.jpg", 2)])
    with pytest.raises(ValueError, match="empty"):
        archive_size([("", 1)])


def test_sizes_and_crc_are_validated() -> None:
    writer = ZipWriter()
    with pytest.raises(ValueError, match="size"):
        writer.local_header("a", size=-1, crc32=0, modified=MODIFIED)
    with pytest.raises(ValueError, match="size"):
        writer.local_header("a", size=2**64, crc32=0, modified=MODIFIED)
    with pytest.raises(ValueError, match="CRC"):
        writer.local_header("a", size=0, crc32=2**32, modified=MODIFIED)
    with pytest.raises(ValueError, match="size"):
        archive_size([("a", -1)])
    assert writer.entries == 0
    assert writer.offset == 0


def test_data_count_must_match_declared_size() -> None:
    writer = ZipWriter()
    with pytest.raises(ValueError, match="expects only 0"):
        writer.data_written(1)
    writer.local_header("a.jpg", size=10, crc32=0, modified=MODIFIED)
    with pytest.raises(ValueError, match="negative"):
        writer.data_written(-1)
    writer.data_written(4)
    with pytest.raises(ValueError, match="expects only 6"):
        writer.data_written(7)
    with pytest.raises(RuntimeError, match="still expects 6"):
        writer.local_header("b.jpg", size=0, crc32=0, modified=MODIFIED)
    with pytest.raises(RuntimeError, match="still expects 6"):
        writer.finish()
    writer.data_written(6)
    writer.finish()
    with pytest.raises(RuntimeError, match="finished"):
        writer.finish()
    with pytest.raises(RuntimeError, match="finished"):
        writer.local_header("b.jpg", size=0, crc32=0, modified=MODIFIED)


def test_comment_is_validated() -> None:
    with pytest.raises(ValueError, match="65535"):
        ZipWriter().finish(b"x" * 65_536)
    with pytest.raises(ValueError, match="signature"):
        ZipWriter().finish(b"before PK\x05\x06 after")
    with pytest.raises(ValueError, match="signature"):
        archive_size([], comment=b"PK\x05\x06")
    assert zipfile.ZipFile(io.BytesIO(build([], comment=b"x" * 65_535))).comment == b"x" * 65_535


raw_names = st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=raw_names, data=st.data())
def test_any_safe_names_round_trip(names: list[str | None], data: st.DataObject) -> None:
    safe = safe_entry_names(
        [(name, f"id{index}") for index, name in enumerate(names)], extension="jpg"
    )
    entries = [(name, data.draw(st.binary(max_size=300), label=name)) for name in safe]
    archive = build(entries, chunk=64)
    assert_reads_back(archive, entries)
    assert archive_size((name, len(payload)) for name, payload in entries) == len(archive)


def fake_walk(entries: Sequence[tuple[str, int]]) -> tuple[list[tuple[int, bytes]], bytes, int]:
    """Drive a writer with sizes only; return (offset, header) pairs, the trailer, total size.

    The data is taken to be zeros; small entries get their real CRC-32 so they can be read.
    """
    writer = ZipWriter()
    headers = []
    for name, size in entries:
        offset = writer.offset
        crc = zlib.crc32(bytes(size)) if size < 4096 else 0
        headers.append((offset, writer.local_header(name, size=size, crc32=crc, modified=MODIFIED)))
        writer.data_written(size)
    directory_offset = writer.offset
    trailer = writer.finish()
    assert writer.offset == directory_offset + len(trailer)
    return headers, trailer, writer.offset


@pytest.mark.parametrize(
    "sizes",
    [
        [MAX_32 - 1],
        [MAX_32],
        [MAX_32 + 1],
        [MAX_32 - 31 - 1, 0],  # second local header just below the ZIP64 offset limit
        [MAX_32 - 31, 0],  # second local header exactly at the limit
        [MAX_32 - 31 + 1, 0],
        [MAX_32 - 62 - 1, 0],  # central directory starts just below the limit
        [MAX_32 - 62, 0],  # central directory starts exactly at the limit
        [2**40, 3, MAX_32, 2**33],
        [2**63],
    ],
)
def test_archive_size_matches_writer_around_zip64_limits(sizes: list[int]) -> None:
    entries = [(chr(ord("a") + index), size) for index, size in enumerate(sizes)]
    assert archive_size(entries) == fake_walk(entries)[2]


def test_zip64_costs_exactly_the_documented_bytes() -> None:
    # A 1-byte name: local header 31, central record 47, end record 22.
    assert archive_size([("a", 10)]) == 31 + 10 + 47 + 22
    # The directory offset reaches the sentinel: ZIP64 end record (56) and locator (20).
    assert archive_size([("a", MAX_32 - 31)]) == MAX_32 + 47 + 56 + 20 + 22
    assert archive_size([("a", MAX_32 - 32)]) == MAX_32 - 1 + 47 + 22
    # Sizes at the sentinel: a 20-byte extra in the local header and in the central record.
    assert archive_size([("a", MAX_32)]) == 31 + 20 + MAX_32 + 47 + 20 + 56 + 20 + 22
    # A local header at the sentinel offset: a 12-byte extra in its central record only.
    base = archive_size([("a", MAX_32 - 32), ("b", 0)])
    assert archive_size([("a", MAX_32 - 31), ("b", 0)]) == base + 1 + 12


def iter_central(directory: bytes) -> Iterator[tuple[tuple[int, ...], bytes, dict[int, bytes]]]:
    position = 0
    while directory[position : position + 4] == b"PK\x01\x02":
        fields = CENTRAL.unpack_from(directory, position)
        name_len, extra_len = fields[10], fields[11]
        start = position + CENTRAL.size
        name = directory[start : start + name_len]
        extras = parse_extras(directory[start + name_len : start + name_len + extra_len])
        yield fields, name, extras
        position = start + name_len + extra_len + fields[12]


def parse_extras(blob: bytes) -> dict[int, bytes]:
    extras: dict[int, bytes] = {}
    position = 0
    while position < len(blob):
        header_id, length = struct.unpack_from("<HH", blob, position)
        extras[header_id] = blob[position + 4 : position + 4 + length]
        position += 4 + length
    assert position == len(blob)
    return extras


class SparseArchive(io.RawIOBase):
    """A read-only file of zeros with the writer's headers and trailer placed at their offsets."""

    def __init__(self, pieces: list[tuple[int, bytes]], size: int) -> None:
        self.pieces = pieces
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        length = max(0, min(len(buffer), self.size - self.position))
        chunk = bytearray(length)
        for start, blob in self.pieces:
            low, high = max(start, self.position), min(start + len(blob), self.position + length)
            if low < high:
                chunk[low - self.position : high - self.position] = blob[low - start : high - start]
        buffer[:length] = chunk
        self.position += length
        return length


def test_offsets_past_4_gib_use_zip64_only_where_needed() -> None:
    gib = 1 << 30
    entries = [
        ("first.jpg", 3 * gib),
        ("below.jpg", 100),  # starts near 3 GiB: classic record
        ("huge.jpg", MAX_32),  # size needs ZIP64; starts below 4 GiB
        ("after.jpg", 5),  # starts past 4 GiB: offset needs ZIP64
        ("just-below.jpg", MAX_32 - 1),
        ("big-after.jpg", MAX_32 + 7),  # both sizes and offset
    ]
    headers, trailer, total = fake_walk(entries)
    assert total == archive_size(entries)
    directory_offset = total - len(trailer)

    records = list(iter_central(trailer))
    assert [name.decode() for _, name, _ in records] == [name for name, _ in entries]
    expected_extras: list[tuple[int, ...]] = []
    for (offset, header), (_, size) in zip(headers, entries, strict=True):
        local = LOCAL.unpack_from(header)
        if size >= MAX_32:
            assert local[1] == 45
            assert local[7:9] == (MAX_32, MAX_32)
            assert parse_extras(header[LOCAL.size + local[9] :]) == {
                1: struct.pack("<QQ", size, size)
            }
            assert header[LOCAL.size + local[9] :][:2] == b"\x01\x00", "ZIP64 extra comes first"
        else:
            assert local[1] == 20
            assert local[7:9] == (size, size)
            assert local[10] == 0
        overflow = ([size, size] if size >= MAX_32 else []) + ([offset] if offset >= MAX_32 else [])
        expected_extras.append(tuple(overflow))

    for (fields, _, extras), (offset, _), expected in zip(
        records, headers, expected_extras, strict=True
    ):
        if expected:
            assert fields[2] == 45
            assert extras == {1: struct.pack(f"<{len(expected)}Q", *expected)}
        else:
            assert fields[2] == 20
            assert extras == {}
        assert fields[16] == (offset if offset < MAX_32 else MAX_32)
    assert [bool(overflow) for overflow in expected_extras] == [
        False,
        False,
        True,
        True,
        True,
        True,
    ]

    zip64_end_at = len(trailer) - END.size - LOCATOR.size - ZIP64_END.size
    zip64_end = ZIP64_END.unpack_from(trailer, zip64_end_at)
    assert zip64_end == (b"PK\x06\x06", 44, 0x033F, 45, 0, 0, 6, 6, zip64_end_at, directory_offset)
    locator = LOCATOR.unpack_from(trailer, zip64_end_at + ZIP64_END.size)
    assert locator == (b"PK\x06\x07", 0, directory_offset + zip64_end_at, 1)
    end = END.unpack_from(trailer, len(trailer) - END.size)
    assert end == (b"PK\x05\x06", 0, 0, 6, 6, zip64_end_at, MAX_32, 0)

    sparse = SparseArchive([*headers, (directory_offset, trailer)], total)
    with zipfile.ZipFile(io.BufferedReader(sparse)) as zf:
        infos = zf.infolist()
        assert [(info.filename, info.file_size) for info in infos] == entries
        assert [info.header_offset for info in infos] == [offset for offset, _ in headers]
        assert zf.read("below.jpg") == bytes(100)


def test_entry_count_at_the_16_bit_sentinel_adds_the_zip64_end_record() -> None:
    def size(count: int) -> int:
        return archive_size((f"{index:05x}", 0) for index in range(count))

    per_entry = 30 + 5 + 46 + 5
    assert size(65_534) - size(65_533) == per_entry
    assert size(65_535) - size(65_534) == per_entry + 56 + 20
    assert size(65_536) - size(65_535) == per_entry


def test_more_than_65535_entries_read_back() -> None:
    count = 65_536
    writer = ZipWriter()
    empty_crc = zlib.crc32(b"")
    parts = [
        writer.local_header(f"{index:x}", size=0, crc32=empty_crc, modified=MODIFIED)
        for index in range(count)
    ]
    parts.append(writer.finish())
    archive = b"".join(parts)
    assert archive_size((f"{index:x}", 0) for index in range(count)) == len(archive)
    zip64_end_at = len(archive) - END.size - LOCATOR.size - ZIP64_END.size
    zip64_end = ZIP64_END.unpack_from(archive, zip64_end_at)
    assert zip64_end[0] == b"PK\x06\x06"
    assert zip64_end[6:8] == (count, count)
    end = END.unpack_from(archive, len(archive) - END.size)
    assert end[3:5] == (0xFFFF, 0xFFFF)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        infos = zf.infolist()
        assert len(infos) == count
        assert [info.filename for info in infos[-2:]] == ["fffe", "ffff"]
        assert zf.read(infos[-1]) == b""
