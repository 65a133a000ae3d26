"""The Range and conditional-request rules of `app.services.ranges` (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.services.ranges import (
    MAX_RANGES,
    Unsatisfiable,
    http_date,
    if_range_holds,
    none_match,
    not_modified_since,
    parse_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", [(0, 100)]),
        ("bytes=10-", [(10, 1000)]),
        ("bytes=-100", [(900, 1000)]),
        ("bytes=-5000", [(0, 1000)]),
        ("bytes=990-5000", [(990, 1000)]),
        ("BYTES = 0-0", [(0, 1)]),
        ("bytes=0-9, 20-29", [(0, 10), (20, 30)]),
        ("bytes=20-29,0-9", [(0, 10), (20, 30)]),
        ("bytes=0-9,5-19,20-24", [(0, 25)]),  # overlapping and adjacent ranges merge
        ("bytes=0-9,2000-3000", [(0, 10)]),  # the unsatisfiable one is dropped
        ("bytes=0-" + "9" * 4301, [(0, 1000)]),  # a huge last byte means "to the end"
    ],
)
def test_satisfiable_ranges(header: str, expected: list[tuple[int, int]]) -> None:
    assert parse_range(header, 1000) == expected


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
    with pytest.raises(Unsatisfiable):
        parse_range(header, 1000)


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
        "bytes=0-1,x-2",
        "bytes=-",
        "bytes=١-٣",  # non-ASCII digits
        "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1)),
    ],
)
def test_ignored_ranges(header: str | None) -> None:
    assert parse_range(header, 1000) is None


def test_every_range_of_an_empty_object_is_unsatisfiable() -> None:
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-10", 0)


def test_if_none_match() -> None:
    assert none_match('"abc"', '"abc"')
    assert none_match('"x", W/"abc"', '"abc"')  # weak comparison
    assert none_match("*", '"abc"')
    assert not none_match('"abd"', '"abc"')
    assert not none_match(None, '"abc"')


def test_if_range() -> None:
    modified = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    assert if_range_holds(None, etag='"a"', last_modified=modified)
    assert if_range_holds('"a"', etag='"a"', last_modified=modified)
    assert not if_range_holds('"b"', etag='"a"', last_modified=modified)
    assert not if_range_holds('W/"a"', etag='"a"', last_modified=modified)  # strong only
    assert if_range_holds(http_date(modified), etag='"a"', last_modified=modified)
    assert not if_range_holds("Tue, 03 Mar 2026 05:06:07 GMT", etag='"a"', last_modified=modified)
    assert not if_range_holds("not a date", etag='"a"', last_modified=modified)


def test_if_modified_since() -> None:
    modified = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    assert not_modified_since(http_date(modified), modified)
    assert not_modified_since("Thu, 05 Mar 2026 00:00:00 GMT", modified)
    assert not not_modified_since("Tue, 03 Mar 2026 05:06:07 GMT", modified)
    assert not not_modified_since("yesterday", modified)
    assert not not_modified_since(None, modified)
