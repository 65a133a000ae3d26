"""uvicorn's HTTP protocol with a deadline on request headers.

uvicorn closes idle keep-alive connections (`--timeout-keep-alive`) and refuses requests past
`--limit-concurrency`, but it has no deadline for a connection that opens and never finishes
its request line and headers: each such socket stays open for ever, and an attacker holding
many of them ties up file descriptors and the concurrency budget. The app cannot help (it is
called only once the headers are complete), so the deadline lives in the protocol:
`HeaderDeadlineProtocol` closes a connection that has not completed a request's headers
`REQUEST_HEADER_TIMEOUT` seconds after it opened, or after the first byte of its next request
on a kept-alive connection. Request bodies have their own deadlines
(`app.web.bodies.BodyDeadlineMiddleware`).

The same protocol writes each chunk of a chunked response (the streamed archives) with
`transport.writelines` as its size line, the body and the CRLF (`WritelinesCycle`): uvicorn
joins the three into one new `bytes`, a copy of every byte sent, where uvloop sends the pieces
with one `writev` and keeps a view of the body instead of a copy (a body that is a view of a
pooled image buffer, `app.upstream.bytepool`, is never copied in user space).

It extends uvicorn's httptools protocol (what `uvicorn[standard]` uses by default). Every
shipped start command selects it:

    uvicorn app:app --http app.web.server:HeaderDeadlineProtocol ...
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn._types import ASGI3Application, ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.core.config import Settings

logger = logging.getLogger("app.server")


@functools.cache
def configured_header_timeout() -> float:
    """`REQUEST_HEADER_TIMEOUT` from the environment (and `.env`), read once per process."""
    return Settings().request_header_timeout


# Chunks smaller than this are joined as uvicorn does: for them a copy costs less than a
# gather list and three queued buffers.
WRITELINES_MIN_BYTES = 64 * 1024


class WritelinesCycle(RequestResponseCycle):
    """uvicorn's request cycle, sending large chunks of a chunked body without joining them."""

    async def send(self, message: ASGISendEvent) -> None:
        body = message.get("body", b"") if message["type"] == "http.response.body" else b""
        if (
            len(body) >= WRITELINES_MIN_BYTES
            and message.get("more_body", False)
            and self.chunked_encoding
            and self.response_started
            and not self.response_complete
            and self.scope["method"] != "HEAD"
        ):
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            self.transport.writelines([b"%x\r\n" % len(body), body, b"\r\n"])
            return
        await super().send(message)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """httptools protocol that closes connections whose request headers do not arrive in time.

    `header_timeout` is the deadline in seconds; `None` reads `REQUEST_HEADER_TIMEOUT`.
    """

    header_timeout: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # Before its task starts, so that the ASGI app is handed this class's `send`.
        cycle.__class__ = WritelinesCycle
        super()._start_asgi_task(cycle, app)

    def on_message_begin(self) -> None:
        # The deadline runs from the connection's start, or from the next request's first byte.
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._header_timer is None:
            timeout = self.header_timeout or configured_header_timeout()
            self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logger.debug("closing a connection whose request headers did not arrive in time")
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class with its own deadline (for servers started in code, e.g. tests)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})
