"""Receive uploaded images from a multipart body, in bounded memory, checking as they arrive.

Why not Starlette's `request.form()`: its `max_part_size` bounds only plain fields, not files;
a file part is spooled to a temporary file of whatever size the client sends, so a 10 GB
"photo" would fill the disk before a route could refuse it, and its content would be looked at
only afterwards. Here python-multipart's streaming parser is fed `request.stream()` directly:
every file's bytes are counted as they arrive and the upload is refused the moment one file
passes `max_bytes` (nothing more is read or kept), the moment a file too many starts, or as
soon as a file's first bytes show it is not an image (`app.upstream.sniff`). Memory holds at
most `spool_memory_bytes` of each accepted file (the rest is on disk, bounded by
`max_files * max_bytes`) plus one network chunk.

When a refusal leaves part of the body unread, the server (uvicorn) discards the rest after
the error response is sent, so the client reads a clean 413/415 instead of a reset connection.

Exceptions (all `UploadError`, each with the `filename` it concerns when there is one):

UploadError
├── NotMultipart      the body is not multipart/form-data (415)
├── MalformedUpload   broken multipart, an unexpected file field, an oversized text field (400)
├── NoFiles           no file in the `files` field (400)
├── TooManyFiles      more than `max_files` files (413)
├── FileTooLarge      one file over `max_bytes` (413)
└── NotAnImage        a file whose first bytes are no supported image format (415)
"""

from __future__ import annotations

import contextlib
import tempfile
import unicodedata
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.upstream.sniff import SNIFF_BYTES, ImageKind, sniff_image

# Plain (non-file) fields: how many and how long; only `name` is used, the rest ignored.
MAX_TEXT_FIELDS = 16
MAX_TEXT_FIELD_BYTES = 4096
# Longest file name kept for display and as the upstream image name.
MAX_FILENAME_CHARS = 200


class UploadError(Exception):
    """Base class of every refusal of an upload."""

    def __init__(self, message: str, *, filename: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename


class NotMultipart(UploadError):
    pass


class MalformedUpload(UploadError):
    pass


class NoFiles(UploadError):
    pass


class TooManyFiles(UploadError):
    pass


class FileTooLarge(UploadError):
    pass


class NotAnImage(UploadError):
    pass


@dataclass
class ReceivedFile:
    """One accepted file: its cleaned name, format, size and spooled bytes."""

    filename: str
    kind: ImageKind
    size: int
    spool: IO[bytes] = field(repr=False)

    def read(self) -> bytes:
        """The whole file (blocking: call it from a worker thread)."""
        self.spool.seek(0)
        return self.spool.read()


@dataclass
class ReceivedUpload:
    """Every accepted file, in the order sent, and the plain fields."""

    files: list[ReceivedFile]
    fields: dict[str, str]

    def close(self) -> None:
        for received in self.files:
            received.spool.close()


def clean_filename(raw: str, *, index: int) -> str:
    """A display-safe file name: the last path component, no control characters, bounded."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = unicodedata.normalize("NFC", name)[:MAX_FILENAME_CHARS]
    return name if name.strip(". ") else f"image-{index}"


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    field_name: str = ""
    filename: str | None = None
    text: bytearray = field(default_factory=bytearray)
    spool: IO[bytes] | None = None
    head: bytearray = field(default_factory=bytearray)
    kind: ImageKind | None = None
    size: int = 0


class _Receiver:
    """python-multipart callbacks that enforce the limits while the body is parsed."""

    def __init__(
        self, *, field_name: str, max_files: int, max_bytes: int, spool_dir: Path, memory: int
    ) -> None:
        self.field_name = field_name
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.spool_dir = spool_dir
        self.memory = memory
        self.files: list[ReceivedFile] = []
        self.fields: dict[str, str] = {}
        self.pending: list[tuple[IO[bytes], bytes]] = []
        self._opened: list[IO[bytes]] = []
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._file_parts = 0

    # Header callbacks -----------------------------------------------------------------------

    def on_part_begin(self) -> None:
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._part.headers.append((self._header_name.lower(), self._header_value))
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        part = self._part
        disposition = next((v for k, v in part.headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        part.field_name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.fields) >= MAX_TEXT_FIELDS:
                raise MalformedUpload(f"At most {MAX_TEXT_FIELDS} text fields are accepted.")
            return
        if part.field_name != self.field_name:
            raise MalformedUpload(
                f"Files go in the {self.field_name!r} field (got one in {part.field_name!r})."
            )
        self._file_parts += 1
        raw_name = options[b"filename"].decode("utf-8", "replace")
        part.filename = clean_filename(raw_name, index=self._file_parts) if raw_name else ""

    # Body callbacks --------------------------------------------------------------------------

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        chunk = data[start:end]
        if part.filename is None:
            part.text += chunk
            if len(part.text) > MAX_TEXT_FIELD_BYTES:
                raise MalformedUpload(
                    f"The field {part.field_name!r} is longer than {MAX_TEXT_FIELD_BYTES} bytes."
                )
            return
        if not chunk:
            return
        if part.spool is None:
            self._start_file(part)
        part.size += len(chunk)
        if part.size > self.max_bytes:
            raise FileTooLarge(
                f"{part.filename} is larger than the limit of {self.max_bytes} bytes per file.",
                filename=part.filename,
            )
        if part.kind is None:
            part.head += chunk[: SNIFF_BYTES - len(part.head)]
            if len(part.head) >= SNIFF_BYTES:
                self._check_image(part)
        assert part.spool is not None
        self.pending.append((part.spool, chunk))

    def on_part_end(self) -> None:
        part = self._part
        if part.filename is None:
            self.fields[part.field_name] = part.text.decode("utf-8", "replace")
            return
        if part.spool is None:
            if not part.filename:
                return  # a browser's empty file input: no file chosen
            self._start_file(part)
        if part.kind is None:
            self._check_image(part)
        assert part.spool is not None and part.kind is not None
        self.files.append(
            ReceivedFile(filename=part.filename, kind=part.kind, size=part.size, spool=part.spool)
        )

    def _start_file(self, part: _Part) -> None:
        if len(self.files) >= self.max_files:
            raise TooManyFiles(f"At most {self.max_files} files can be sent at once.")
        part.filename = part.filename or f"image-{self._file_parts}"
        spool = tempfile.SpooledTemporaryFile(max_size=self.memory, dir=str(self.spool_dir))
        self._opened.append(spool)
        part.spool = spool

    def _check_image(self, part: _Part) -> None:
        kind = sniff_image(bytes(part.head), filename=part.filename)
        if kind is None:
            raise NotAnImage(
                f"{part.filename} is not an image this service accepts (JPEG, PNG, WebP, TIFF, "
                "HEIC, AVIF or camera RAW), whatever its extension says.",
                filename=part.filename,
            )
        part.kind = kind

    def flush(self) -> None:
        """Write what arrived to the spool files (blocking; run in a worker thread)."""
        for spool, chunk in self.pending:
            spool.write(chunk)
        self.pending.clear()

    def unfinished(self) -> bool:
        """Whether a file part was started but the body ended before it did."""
        kept = {id(received.spool) for received in self.files}
        return any(id(spool) not in kept for spool in self._opened)

    def discard(self) -> None:
        for spool in self._opened:
            with contextlib.suppress(OSError):
                spool.close()


async def receive_uploads(
    chunks: AsyncIterable[bytes],
    content_type: str | None,
    *,
    field_name: str = "files",
    max_files: int,
    max_bytes: int,
    spool_dir: Path,
    spool_memory_bytes: int,
) -> ReceivedUpload:
    """Parse a multipart body, keeping the files of `field_name` that pass every check.

    The caller owns the result and must `close()` it. On any refusal every spooled file is
    closed (and so deleted) before the exception leaves.

    Raises:
        UploadError: see the module docstring for the cases.
    """
    mime, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise NotMultipart(f"Send the images as multipart/form-data in the {field_name!r} field.")
    await anyio.Path(spool_dir).mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(
        field_name=field_name,
        max_files=max_files,
        max_bytes=max_bytes,
        spool_dir=spool_dir,
        memory=spool_memory_bytes,
    )
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
        },
    )
    try:
        async for chunk in chunks:
            parser.write(chunk)
            if receiver.pending:
                await anyio.to_thread.run_sync(receiver.flush)
        parser.finalize()
    except FormParserError as exc:
        receiver.discard()
        raise MalformedUpload("The multipart body is malformed.") from exc
    except BaseException:
        receiver.discard()
        raise
    if receiver.unfinished():
        receiver.discard()
        raise MalformedUpload("The multipart body ended in the middle of a file; send it again.")
    if not receiver.files:
        receiver.discard()
        raise NoFiles(f"Send at least one image in the {field_name!r} field.")
    return ReceivedUpload(files=receiver.files, fields=receiver.fields)


@contextlib.contextmanager
def closing_upload(upload: ReceivedUpload) -> Iterator[ReceivedUpload]:
    """Close (and delete) the spooled files when the block ends."""
    try:
        yield upload
    finally:
        upload.close()
