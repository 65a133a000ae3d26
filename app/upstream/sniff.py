"""What kind of image a file is, by its first bytes (magic numbers), whatever its name says.

Accepted are the formats Autoenhance takes as uploads: JPEG, PNG, WebP, TIFF, HEIC/HEIF and
AVIF, and the camera RAW formats its official samples list (DNG, CR2, CR3, NEF, NRW, ARW, SRF,
SR2, RAF). Most RAW formats are TIFF containers, so their header *is* a TIFF header: a file
starting like TIFF is accepted as TIFF-based, and its extension (when it names one of those RAW
formats) only picks the more precise content type. CR3, HEIC and AVIF are ISO-BMFF files,
told apart by the brands of their `ftyp` box; Fujifilm RAF has its own signature.

Why not a library: general detectors (filetype, puremagic, libmagic) know hundreds of formats
we must refuse, spell RAW types inconsistently or not at all (CR3 and RAF are missing from some)
and would add a dependency, a C library in libmagic's case, for twenty lines of signatures that
are fixed by their specifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

# Bytes of a file's start that `sniff_image` needs: the longest check reads an ftyp box.
SNIFF_BYTES = 64


@dataclass(frozen=True, slots=True)
class ImageKind:
    """A recognised image format and the content type to declare when uploading it."""

    name: str
    content_type: str


JPEG = ImageKind("jpeg", "image/jpeg")
PNG = ImageKind("png", "image/png")
WEBP = ImageKind("webp", "image/webp")
TIFF = ImageKind("tiff", "image/tiff")
HEIC = ImageKind("heic", "image/heic")
AVIF = ImageKind("avif", "image/avif")
CR3 = ImageKind("cr3", "image/x-canon-cr3")
RAF = ImageKind("raf", "image/x-fuji-raf")

# RAW formats that are TIFF containers, by extension, with their usual content types.
TIFF_BASED_RAW = {
    ".dng": ImageKind("dng", "image/x-adobe-dng"),
    ".cr2": ImageKind("cr2", "image/x-canon-cr2"),
    ".nef": ImageKind("nef", "image/x-nikon-nef"),
    ".nrw": ImageKind("nrw", "image/x-nikon-nrw"),
    ".arw": ImageKind("arw", "image/x-sony-arw"),
    ".srf": ImageKind("srf", "image/x-sony-srf"),
    ".sr2": ImageKind("sr2", "image/x-sony-sr2"),
}

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def sniff_image(head: bytes, *, filename: str | None = None) -> ImageKind | None:
    """The image format `head` (a file's first `SNIFF_BYTES` or more) starts like, or None.

    `filename` is only consulted to name a TIFF-based RAW format precisely; it never makes a
    non-image acceptable.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return RAF
    if head[:4] in _TIFF_MAGIC:
        suffix = PurePath(filename).suffix.lower() if filename else ""
        return TIFF_BASED_RAW.get(suffix, TIFF)
    return _sniff_iso_bmff(head)


def _sniff_iso_bmff(head: bytes) -> ImageKind | None:
    """HEIC, AVIF or CR3 from the `ftyp` box: size, 'ftyp', major brand, version, brands."""
    if head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[:4], "big")
    if box_size < 16:
        return None
    end = min(box_size, len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if head[8:12] == b"crx ":
        return CR3
    # AVIF first: AVIF files also list the generic HEIF brand mif1.
    if brands & _AVIF_BRANDS:
        return AVIF
    if brands & _HEIF_BRANDS:
        return HEIC
    return None


# The last chunk of a PNG: IEND, with no data, and its CRC.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JXL_CODESTREAM = b"\xff\x0a"
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_AVIF_NEEDS = frozenset({b"meta", b"mdat"})
_JXL_CODESTREAM_BOXES = frozenset({b"jxlc", b"jxlp"})
# A box header: 32-bit size and type, then a 64-bit size when the first says 1.
_BOX_HEADER = 16
# Compared against a chunk to tell padding from image data at memcmp speed.
_ZEROS = bytes(256 * 1024)
# The block of trailing NULs `_data_end` strips byte by byte, once it found the block holding
# the data's end: `bytes.rstrip` tests each byte with a call of its own.
_STRIP_BLOCK = 4096


def _data_end(chunk: bytes | memoryview) -> int:
    """The length of `chunk` without its trailing NULs, without copying it: the NULs are
    passed a `_ZEROS` at a time, then a `_STRIP_BLOCK`, by memcmp, and only the one block
    holding the data's end is stripped (a padded synthetic image ends in megabytes of NULs)."""
    view = memoryview(chunk)
    end = len(view)
    for block in (len(_ZEROS), _STRIP_BLOCK):
        while end and _ZEROS.startswith(view[max(0, end - block) : end]):
            end = max(0, end - block)
    start = max(0, end - _STRIP_BLOCK)
    return start + len(bytes(view[start:end]).rstrip(b"\0"))


@dataclass(frozen=True, slots=True)
class BodyProblem:
    """Why a body is not the image asked for; `cut_short` when it is its start only."""

    reason: str
    cut_short: bool = False


class DeliveredImage:
    """Checks, as its bytes stream by, that a body is one whole image of the format asked for.

    Feed every chunk to `feed`, then ask `problem()`. Only the first `SNIFF_BYTES`, the last
    few bytes and, for box-structured formats (AVIF, the JPEG XL container), one box header
    at a time are kept, so the check costs constant memory whatever the image's size.

    What "whole" means per format, from each format's own framing rather than the transport
    (a body without Content-Length that the connection cut short looks complete to HTTP):
    JPEG ends with its EOI marker (zero bytes after it are tolerated: they are padding, not
    image); PNG ends with its IEND chunk; WebP holds at least the length its RIFF header
    declares; AVIF and the JPEG XL container are a run of boxes ending exactly at the body's
    end. A bare JPEG XL codestream declares no length, so only its signature is checked.
    """

    def __init__(self, image_format: str) -> None:
        self.format = image_format.strip().lower()
        self.size = 0
        self._head = bytearray()
        self._tail = b""
        self._end_before_zeros = b""  # last two bytes before any trailing NULs
        self._next_box = 0
        self._box_header = bytearray()
        self._boxes_ok = True
        self._open_box = False  # a box of size 0 runs to the end of the body
        self._box_types: set[bytes] = set()

    def feed(self, chunk: bytes | memoryview) -> None:
        """Take the next chunk of the body (bytes, or a view of a buffer)."""
        if not chunk:
            return
        if len(self._head) < SNIFF_BYTES:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
        # Only the ends of a chunk are ever concatenated: no copy of the image passes here.
        self._tail = (self._tail + chunk[-len(_PNG_END) :])[-len(_PNG_END) :]
        end = len(chunk) if chunk[-1] else _data_end(chunk)
        if end:
            self._end_before_zeros = (self._end_before_zeros + chunk[max(0, end - 2) : end])[-2:]
        if self.format in ("avif", "jxl"):
            self._walk_boxes(chunk)
        self.size += len(chunk)

    def _walk_boxes(self, chunk: bytes | memoryview) -> None:
        start = self.size
        end = start + len(chunk)
        while self._boxes_ok and not self._open_box and self._next_box < end:
            offset = self._next_box - start
            if offset >= 0:
                self._box_header = bytearray()
            take = chunk[max(offset, 0) : max(offset, 0) + _BOX_HEADER - len(self._box_header)]
            self._box_header += take
            if len(self._box_header) < 8:
                return
            size = int.from_bytes(self._box_header[:4], "big")
            self._box_types.add(bytes(self._box_header[4:8]))
            if size == 1:
                if len(self._box_header) < _BOX_HEADER:
                    if max(offset, 0) + len(take) >= len(chunk):
                        return  # the 64-bit size continues in the next chunk
                size = int.from_bytes(self._box_header[8:16], "big")
            if size == 0:
                self._open_box = True
                return
            if size < 8:
                self._boxes_ok = False
                return
            self._next_box += size
            self._box_header = bytearray()

    def problem(self) -> BodyProblem | None:
        """None when the body is a whole image of the format; else what is wrong with it."""
        if self.size == 0:
            return BodyProblem("the answer had an empty body")
        head = bytes(self._head)
        if not matches_format(head, self.format):
            return BodyProblem(
                f"the answer was not a {self.format.upper()} image but {_describe(head)}"
            )
        if not self._complete(head):
            return BodyProblem(
                f"the {self.format.upper()} image ends early ({self.size} bytes arrived)",
                cut_short=True,
            )
        return None

    def _complete(self, head: bytes) -> bool:
        if self.format in ("jpeg", "jpg"):
            return self._end_before_zeros == b"\xff\xd9"
        if self.format == "png":
            return self._tail == _PNG_END
        if self.format == "webp":
            return self.size >= int.from_bytes(head[4:8], "little") + 8
        if self.format == "jxl" and head.startswith(_JXL_CODESTREAM):
            return True
        # A body cut exactly between two top-level boxes still ends on a box boundary, so
        # the boxes an image cannot do without must be there too: AVIF's `meta` (what the
        # image is) and `mdat` (its pixels), the JPEG XL container's codestream box(es).
        if self.format == "avif" and not _AVIF_NEEDS <= self._box_types:
            return False
        if self.format == "jxl" and not self._box_types & _JXL_CODESTREAM_BOXES:
            return False
        return self._boxes_ok and (self._open_box or self._next_box == self.size)


def matches_format(head: bytes, image_format: str) -> bool:
    """Whether `head` (a body's first `SNIFF_BYTES`) starts like an image of `image_format`.

    Formats are those the service asks Autoenhance for: jpeg (or jpg), png, webp, avif, jxl.
    """
    image_format = image_format.strip().lower()
    if image_format == "jxl":
        return head.startswith((_JXL_CODESTREAM, _JXL_CONTAINER))
    kind = sniff_image(head)
    expected = {"jpg": JPEG, "jpeg": JPEG, "png": PNG, "webp": WEBP, "avif": AVIF}
    return kind is not None and kind == expected.get(image_format)


def _describe(head: bytes) -> str:
    """What a body that is not the expected image looks like, for the download report."""
    kind = sniff_image(head)
    if kind is not None:
        return f"a {kind.name.upper()} image"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")):
        return "an HTML page"
    if text.startswith((b"{", b"[")):
        return "JSON"
    if text.startswith(b"<"):
        return "markup (XML or HTML)"
    return "unrecognised bytes"
