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

It extends uvicorn's httptools protocol (what `uvicorn[standard]` uses by default). Every
shipped start command selects it:

    uvicorn app:app --http app.web.server:HeaderDeadlineProtocol ...
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import Settings

logger = logging.getLogger("app.server")


@functools.cache
def configured_header_timeout() -> float:
    """`REQUEST_HEADER_TIMEOUT` from the environment (and `.env`), read once per process."""
    return Settings().request_header_timeout


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
