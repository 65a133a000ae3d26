"""Request bodies are bounded: in size (413) and in the time they take to arrive (408).

Both are pure ASGI middleware wrapping `receive`, so they see the body as the app reads it,
also a chunked one that declares no length; both answer with the one JSON error shape and
close the connection, since the rest of a refused body is not worth reading. Their place in
the stack is set by `app.web.middleware.install_middleware`.
"""

from __future__ import annotations

import asyncio
import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.handlers import error_response


class BodyTooLarge(HTTPException):
    """A request body over the limit; FastAPI's handlers turn it into the JSON 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


class BodyLimitMiddleware:
    """Refuse request bodies over a limit with a JSON 413.

    A declared `Content-Length` over the limit is refused before the app runs. A body sent
    without one (chunked) is counted as the app reads it, and `BodyTooLarge` is raised from
    `receive` once the count passes the limit. `path_limits` gives some paths (uploads) their
    own limit.
    """

    def __init__(self, app: ASGIApp, *, limit: int, path_limits: dict[str, int]) -> None:
        self.app = app
        self.limit = limit
        self.path_limits = path_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            Request(scope),
            413,
            "payload_too_large",
            f"The request body is larger than the limit of {limit} bytes.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class BodyDeadlineMiddleware:
    """Bound how long a request body may take to arrive: 408 and the connection closed.

    Each body message must arrive within `idle_timeout` seconds of the previous one, and the
    whole body within `total_timeout` seconds of the request's start; a client that stalls
    (or trickles bytes) cannot hold a connection, a handler and its spooled upload for ever.
    Once the body is complete, `receive` is passed through untouched (a streamed response
    waits on it for the client's disconnect).

    On a deadline the JSON 408 is sent (when no response has started), the handler gets
    `http.disconnect` from then on, and whatever it sends or raises afterwards is dropped:
    it saw a vanished client, which is what the caller became.
    """

    def __init__(self, app: ASGIApp, *, idle_timeout: float, total_timeout: float) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.total_timeout
        body_done = False
        started = False
        timed_out = False

        async def guarded_receive() -> Message:
            nonlocal body_done, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()
            wait = min(self.idle_timeout, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, wait))
            except TimeoutError:
                timed_out = True
                if not started:
                    await self._refuse(scope, send)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except Exception:
            if not timed_out:
                raise

    async def _refuse(self, scope: Scope, send: Send) -> None:
        response = error_response(
            Request(scope),
            408,
            "request_timeout",
            f"The request body did not arrive in time (at most {self.idle_timeout:g} s "
            f"between parts, {self.total_timeout:g} s in all).",
            headers={"Connection": "close"},
        )

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
