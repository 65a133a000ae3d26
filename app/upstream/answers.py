"""What an answer of the Autoenhance API must be before the client believes it.

Ids become single path segments, JSON must have the shape of the model it is read as, and
of an error answer only a bounded start is read. The checks of an image body itself live in
`app.upstream.sniff.DeliveredImage`.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from app.upstream.errors import UpstreamProtocolError

M = TypeVar("M", bound=BaseModel)

# Of an error answer to a download only this much is read, for its message: a lying upstream
# must not make the service hold an unbounded error body in memory.
ERROR_BODY_BYTES = 64 * 1024


def path_segment(value: str) -> str:
    """`value` percent-encoded as one URL path segment (ids come from callers and upstream).

    `/`, `?`, `#` and `%` are encoded, so an id cannot reach another path or add query
    parameters; `.` and `..` would be read as the current or parent path whatever their
    encoding, so they are refused, as is an empty id.

    Raises:
        UpstreamProtocolError: `value` is empty, `.` or `..`.
    """
    if value in ("", ".", ".."):
        raise UpstreamProtocolError(f"refusing to call the API with the id {value!r}")
    return quote(value, safe="", errors="replace")


def parsed(response: httpx.Response, model: type[M]) -> M:
    """The answer's JSON as `model`.

    Raises:
        UpstreamProtocolError: the body is not JSON, or not the JSON of a `model`.
    """
    try:
        return model.model_validate(response.json())
    except (ValueError, RecursionError, ValidationError) as exc:
        raise UpstreamProtocolError(
            f"upstream answered {response.status_code} with something that is not "
            f"{'an' if model.__name__[0] in 'AEIOU' else 'a'} {model.__name__}"
        ) from exc


async def read_bounded(response: httpx.Response, limit: int, *, what: str) -> httpx.Response:
    """The streamed `response` read whole into a new, closed response, if it is at most `limit`
    bytes once decoded; reading stops at the first byte past it.

    Raises:
        UpstreamProtocolError: the body is larger than `limit` bytes.
    """
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise UpstreamProtocolError(f"upstream sent {what} larger than {limit} bytes")
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=bytes(body), request=response.request
    )


async def read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The first `limit` bytes of a streamed body (the rest is left unread)."""
    if response.is_stream_consumed:  # already read whole by an in-memory transport
        return response.content[:limit]
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


# Statuses below 400 that are not the image, and what they say.
_NOT_THE_IMAGE = {
    202: "accepted, not ready",
    204: "no content",
    206: "a part of the image",
    300: "multiple choices without a Location",
    304: "not modified",
}


def not_the_image(response: httpx.Response) -> str:
    status = response.status_code
    meaning = _NOT_THE_IMAGE.get(status)
    if meaning is None and 300 <= status < 400:
        meaning = "a redirect without a Location"
    return f"upstream answered {status} ({meaning or 'unexpected status'}) instead of the image"
