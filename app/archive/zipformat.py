"""A streaming ZIP writer for STORED entries whose size and CRC-32 are known up front.

The batch pipeline fetches each image completely before writing it, so every entry's size
and CRC-32 are known when its local header goes out. That allows the most compatible
layout there is:

* entries are STORED (JPEG, PNG and WebP do not shrink under deflate) with the CRC-32 and
  both sizes in the local header and no data descriptor, so streaming extractors that read
  front to back (``bsdtar -xf -``) know where each entry ends;
* ZIP64 fields appear only in the records that need them, with the ZIP64 extra as the first
  extra field, and the ZIP64 end record only when the entry count, central directory size
  or offset overflow the classic fields;
* general purpose bit 11 (UTF-8) is set only for non-ASCII names, and no extra timestamp
  fields are written;
* the output is a pure function of the inputs, so an ETag or a resumed download can rely on
  it, and :func:`archive_size` predicts the exact byte count for a ``Content-Length``.

The writer performs no I/O: each call returns the bytes the caller must send next. That
keeps it usable from async code where the caller awaits the network between entries.

Why not a library:

* stream-zip: with ``NO_COMPRESSION_32(size, crc32)`` it does write CRC-32 and sizes in the
  local header without a data descriptor, but it always sets the UTF-8 flag, adds an
  extended timestamp extra unless ``extended_timestamps=False``, raises once a 32-bit
  member starts past 4 GiB (``NO_COMPRESSION_64`` instead puts ZIP64 extras in every record
  and always writes the ZIP64 end record), cannot predict the archive size, and consumes
  synchronous iterables (``async_stream_zip`` runs that generator in a thread).
* zipstream-ng: predicts sizes and picks ZIP64 only when needed, but always writes a data
  descriptor after file data, which streaming extractors cannot use for STORED entries,
  and is a synchronous generator as well.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["ARCHIVE_FORMAT", "ZipWriter", "archive_size"]

# Bump whenever the bytes the writer produces for the same inputs change: it is part of the
# ETag and of every stored key (`app.archive.validators`), so old manifests and cached archives
# are never reused. tests/unit/test_golden_archive.py pins the bytes it names.
ARCHIVE_FORMAT = "zip-stored/1"

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<4sHHHHHHIIIHHHHHII")
_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_END = struct.Struct("<4sHHHHIIH")
_EXTRA_HEADER = struct.Struct("<HH")

_LOCAL_SIGNATURE = b"PK\x03\x04"
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END_SIGNATURE = b"PK\x05\x06"

# A field holding its all-ones value tells readers to look in the ZIP64 record, so the
# sentinel itself already counts as an overflow.
_MAX_16 = 0xFFFF
_MAX_32 = 0xFFFFFFFF
_MAX_64 = 0xFFFFFFFFFFFFFFFF

_ZIP64_EXTRA_ID = 0x0001
# APPNOTE 4.3.14.1: the record size excludes its signature and this size field itself.
_ZIP64_END_BODY_SIZE = _ZIP64_END.size - 12

_HOST_UNIX = 3
# APPNOTE 6.3.x is the specification this writer follows; the host byte makes readers
# interpret the external attributes as a Unix mode.
_VERSION_MADE_BY = _HOST_UNIX << 8 | 63
_VERSION_NEEDED_DEFAULT = 20
_VERSION_NEEDED_ZIP64 = 45

_METHOD_STORED = 0
_FLAG_UTF8 = 1 << 11
# Regular file, rw-r--r--: extracted images must not become executable or unreadable.
_EXTERNAL_ATTRIBUTES = 0o100644 << 16

_DOS_MIN = datetime(1980, 1, 1, tzinfo=UTC)
_DOS_MAX = datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Entry:
    name: bytes
    flags: int
    dos_time: int
    dos_date: int
    crc32: int
    size: int
    offset: int


def _encode_name(name: str) -> bytes:
    if not name:
        raise ValueError("entry name must not be empty")
    if name.endswith("/"):
        raise ValueError(f"entry name {name!r} ends with '/', which denotes a directory")
    encoded = name.encode("utf-8")
    if len(encoded) > _MAX_16:
        raise ValueError(f"entry name is {len(encoded)} bytes long; the limit is {_MAX_16}")
    return encoded


def _check_comment(comment: bytes) -> None:
    if len(comment) > _MAX_16:
        raise ValueError(f"archive comment is {len(comment)} bytes long; the limit is {_MAX_16}")
    if _END_SIGNATURE in comment:
        # Readers find the end record by scanning backwards for its signature.
        raise ValueError("archive comment must not contain the end of central directory signature")


def _dos_timestamp(modified: datetime) -> tuple[int, int]:
    """Return (time, date) in MS-DOS format; naive datetimes are taken as UTC."""
    moment = modified.replace(tzinfo=UTC) if modified.tzinfo is None else modified
    moment = min(max(moment, _DOS_MIN), _DOS_MAX).astimezone(UTC)
    dos_time = moment.hour << 11 | moment.minute << 5 | moment.second // 2
    dos_date = (moment.year - 1980) << 9 | moment.month << 5 | moment.day
    return dos_time, dos_date


def _sizes_need_zip64(size: int) -> bool:
    return size >= _MAX_32


def _offset_needs_zip64(offset: int) -> bool:
    return offset >= _MAX_32


def _end_needs_zip64(*, entries: int, directory_offset: int, directory_size: int) -> bool:
    return entries >= _MAX_16 or directory_offset >= _MAX_32 or directory_size >= _MAX_32


def _local_zip64_extra(size: int) -> bytes:
    # APPNOTE 4.5.3: in a local header the extra carries both sizes whenever it is present.
    if not _sizes_need_zip64(size):
        return b""
    return _EXTRA_HEADER.pack(_ZIP64_EXTRA_ID, 16) + struct.pack("<QQ", size, size)


def _central_zip64_extra(size: int, offset: int) -> bytes:
    # APPNOTE 4.5.3: only the overflowing fields, in the order uncompressed size,
    # compressed size, local header offset.
    fields: list[int] = []
    if _sizes_need_zip64(size):
        fields += [size, size]
    if _offset_needs_zip64(offset):
        fields.append(offset)
    if not fields:
        return b""
    body = struct.pack(f"<{len(fields)}Q", *fields)
    return _EXTRA_HEADER.pack(_ZIP64_EXTRA_ID, len(body)) + body


def _local_record(entry: _Entry) -> bytes:
    extra = _local_zip64_extra(entry.size)
    size_field = _MAX_32 if extra else entry.size
    return (
        _LOCAL_HEADER.pack(
            _LOCAL_SIGNATURE,
            _VERSION_NEEDED_ZIP64 if extra else _VERSION_NEEDED_DEFAULT,
            entry.flags,
            _METHOD_STORED,
            entry.dos_time,
            entry.dos_date,
            entry.crc32,
            size_field,
            size_field,
            len(entry.name),
            len(extra),
        )
        + entry.name
        + extra
    )


def _central_record(entry: _Entry) -> bytes:
    extra = _central_zip64_extra(entry.size, entry.offset)
    size_field = _MAX_32 if _sizes_need_zip64(entry.size) else entry.size
    offset_field = _MAX_32 if _offset_needs_zip64(entry.offset) else entry.offset
    return (
        _CENTRAL_HEADER.pack(
            _CENTRAL_SIGNATURE,
            _VERSION_MADE_BY,
            _VERSION_NEEDED_ZIP64 if extra else _VERSION_NEEDED_DEFAULT,
            entry.flags,
            _METHOD_STORED,
            entry.dos_time,
            entry.dos_date,
            entry.crc32,
            size_field,
            size_field,
            len(entry.name),
            len(extra),
            0,  # file comment length
            0,  # disk number start
            0,  # internal attributes
            _EXTERNAL_ATTRIBUTES,
            offset_field,
        )
        + entry.name
        + extra
    )


def _end_records(
    *, entries: int, directory_offset: int, directory_size: int, comment: bytes
) -> bytes:
    """Return the optional ZIP64 end record and locator, then the end record."""
    records = b""
    if _end_needs_zip64(
        entries=entries, directory_offset=directory_offset, directory_size=directory_size
    ):
        zip64_end_offset = directory_offset + directory_size
        records = _ZIP64_END.pack(
            _ZIP64_END_SIGNATURE,
            _ZIP64_END_BODY_SIZE,
            _VERSION_MADE_BY,
            _VERSION_NEEDED_ZIP64,
            0,  # this disk
            0,  # disk with the central directory
            entries,
            entries,
            directory_size,
            directory_offset,
        ) + _ZIP64_LOCATOR.pack(_ZIP64_LOCATOR_SIGNATURE, 0, zip64_end_offset, 1)
    return (
        records
        + _END.pack(
            _END_SIGNATURE,
            0,  # this disk
            0,  # disk with the central directory
            min(entries, _MAX_16),
            min(entries, _MAX_16),
            min(directory_size, _MAX_32),
            min(directory_offset, _MAX_32),
            len(comment),
        )
        + comment
    )


class ZipWriter:
    """Produce a ZIP archive piece by piece; the caller sends the returned bytes.

    Protocol, per entry: send ``local_header(...)``, then send exactly ``size`` bytes of
    file data, reporting each chunk with ``data_written(len(chunk))``. An entry is complete
    once its declared size has been reported; the next ``local_header`` or ``finish`` raises
    ``RuntimeError`` if it is not. After the last entry send ``finish()``.

    Example::

        writer = ZipWriter()
        await send(writer.local_header("a.jpg", size=len(data), crc32=zlib.crc32(data),
                                       modified=taken_at))
        await send(data)
        writer.data_written(len(data))
        await send(writer.finish())
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._names: set[bytes] = set()
        self._offset = 0
        self._remaining = 0
        self._finished = False

    @property
    def offset(self) -> int:
        """Bytes emitted so far: headers returned plus data reported."""
        return self._offset

    @property
    def entries(self) -> int:
        """Number of entries started so far."""
        return len(self._entries)

    def local_header(self, name: str, *, size: int, crc32: int, modified: datetime) -> bytes:
        """Start a STORED entry and return its local file header.

        Accepts an already sanitised, unique ``name`` (stored as UTF-8), the exact data
        ``size`` in bytes, the data's ``crc32`` (as from ``zlib.crc32``) and its ``modified``
        time (naive means UTC; clamped to the MS-DOS range 1980-2107, 2-second resolution).

        Raises:
            ValueError: empty, directory-like, over-long or duplicate name; size or CRC-32
                out of range.
            RuntimeError: the previous entry still expects data, or the archive is finished.
        """
        self._check_open()
        encoded = _encode_name(name)
        if encoded in self._names:
            raise ValueError(f"duplicate entry name {name!r}")
        if not 0 <= size <= _MAX_64:
            raise ValueError(f"entry size {size} is outside 0..2**64-1")
        if not 0 <= crc32 <= _MAX_32:
            raise ValueError(f"CRC-32 {crc32} is outside 0..2**32-1")
        dos_time, dos_date = _dos_timestamp(modified)
        entry = _Entry(
            name=encoded,
            flags=0 if name.isascii() else _FLAG_UTF8,
            dos_time=dos_time,
            dos_date=dos_date,
            crc32=crc32,
            size=size,
            offset=self._offset,
        )
        header = _local_record(entry)
        self._entries.append(entry)
        self._names.add(encoded)
        self._offset += len(header)
        self._remaining = size
        return header

    def data_written(self, n: int) -> None:
        """Record that ``n`` bytes of the current entry's data have been sent.

        Raises:
            ValueError: ``n`` is negative or exceeds what the current entry still expects
                (this includes any data when no entry is open).
        """
        if n < 0:
            raise ValueError(f"byte count must not be negative, got {n}")
        if n > self._remaining:
            raise ValueError(
                f"{n} bytes reported but the current entry expects only {self._remaining} more"
            )
        self._remaining -= n
        self._offset += n

    def finish(self, comment: bytes = b"") -> bytes:
        """Return the central directory and end records; the writer is then closed.

        Raises:
            ValueError: the comment is over 65,535 bytes or contains the end record signature.
            RuntimeError: the last entry still expects data, or ``finish`` was already called.
        """
        self._check_open()
        _check_comment(comment)
        directory = b"".join(_central_record(entry) for entry in self._entries)
        trailer = directory + _end_records(
            entries=len(self._entries),
            directory_offset=self._offset,
            directory_size=len(directory),
            comment=comment,
        )
        self._finished = True
        self._offset += len(trailer)
        return trailer

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("the archive is already finished")
        if self._remaining:
            current = self._entries[-1].name.decode("utf-8")
            raise RuntimeError(f"entry {current!r} still expects {self._remaining} bytes of data")


def archive_size(entries: Iterable[tuple[str, int]], *, comment: bytes = b"") -> int:
    """Return the exact size in bytes of the archive ZipWriter produces for these entries.

    Accepts ``(name, size)`` pairs in archive order; consumes the iterable once. Timestamps
    and CRC-32 values do not affect the size.

    Raises:
        ValueError: for the same names, sizes and comments that ZipWriter rejects.
    """
    _check_comment(comment)
    names: set[bytes] = set()
    offset = 0
    directory_size = 0
    count = 0
    for name, size in entries:
        encoded = _encode_name(name)
        if encoded in names:
            raise ValueError(f"duplicate entry name {name!r}")
        if not 0 <= size <= _MAX_64:
            raise ValueError(f"entry size {size} is outside 0..2**64-1")
        names.add(encoded)
        count += 1
        local_length = _LOCAL_HEADER.size + len(encoded) + len(_local_zip64_extra(size))
        central_extra = _central_zip64_extra(size, offset)
        directory_size += _CENTRAL_HEADER.size + len(encoded) + len(central_extra)
        offset += local_length + size
    end = _end_records(
        entries=count, directory_offset=offset, directory_size=directory_size, comment=comment
    )
    return offset + directory_size + len(end)
