"""The HTTP rules of every archive answer: Range, If-Range, If-None-Match, and what a 304 keeps.

One module reads these headers, so a streamed, resumed, cached, `stream=false` or job answer
(and a thumbnail's `If-None-Match`) treats the same header the same way. Pure functions, no I/O:
`Conditions.from_headers` takes a request's headers, `Conditions.wanted` the one byte range to
honour, `ByteRange.span` places it in an object of known size.

Deliberate choices where RFC 9110 leaves room, the same for every answer:

* **Ignored (200, the whole archive):** a `Range` that cannot be parsed, names another unit,
  holds a number that is not plain ASCII digits (`str.isdigit` accepts `²`, `int` refuses it),
  a range whose last byte precedes its first, or **several ranges**. Every client that resumes
  or splits a download asks one range per request; a multipart answer would serve nobody and
  cost a second code path (RFC 9110 §14.2 lets a server ignore `Range`).
* **416** only when the size is known and the range starts at or past the end (or is an empty
  suffix `bytes=-0`). Without a known size (a fresh stream) the `Range` is ignored.
* A number too long to be a real offset (more than `MAX_DIGITS` digits) is "beyond any
  object": as a first byte it is unsatisfiable, as a last byte it means "to the end". No such
  number is ever converted (a 4,301-digit one would fail Python's `int`).
* **`If-Range` holds only for the current strong entity tag.** A date never holds: the
  archive's `Last-Modified` is the order's `last_updated_at` to the second, which two versions
  of an archive can share, so it is not a strong validator (RFC 9110 §8.8.2.2, §13.1.5), and a
  date cannot say which version a partial file holds. The answer is the whole archive (200).
* **`If-None-Match`** compares weakly (`W/` ignored, `*` matches); a match is a 304.
  **`If-Modified-Since` is not evaluated**, for the same reason a date does not validate a
  range: it could call a changed archive "not modified".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal

from app.core.errors import AppError

# 10**19 bytes is 10 EB; a longer number cannot be an offset into an archive.
MAX_DIGITS = 19
_HUGE: int = 10**MAX_DIGITS
_DIGITS = frozenset("0123456789")

# What a 304 repeats of the 200 it stands for (RFC 9110 §15.4.5); the other headers describe
# a body it does not have.
NOT_MODIFIED_HEADERS = ("ETag", "Last-Modified", "Cache-Control", "Vary", "Content-Location")


class Unsatisfiable(Exception):
    """The range lies outside the object: answer 416 with `Content-Range: bytes */size`."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One requested range, before the object's size is known: bytes `first` to `last`
    (inclusive; None = to the end), or with `first` None the last `last` bytes (a suffix)."""

    first: int | None
    last: int | None

    def span(self, size: int) -> tuple[int, int]:
        """`(start, end)` of this range in an object of `size` bytes, `end` exclusive.

        Raises:
            Unsatisfiable: the range starts at or past the end, or is an empty suffix.
        """
        if self.first is None:
            length = self.last or 0
            if length == 0 or size == 0:
                raise Unsatisfiable
            return max(0, size - length), size
        if self.first >= size:
            raise Unsatisfiable
        end = size if self.last is None else min(self.last, size - 1) + 1
        return self.first, end


def _number(text: str) -> int | None:
    """A non-negative decimal of ASCII digits (huge ones capped to `_HUGE`), else None."""
    text = text.strip(" \t")
    if not text or not _DIGITS.issuperset(text):
        return None
    if len(text.lstrip("0")) > MAX_DIGITS:
        return _HUGE
    return int(text)


def parse_range(header: str | None) -> ByteRange | None:
    """The one byte range `header` asks for, or None to ignore it (see the module docstring)."""
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip(" \t").lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.partition("-")
    if not dash:
        return None
    if not first_text.strip(" \t"):
        length = _number(last_text)
        return None if length is None else ByteRange(None, length)
    first = _number(first_text)
    if first is None:
        return None
    if not last_text.strip(" \t"):
        return ByteRange(first, None)
    last = _number(last_text)
    if last is None or last < first:
        return None
    return ByteRange(first, last)


def _etags(header: str) -> list[str]:
    return [tag.strip(" \t") for tag in header.split(",") if tag.strip(" \t")]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """Whether `If-None-Match` matches `etag` (weak comparison): answer 304."""
    if header is None:
        return False
    tags = _etags(header)
    return "*" in tags or any(_opaque(tag) == _opaque(etag) for tag in tags)


def if_range_holds(header: str | None, *, etag: str) -> bool:
    """Whether a `Range` may be honoured under `If-Range` (absent: yes).

    Only the current strong entity tag holds; a weak tag or a date never does.
    """
    if header is None:
        return True
    header = header.strip(" \t")
    return not header.startswith("W/") and header == etag


@dataclass(frozen=True, slots=True)
class Conditions:
    """A request's method and the headers these rules read."""

    method: Literal["GET", "HEAD"] = "GET"
    range: str | None = None
    if_range: str | None = None
    if_none_match: str | None = None

    @classmethod
    def from_headers(cls, method: str, headers: Mapping[str, str]) -> Conditions:
        """The conditions of a request (`headers` looked up by lower-case name)."""
        return cls(
            method="HEAD" if method == "HEAD" else "GET",
            range=headers.get("range"),
            if_range=headers.get("if-range"),
            if_none_match=headers.get("if-none-match"),
        )

    def not_modified(self, etag: str) -> bool:
        """Whether the answer is a 304."""
        return none_match(self.if_none_match, etag)

    def wanted(self, etag: str) -> ByteRange | None:
        """The range to honour for an archive whose strong tag is `etag`, or None for all of
        it (no `Range`, an ignored one, or `If-Range` does not hold)."""
        if not self.range or not if_range_holds(self.if_range, etag=etag):
            return None
        return parse_range(self.range)

    def span(self, etag: str, size: int) -> tuple[int, int] | None:
        """`(start, end)` to send of an object of known `size`, or None for the whole of it.

        Raises:
            Unsatisfiable: the range lies outside the object.
        """
        wanted = self.wanted(etag)
        return None if wanted is None else wanted.span(size)


def span_headers(span: tuple[int, int] | None, size: int) -> dict[str, str]:
    """`Content-Length` of what is sent, and `Content-Range` when a range is honoured (a 206,
    even one that covers the whole object: a client probing with `bytes=0-` learns so that
    ranges work)."""
    if span is None:
        return {"Content-Length": str(size)}
    start, end = span
    return {"Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{size}"}


def unsatisfiable(size: int, headers: Mapping[str, str]) -> AppError:
    """The 416 of a range outside an object of `size` bytes, in the JSON error shape."""
    return AppError(
        f"The archive is {size} bytes long; the requested range lies outside it.",
        status_code=416,
        code="range_not_satisfiable",
        headers={**headers, "Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def not_modified_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of `headers` a 304 repeats (`NOT_MODIFIED_HEADERS`)."""
    return {name: headers[name] for name in NOT_MODIFIED_HEADERS if name in headers}


def http_date(moment: datetime) -> str:
    """`moment` (aware) as an HTTP date: whole seconds, GMT."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)
