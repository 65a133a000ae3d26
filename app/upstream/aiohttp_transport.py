"""An httpx transport that sends through aiohttp: the image downloads' HTTP/1.1.

httpx's own transport (httpcore) parses HTTP/1.1 in pure Python (h11) over anyio streams; image
bytes are most of the service's work, and through aiohttp's C parser they cost a fraction of
the CPU. Behind this transport the rest stays as it is: `AutoenhanceClient` builds requests,
follows redirects, retries and maps errors on httpx's types.

Written here rather than taken from `httpx-aiohttp`, which falls short in three ways that
matter to this service: it hands aiohttp the URL as a string, which yarl re-quotes (an image
id's `%3D` reached the API as `=`, a different URL under RFC 3986); it lets aiohttp errors it
does not list escape as they are (a malformed status line from the upstream would not be an
httpx error, so not an upstream failure); and its body chunk size is a class constant.

Errors, all raised as httpx's: a connect timeout `ConnectTimeout`, silence longer than the read
timeout `ReadTimeout`, a refused or failed connection `ConnectError`, a connection lost or a
malformed answer `RemoteProtocolError` (before the body) or `ReadError` (during it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import yarl

# The most bytes one body chunk carries. Every chunk is written to a spool, hashed, checked
# and counted in Python; at aiohttp's usual 16 kB those per-chunk costs were a third of the
# service's CPU (`make bench`, (d): 2.3 -> 1.6 CPU-seconds per GB; 1 MiB bought no more).
CHUNK_SIZE = 256 * 1024
# What a lying upstream's answer head may cost: at most this many header lines of at most
# 8 kB each (aiohttp's line limit) per connection, ~0.5 MB, instead of aiohttp's 128.
MAX_HEADERS = 64


@contextlib.contextmanager
def _mapped(*, body: bool) -> Iterator[None]:
    """Re-raise aiohttp's errors as httpx's (see the module docstring)."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc)) from exc
    except aiohttp.ClientError as exc:
        error = httpx.ReadError if body else httpx.RemoteProtocolError
        raise error(f"{type(exc).__name__}: {exc}") from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, chunk_size: int) -> None:
        self._response = response
        self._chunk_size = chunk_size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(body=True):
            async for chunk in self._response.content.iter_chunked(self._chunk_size):
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end returns the connection to the pool; anything else closes it.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one aiohttp session of at most `max_connections`.

    The session is created on first use (aiohttp binds it to the running event loop) and
    closed by `aclose`. Timeouts come from each request's httpx timeout (`connect`, `read`);
    redirects are never followed here and bodies are never decoded.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = 5.0,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._chunk_size = chunk_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def max_connections(self) -> int:
        return self._max_connections

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_expiry
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                max_headers=MAX_HEADERS,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        content = await request.aread()
        with _mapped(body=False):
            response = await self._open_session().request(
                request.method,
                # Exactly the URL httpx built: re-quoting would change what an id's escapes mean.
                yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx.Response(
            status_code=response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=_Body(response, self._chunk_size),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
