"""Pictures built to cost the decoder far more than their size says."""

from __future__ import annotations

import functools
import io
import struct

from PIL import Image

BOMB_BYTES = 4 * 1024 * 1024
BOMB_SIDE = 2000


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment of a JPEG; a scan's entropy data included."""
    found: list[tuple[int, int, int]] = []
    pos = 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            found.append((marker, pos, pos + 2))
            break
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        found.append((marker, pos, end))
        pos = end
    return found


@functools.cache
def progressive_bomb() -> bytes:
    """A 4 MiB progressive JPEG of 2000x2000 px whose one 12-byte scan repeats ~350,000 times.

    The scan is the first AC scan of a chroma component of a flat picture: 10 bytes of header
    and 2 of data (one end-of-band run over all its blocks). Each repetition makes libjpeg walk
    every block of the component again: tens of seconds of CPU for 4 MiB and 4 megapixels,
    which pass the thumbnail's byte and pixel bounds.
    """
    out = io.BytesIO()
    Image.new("RGB", (BOMB_SIDE, BOMB_SIDE), (120, 140, 90)).save(
        out, "JPEG", progressive=True, quality=90
    )
    data = out.getvalue()
    tiny = next(
        (start, end)
        for marker, start, end in _segments(data)
        if marker == 0xDA and end - start == 12 and data[start + 9] >> 4 == 0  # Ah 0: first AC
    )
    head, scan = data[: tiny[0]], data[tiny[0] : tiny[1]]
    repeats = (BOMB_BYTES - len(head) - 2) // len(scan)
    return head + scan * repeats + b"\xff\xd9"
