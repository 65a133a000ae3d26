"""`window`: the bytes of a stream of chunks from a start to an end, read no further."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.archive.window import window

CHUNKS = [b"abcd", b"efgh", b"ij"]  # offsets 0-3, 4-7, 8-9
WHOLE = b"".join(CHUNKS)


class Source:
    """Chunks to be windowed, noting how many were read and whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0
        self.closed = False

    async def _gen(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self.chunks:
                self.read += 1
                yield chunk
        finally:
            self.closed = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [piece async for piece in chunks]


def cut(source: Source, start: int = 0, end: int | None = None) -> list[bytes]:
    return asyncio.run(collect(window(aiter(source), start, end)))


def test_the_whole_stream_when_no_window_is_asked() -> None:
    source = Source(CHUNKS)
    assert cut(source) == CHUNKS
    assert source.closed


@pytest.mark.parametrize(
    ("start", "end", "pieces"),
    [
        (1, 3, [b"bc"]),  # start and end inside one chunk
        (2, 6, [b"cd", b"ef"]),  # across a boundary
        (4, 8, [b"efgh"]),  # exactly one chunk, on its boundaries
        (0, 4, [b"abcd"]),  # ending on a boundary
        (3, None, [b"d", b"efgh", b"ij"]),  # from inside a chunk to the end
        (8, None, [b"ij"]),  # from a boundary to the end
        (9, 10, [b"j"]),  # the last byte
        (0, 10, CHUNKS),  # the whole, bounded
        (0, 99, CHUNKS),  # an end past the stream
        (10, None, []),  # a start at the end
        (12, None, []),  # a start past it
    ],
)
def test_the_bytes_between_start_and_end(start: int, end: int | None, pieces: list[bytes]) -> None:
    assert cut(Source(CHUNKS), start, end) == pieces


def test_an_empty_window_reads_nothing() -> None:
    source = Source(CHUNKS)
    assert cut(source, 5, 5) == []
    assert cut(source, 6, 2) == []
    assert source.read == 0


def test_an_empty_stream_gives_nothing() -> None:
    assert cut(Source([]), 0, None) == []
    assert cut(Source([b"", b""]), 0, 3) == []


def test_reading_stops_once_the_end_is_out() -> None:
    source = Source(CHUNKS)
    assert cut(source, 0, 4) == [b"abcd"]
    assert source.read == 1  # the next chunk was never asked for
    assert source.closed


def test_empty_pieces_are_never_yielded() -> None:
    assert cut(Source([b"", b"ab", b"", b"cd"]), 1, None) == [b"b", b"cd"]


def test_closing_the_window_closes_the_stream() -> None:
    source = Source(CHUNKS)

    async def first_then_close() -> bytes:
        cut = window(aiter(source), 0, None)
        piece = await anext(cut)
        await cut.aclose()
        return piece

    assert asyncio.run(first_then_close()) == b"abcd"
    assert source.closed


def test_a_negative_start_is_refused() -> None:
    with pytest.raises(ValueError, match="before the first byte"):
        cut(Source(CHUNKS), -1)


@given(
    chunks=st.lists(st.binary(max_size=7), max_size=8),
    start=st.integers(0, 60),
    length=st.one_of(st.none(), st.integers(0, 60)),
)
def test_any_window_is_the_slice_of_the_whole(
    chunks: list[bytes], start: int, length: int | None
) -> None:
    end = None if length is None else start + length
    assert b"".join(cut(Source(chunks), start, end)) == b"".join(chunks)[start:end]
