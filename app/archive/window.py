"""The byte window of an archive answer: skip to a start, stop at an end.

A resumed or ranged archive is produced from an entry boundary before the offset asked for
(the writer can only start an entry at its header), and may be wanted only up to a last byte.
`window` cuts such a stream of chunks to the bytes asked for, and stops reading it as soon as
the last of them is out, so nothing past the range is fetched or read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator


async def window(
    chunks: AsyncIterator[bytes], start: int = 0, end: int | None = None
) -> AsyncGenerator[bytes]:
    """The bytes of `chunks` from offset `start` to `end` (exclusive; None: to the end).

    `chunks` is read in order, and not read any further once `end` is reached; it is closed
    (its `aclose`, when it has one) whatever ends the window: its end, `end`, an error, or the
    consumer closing this generator. Empty pieces are never yielded.

    Raises:
        ValueError: `start` is negative.
    """
    if start < 0:
        raise ValueError(f"a window cannot start before the first byte, got {start}")
    position = 0  # offset of the next byte `chunks` gives
    try:
        if end is not None and end <= start:
            return
        async for chunk in chunks:
            first, position = position, position + len(chunk)
            if position <= start:
                continue
            piece = chunk[max(0, start - first) : None if end is None else end - first]
            if piece:
                yield piece
            if end is not None and position >= end:
                return
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
