"""The HTTP rules of `app.archive.http_rules` (pure functions): one parser for every answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.archive.http_rules import (
    ByteRange,
    Conditions,
    Unsatisfiable,
    http_date,
    if_range_holds,
    none_match,
    not_modified_headers,
    parse_range,
    span_headers,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 100)),
        ("bytes=10-", (10, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-5000", (990, 1000)),
        ("BYTES = 0-0", (0, 1)),
        ("bytes=0-" + "9" * 4301, (0, 1000)),  # a huge last byte means "to the end"
    ],
)
def test_satisfiable_ranges(header: str, expected: tuple[int, int]) -> None:
    wanted = parse_range(header)
    assert wanted is not None
    assert wanted.span(1000) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",
        "bytes=5000-6000",
        "bytes=-0",
        "bytes=" + "9" * 4301 + "-",  # a 4,301-digit start is past any end, never an int()
        "bytes=" + "1" * 25 + "-" + "1" * 30,
    ],
)
def test_unsatisfiable_ranges(header: str) -> None:
    wanted = parse_range(header)
    assert wanted is not None
    with pytest.raises(Unsatisfiable):
        wanted.span(1000)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "items=0-5",
        "bytes",
        "bytes=",
        "bytes=abc",
        "bytes=5",
        "bytes=9-3",  # last before first: the whole header is invalid
        "bytes=5-2",
        "bytes=0-1,x-2",
        "bytes=0-1,4-5",  # several ranges: the whole archive, on every answer
        "bytes=0-9,-10",
        "bytes=-",
        "bytes=١-٣",  # non-ASCII digits
        "bytes=²-",  # Latin-1 superscripts: str.isdigit() says yes, int() says no
        "bytes=0-²",
        "bytes=-²",
        "bytes=1 2-",
    ],
)
def test_ignored_ranges(header: str | None) -> None:
    assert parse_range(header) is None


def test_every_range_of_an_empty_object_is_unsatisfiable() -> None:
    with pytest.raises(Unsatisfiable):
        ByteRange(None, 10).span(0)
    with pytest.raises(Unsatisfiable):
        ByteRange(0, None).span(0)


def test_if_none_match() -> None:
    assert none_match('"abc"', '"abc"')
    assert none_match('"x", W/"abc"', '"abc"')  # weak comparison
    assert none_match("*", '"abc"')
    assert not none_match('"abd"', '"abc"')
    assert not none_match(None, '"abc"')


def test_if_range_holds_only_for_the_current_strong_etag() -> None:
    modified = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert if_range_holds(None, etag='"a"')
    assert if_range_holds('"a"', etag='"a"')
    assert if_range_holds(' "a" ', etag='"a"')
    assert not if_range_holds('"b"', etag='"a"')
    assert not if_range_holds('W/"a"', etag='"a"')  # strong only
    # A date never validates a range: Last-Modified is shared by versions of an archive.
    assert not if_range_holds(http_date(modified), etag='"a"')
    assert not if_range_holds("not a date", etag='"a"')


def test_conditions_read_a_request_once() -> None:
    headers = {"range": "bytes=10-", "if-range": '"a"', "if-none-match": '"b"'}
    conditions = Conditions.from_headers("HEAD", headers)
    assert conditions.method == "HEAD"
    assert conditions.wanted('"a"') == ByteRange(10, None)
    assert conditions.wanted('"other"') is None  # If-Range does not hold: everything
    assert conditions.span('"a"', 100) == (10, 100)
    assert conditions.not_modified('"b"')
    assert not conditions.not_modified('"a"')
    assert Conditions.from_headers("GET", {}).span('"a"', 100) is None


def test_a_range_that_is_honoured_says_so_even_when_it_covers_everything() -> None:
    assert span_headers((0, 100), 100) == {
        "Content-Length": "100",
        "Content-Range": "bytes 0-99/100",
    }
    assert span_headers(None, 100) == {"Content-Length": "100"}


def test_a_304_repeats_only_the_validators_and_caching_headers() -> None:
    headers = {
        "ETag": '"a"',
        "Last-Modified": "x",
        "Cache-Control": "no-store",
        "Content-Location": "/orders/x/images?version=1",
        "Content-Disposition": "attachment",
        "Content-Length": "5",
    }
    assert set(not_modified_headers(headers)) == {
        "ETag",
        "Last-Modified",
        "Cache-Control",
        "Content-Location",
    }
