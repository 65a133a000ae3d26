"""HTTP Range and conditional-request rules (RFC 9110 §13, §14) for an object of known size.

Pure functions, no I/O: `parse_range` turns a `Range` header into byte ranges, and the
`*_matches` helpers evaluate `If-Range` and `If-None-Match`.

Deliberate choices where the RFC leaves room:

* A header that cannot be parsed, uses another unit, holds more than `MAX_RANGES` ranges or a
  range whose last byte precedes its first is **ignored**: the answer is the whole object (200).
* A number too long to be a real offset (more than `MAX_DIGITS` digits) is read as "beyond any
  object": as a first byte it makes that range unsatisfiable, as a last byte it means "to the
  end". No such number is ever converted (a 4,301-digit one would fail Python's `int`).
* Overlapping or adjacent ranges are merged and sorted, so a response never repeats bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

# More ranges than this in one request is abuse, not a download manager: ignored (200).
MAX_RANGES = 16
# 10**19 bytes is 10 EB; a longer number cannot be an offset into a stored archive.
MAX_DIGITS = 19
_HUGE: int = 10**MAX_DIGITS


class Unsatisfiable(Exception):
    """No requested range overlaps the object: answer 416 with `Content-Range: bytes */size`."""


def _number(text: str) -> int | None:
    """A non-negative decimal (huge ones capped to `_HUGE`), or None if it is not one."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text.lstrip("0")) > MAX_DIGITS:
        return _HUGE
    return int(text)


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges `header` asks of an object of `size` bytes, as `(start, end)` pairs with
    `end` exclusive, merged and sorted; None means "ignore the header, send everything".

    Raises:
        Unsatisfiable: the header is valid but no range overlaps the object.
    """
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return None
    wanted: list[tuple[int, int]] = []
    for raw in parts:
        part = raw.strip(" \t")
        first_text, dash, last_text = part.partition("-")
        if not dash:
            return None
        if not first_text:  # suffix: the last N bytes
            length = _number(last_text)
            if length is None:
                return None
            if length > 0 and size > 0:
                wanted.append((max(0, size - length), size))
            continue
        first = _number(first_text)
        if first is None:
            return None
        if last_text:
            last = _number(last_text)
            if last is None or last < first:
                return None
        else:
            last = _HUGE
        if first < size:
            wanted.append((first, min(last, size - 1) + 1))
    if not wanted:
        raise Unsatisfiable
    wanted.sort()
    merged = [wanted[0]]
    for start, end in wanted[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """Whether `If-None-Match` matches `etag` (weak comparison): answer 304."""
    if header is None:
        return False
    tags = _etags(header)
    return "*" in tags or any(_opaque(tag) == _opaque(etag) for tag in tags)


def not_modified_since(header: str | None, last_modified: datetime) -> bool:
    """Whether `If-Modified-Since` says the client's copy is current (answer 304).

    Only consulted without `If-None-Match` (RFC 9110 §13.1.3); an unparseable date is ignored.
    """
    if header is None:
        return False
    try:
        when = parsedate_to_datetime(header.strip())
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _seconds(last_modified) <= _seconds(when)


def if_range_holds(header: str | None, *, etag: str, last_modified: datetime) -> bool:
    """Whether the `Range` may be honoured under `If-Range` (absent: yes).

    An entity tag must match strongly; a date must equal `Last-Modified` exactly (a date is a
    weak validator, so anything else sends the whole object).
    """
    if header is None:
        return True
    header = header.strip()
    if header.startswith(('"', "W/")):
        return not header.startswith("W/") and header == etag
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _seconds(when) == _seconds(last_modified)


def _seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def http_date(moment: datetime) -> str:
    """`moment` (aware) as an HTTP date: whole seconds, GMT."""
    return format_datetime(_seconds(moment), usegmt=True)
