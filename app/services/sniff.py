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
