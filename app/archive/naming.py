"""Safe, unique ZIP entry names, the download's file name and its Content-Disposition header.

Image names come from the upstream API and are treated as hostile: a name such as
``../../etc/passwd.jpg`` must not become a path inside the archive ("zip slip"), and a name
that Windows or macOS cannot create makes Explorer call the whole archive invalid. Every
name is therefore reduced to one flat, portable file name, and names that would collide on a
case-insensitive file system are renamed deterministically (``name (1).jpg``), so the same
order always yields the same names.

The download's own file name (from the order's name) follows the same rules, kept shorter
(`MAX_DOWNLOAD_NAME_BYTES`), with path separators and other Windows-illegal characters
replaced by ``_`` rather than dropped, so that "Smith/Jones" stays readable. Its ASCII
fallback for old clients (``filename=``, which ``curl -OJ`` uses) is transliterated with
`anyascii` ("Demo order — Café" → "Demo order - Cafe"), because replacing every non-ASCII
character with ``_`` made names unreadable in any language but English.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from urllib.parse import quote

from anyascii import anyascii

__all__ = [
    "PREVIEW_MARK",
    "address_stem",
    "archive_filename",
    "content_disposition",
    "extension_for_format",
    "numbered_names",
    "photo_title",
    "safe_entry_names",
]

# Most file systems limit one path component to 255 bytes (ext4, APFS in UTF-8).
MAX_NAME_BYTES = 255
# The download's name leaves room for what browsers and curl add while saving (" (1)",
# ".crdownload", ".part") and keeps the Content-Disposition header small (at most ~600 bytes
# once percent-encoded, next to a fallback of the same length in ASCII).
MAX_DOWNLOAD_NAME_BYTES = 150
# Used when neither the order's name nor its id leaves any usable character.
FALLBACK_DOWNLOAD_STEM = "download"
# Added to the name of an archive of free previews, so that nobody mistakes it for the
# full-quality photos (both are otherwise the same order under the same name).
PREVIEW_MARK = " (preview)"

# Used when neither the image name nor its id leaves any usable character.
FALLBACK_STEM = "image"

# Upstream names often carry the extension of the original upload; the delivered format
# may differ, so a known image extension is replaced rather than doubled ("a.png.jpg").
IMAGE_EXTENSIONS = frozenset(
    {
        "jpg", "jpeg", "jpe", "jfif", "png", "apng", "gif", "webp", "avif", "jxl", "tif",
        "tiff", "bmp", "heic", "heif", "dng", "raw", "cr2", "cr3", "nef", "arw", "orf",
        "rw2", "raf", "srw", "pef",
    }
)  # fmt: skip

_FORMAT_EXTENSIONS = {
    "jpeg": "jpg",
    "jpg": "jpg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
    "jxl": "jxl",
}

# Windows opens these as devices whatever extension follows; the superscript digits are
# reserved as well.
_RESERVED_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "123456789\u00b9\u00b2\u00b3"}
)

_WINDOWS_ILLEGAL = frozenset('<>:"/\\|?*')
# Bidirectional controls can disguise an extension ("photo\u202egpj.exe"); line and
# paragraph separators break listings. Both are invisible in a file name anyway.
_INVISIBLE_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)
_STRIPPED_AT_ENDS = " ."
_EXTENSION_PATTERN = re.compile(r"[A-Za-z0-9]{1,16}")
_FALLBACK_UNSAFE = frozenset("%") | _WINDOWS_ILLEGAL
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def extension_for_format(fmt: str) -> str:
    """Return the file extension (without dot) for a delivered image format.

    Accepts ``jpeg``/``jpg``, ``png``, ``webp``, ``avif`` or ``jxl`` in any case.

    Raises:
        ValueError: the format is not one the service delivers.
    """
    try:
        return _FORMAT_EXTENSIONS[fmt.strip().lower()]
    except KeyError:
        raise ValueError(f"unsupported image format {fmt!r}") from None


def _keep_character(char: str) -> bool:
    if char in _WINDOWS_ILLEGAL or char in _INVISIBLE_CONTROLS:
        return False
    # Cc covers C0, DEL and C1; Cs (lone surrogates) cannot be encoded as UTF-8.
    return unicodedata.category(char) not in {"Cc", "Cs"}


def _clean_stem(raw: str) -> str:
    """Reduce one upstream name to a flat stem with no known image extension."""
    components = re.split(r"[/\\]", unicodedata.normalize("NFC", raw))
    meaningful = [part for part in components if part.strip(_STRIPPED_AT_ENDS)]
    last = meaningful[-1] if meaningful else ""
    kept = "".join(char for char in last if _keep_character(char))
    stem = unicodedata.normalize("NFC", kept).strip(_STRIPPED_AT_ENDS)
    base, dot, suffix = stem.rpartition(".")
    if dot and suffix.lower() in IMAGE_EXTENSIONS:
        stem = base.rstrip(_STRIPPED_AT_ENDS)
    return stem


def _avoid_device_name(stem: str) -> str:
    first, dot, rest = stem.partition(".")
    if first.rstrip(" ").upper() in _RESERVED_DEVICES:
        return f"{first}_{dot}{rest}"
    return stem


def _fit(stem: str, tail: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Return ``stem + tail`` within `max_bytes`, or "" if no part of the stem is left.

    The stem is shortened on a character boundary; the tail is always kept whole.
    """
    stem = _avoid_device_name(stem)
    budget = max_bytes - len(tail.encode("utf-8"))
    limit = budget
    while len(stem.encode("utf-8")) > budget:
        cut = stem.encode("utf-8")[:limit].decode("utf-8", "ignore")
        # A cut can split a combining sequence, and normalising it again can change its
        # length, so shrink the limit until the normalised result fits.
        stem = _avoid_device_name(unicodedata.normalize("NFC", cut).rstrip(_STRIPPED_AT_ENDS))
        limit -= 1
    return stem + tail if stem else ""


def _base_name(image_name: str | None, image_id: str, suffix: str) -> str:
    for candidate in (image_name or "", image_id, FALLBACK_STEM):
        name = _fit(_clean_stem(candidate), suffix)
        if name:
            return name
    raise AssertionError("the fallback stem always yields a name")  # pragma: no cover


def safe_entry_names(
    items: Sequence[tuple[str | None, str]],
    *,
    extension: str,
    reserved: Collection[str] = (),
) -> list[str]:
    """Return one safe, unique archive entry name per ``(image_name, image_id)`` item.

    Names are NFC, flat (last path component only), free of control and Windows-illegal
    characters, without leading dots or spaces or trailing dots or spaces, never a Windows
    device name, at most 255 UTF-8 bytes, and end in ``.{extension}``. A name left empty
    falls back to the sanitised image id. Names equal when case-folded are renamed
    ``stem (n).ext`` in input order, avoiding every original name and every name in
    ``reserved`` (compared case-insensitively as well). The result is in input order and
    depends only on the arguments.

    Raises:
        ValueError: ``extension`` is not 1-16 ASCII letters or digits (no dot).
    """
    if not _EXTENSION_PATTERN.fullmatch(extension):
        raise ValueError(f"extension must be 1-16 ASCII letters or digits, got {extension!r}")
    suffix = "." + extension.lower()
    bases = [_base_name(name, image_id, suffix) for name, image_id in items]
    reserved_keys = {name.casefold() for name in reserved}
    original_keys = {base.casefold() for base in bases}
    used: set[str] = set()
    next_number: dict[str, int] = {}
    result: list[str] = []
    for base in bases:
        key = base.casefold()
        if key in used or key in reserved_keys:
            stem = base[: -len(suffix)]
            number = next_number.get(key, 1)
            while True:
                candidate = _fit(stem, f" ({number}){suffix}")
                candidate_key = candidate.casefold()
                number += 1
                if not any(candidate_key in keys for keys in (used, reserved_keys, original_keys)):
                    break
            next_number[key] = number
            base, key = candidate, candidate_key
        used.add(key)
        result.append(base)
    return result


# Longest address stem: leaves room for the number and the extension, and stays readable.
MAX_ADDRESS_CHARS = 80


def numbered_names(items: Sequence[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    """``(name, image_id)`` items renamed ``01 - Kitchen`` in their order (the shot order):
    the number zero-padded to the count (at least two digits), then the photo's title, if
    it has one. The result still goes through `safe_entry_names`."""
    width = max(2, len(str(len(items))))
    named: list[tuple[str | None, str]] = []
    for number, (image_name, image_id) in enumerate(items, start=1):
        title = photo_title(image_name)
        named.append(
            (f"{number:0{width}d} - {title}" if title else f"{number:0{width}d}", image_id)
        )
    return named


def address_stem(order_name: str | None, order_id: str) -> str:
    """The order's name as a lower-case ASCII slug (``12 Harbour View`` → ``12-harbour-view``),
    or ``order-<first 8 characters of its id>`` when nothing of the name is left."""
    text = anyascii(unicodedata.normalize("NFC", _LONE_SURROGATE.sub("", order_name or "")))
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:MAX_ADDRESS_CHARS].strip("-")
    if slug:
        return slug
    fallback = re.sub(r"[^a-z0-9]+", "-", order_id.lower()[:8]).strip("-")
    return f"order-{fallback}" if fallback else "order"


def _download_stem(raw: str) -> str:
    """One flat name from any text: controls and invisible characters dropped, path
    separators and other Windows-illegal characters replaced by ``_``, no dots or spaces at
    the ends, lone surrogates replaced by U+FFFD."""
    text = unicodedata.normalize("NFC", _LONE_SURROGATE.sub("\ufffd", raw))
    kept = "".join(
        "_" if char in _WINDOWS_ILLEGAL else char
        for char in text
        if char in _WINDOWS_ILLEGAL or _keep_character(char)
    )
    return unicodedata.normalize("NFC", kept).strip(_STRIPPED_AT_ENDS)


def archive_filename(
    name: str | None, fallback: str, *, preview: bool = False, variants: Sequence[str] = ()
) -> str:
    """The file name of an order's archive: ``<name>.zip``, made safe.

    `name` (the order's name) is cleaned like an entry name (see `_download_stem`) and cut
    on a character boundary to `MAX_DOWNLOAD_NAME_BYTES` with its ``.zip``; when nothing is
    left of it, `fallback` (the order id) is used the same way, then ``download.zip``. An
    archive of previews (`preview`) is ``<name> (preview).zip``; one of sizes (`variants`,
    preset names) says which: ``<name> (mls, print).zip``, so two size sets of one order do
    not land on the same file. The mark is kept whole when a long name is cut.
    """
    marks = [_clean_stem(v) for v in variants if _clean_stem(v)]
    if preview:
        marks.insert(0, PREVIEW_MARK.strip(" ()"))
    tails = [(f" ({', '.join(marks)})" if marks else "") + ".zip"]
    if marks:  # sizes whose names leave no room for the order's: the preview mark alone
        tails.append((PREVIEW_MARK if preview else "") + ".zip")
    for tail in tails:
        for candidate in (name or "", fallback, FALLBACK_DOWNLOAD_STEM):
            fitted = _fit(_download_stem(candidate), tail, max_bytes=MAX_DOWNLOAD_NAME_BYTES)
            if fitted:
                return fitted
    raise AssertionError("the fallback stem always yields a name")  # pragma: no cover


def photo_title(image_name: str | None) -> str:
    """The name a person knows a photo by: its file name without folders or image extension
    (``shoots/garden.JPG`` → ``garden``); "" when nothing usable is left."""
    return _clean_stem(image_name or "")


def _safe_download_name(filename: str) -> str:
    """`filename` under the rules of `archive_filename`, keeping a short extension."""
    stem, dot, extension = filename.rpartition(".")
    if not dot or not _EXTENSION_PATTERN.fullmatch(extension):
        stem, extension = filename, ""
    tail = f".{extension}" if extension else ""
    for candidate in (stem, FALLBACK_DOWNLOAD_STEM):
        fitted = _fit(_download_stem(candidate), tail, max_bytes=MAX_DOWNLOAD_NAME_BYTES)
        if fitted:
            return fitted
    raise AssertionError("the fallback stem always yields a name")  # pragma: no cover


def _ascii_fallback(name: str) -> str:
    """Printable ASCII for ``filename=``: transliterated, then anything unsafe as ``_``."""
    text = anyascii(name)
    chars = [c if " " <= c <= "~" and c not in _FALLBACK_UNSAFE else "_" for c in text]
    return "".join(chars)[:MAX_DOWNLOAD_NAME_BYTES].strip(_STRIPPED_AT_ENDS) or "download"


def content_disposition(filename: str) -> str:
    """Return an RFC 6266 ``attachment`` header value for `filename`.

    Whatever it is given, the name sent follows the rules of `archive_filename` (at most
    `MAX_DOWNLOAD_NAME_BYTES`, no path separators, controls or bidirectional overrides).
    The exact name travels UTF-8 percent-encoded in ``filename*`` (RFC 8187); the quoted
    ``filename`` is an ASCII fallback for clients that ignore it, transliterated with
    `anyascii` (``—`` → ``-``, ``é`` → ``e``, ``Дом`` → ``Dom``), with quotes, backslashes,
    slashes, percent signs and anything else not printable ASCII replaced by ``_``.
    """
    exact = _safe_download_name(filename)
    encoded = quote(exact, safe="!#$&+^`|~", encoding="utf-8", errors="strict")
    fallback = _ascii_fallback(exact)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
