"""How an outcome of an HTTP call to the Autoenhance API becomes an `app.upstream.errors` error.

`mapped` turns httpx's exceptions (timeouts, broken connections, undecodable bodies, redirect
loops) into the upstream error hierarchy; `raise_for_status` does the same for answers of 400
or more. Each case is mapped on purpose: 404, 401/403, 429 (with its Retry-After), 5xx and
other 4xx are different errors, because the client retries, trips breakers and the web layer
answers differently for each. Of an error body only the API's own `message` (and the first
human line of its `detail`) is kept, cut short: a lying upstream cannot put arbitrary text
into a caller's answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from app.upstream.errors import (
    UpstreamNetworkError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnauthorized,
)
from app.upstream.models import repair_text

T = TypeVar("T")

# Of the upstream's message and of its first detail only this many characters are kept.
MESSAGE_CHARS = 200


async def mapped(attempt: Callable[[], Awaitable[T]]) -> T:
    """Await `attempt()`, raising httpx's transport errors as upstream errors.

    Raises:
        UpstreamProtocolError (redirect loop, non-http redirect, undecodable body),
        UpstreamTimeout, UpstreamNetworkError; upstream errors `attempt` raises pass as they are.
    """
    try:
        return await attempt()
    except httpx.TooManyRedirects as exc:
        raise UpstreamProtocolError("upstream redirected too many times") from exc
    except httpx.UnsupportedProtocol as exc:
        raise UpstreamProtocolError("upstream redirected to a non-http URL") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"upstream timed out ({type(exc).__name__})") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise UpstreamNetworkError(f"upstream connection failed ({type(exc).__name__})") from exc
    except httpx.DecodingError as exc:
        raise UpstreamProtocolError("upstream sent an undecodable body") from exc


def raise_for_status(response: httpx.Response, *, body: bytes | None = None) -> None:
    """Raise the error an answer of 400 or more means; `body` for a streamed answer.

    Raises:
        UpstreamNotFound (404), UpstreamUnauthorized (401, 403), UpstreamRateLimited (429),
        UpstreamServerError (5xx), UpstreamRejected (any other 4xx).
    """
    status = response.status_code
    if status < 400:
        return
    message = upstream_message(status, response.content if body is None else body)
    if status == 404:
        raise UpstreamNotFound(message, status_code=status)
    if status in (401, 403):
        raise UpstreamUnauthorized(message, status_code=status)
    if status == 429:
        raise UpstreamRateLimited(message, retry_after=retry_after(response))
    if status >= 500:
        raise UpstreamServerError(message, status_code=status)
    raise UpstreamRejected(message, status_code=status)


def upstream_message(status: int, body: bytes) -> str:
    """The upstream's own error message (its `message` field), cut short; never the body raw."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return f"upstream answered {status}"
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        message = f"upstream answered {status}: {payload['message'][:MESSAGE_CHARS]}"
        first = _first_detail(payload.get("detail"))
        # The message reaches JSON answers and the report: it must encode as UTF-8.
        return repair_text(f"{message} ({first[:MESSAGE_CHARS]})" if first else message)
    return f"upstream answered {status}"


def _first_detail(detail: object) -> str | None:
    """The first human message inside an API error's `detail` (nested dicts of lists)."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        for item in detail:
            found = _first_detail(item)
            if found:
                return found
    if isinstance(detail, dict):
        for value in detail.values():
            found = _first_detail(value)
            if found:
                return found
    return None


def retry_after(response: httpx.Response) -> float | None:
    """A 429's Retry-After in seconds, or None when absent or an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        # An HTTP date: honour it as "soon" rather than parse clocks we do not share.
        return None
