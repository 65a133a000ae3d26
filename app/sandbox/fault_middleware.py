"""Pure ASGI middleware that logs API requests and acts out the faults in force.

Pure ASGI rather than `BaseHTTPMiddleware` because several faults need control of the raw
`send` channel: throttling, stalling or cutting a body after its headers are out. See
`app.sandbox.faults` for what each fault does.

To drop a connection on purpose the middleware raises `InjectedAbort` after the response has
started; uvicorn then closes the transport. `QuietInjectedAborts` keeps those deliberate aborts
out of the error log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sandbox.faults import (
    BadRedirectFault,
    BandwidthFault,
    DownFault,
    Fault,
    FaultBook,
    HtmlPageFault,
    LatencyFault,
    LongBodyFault,
    RedirectLoopFault,
    ResetFault,
    RouteKind,
    ShortBodyFault,
    StallFault,
    StatusFault,
    WrongStatusFault,
)
from app.sandbox.records import iso
from app.sandbox.state import SandboxState, key_tag

# Throttled bodies are sent in slices of this many seconds' worth of bytes.
THROTTLE_SLICE_SECONDS = 0.05
MAX_THROTTLE_SLICE = 256 * 1024
_STATUS_MESSAGES = {
    401: "Invalid API key",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


class InjectedAbort(Exception):
    """Raised after the headers are sent so the server drops the connection."""


class QuietInjectedAborts(logging.Filter):
    """Drop server log records caused by an `InjectedAbort`."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedAbort)


def route_path(scope: Scope) -> str:
    """The request path relative to where the sandbox is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def classify(path: str, state: SandboxState) -> tuple[RouteKind | None, str | None] | None:
    """`(route kind, image id)` of an API path; None for control and documentation routes."""
    if path.startswith("/_sandbox") or path in {"/docs", "/openapi.json", "/redoc"}:
        return None
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "assets":
        return "asset", state.store.lookup_asset_image_id(parts[1])
    if parts[:1] == ["uploads"]:
        return "upload", None
    if parts[:2] == ["v3", "images"] and len(parts) >= 3:
        if len(parts) == 4 and parts[3] in {"enhanced", "original"}:
            return "enhanced", parts[2]
        return "order", parts[2]
    if parts[:1] == ["v3"]:
        return "order", None
    return None, None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _json_error(send: Send, status: int, message: str, retry_after: int | None) -> None:
    headers = [(b"content-type", b"application/json")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    body = json.dumps({"message": message, "detail": {}}).encode()
    await _answer(send, status, body, headers)


async def _redirect(send: Send, location: str) -> None:
    await _answer(send, 302, b"", [(b"location", location.encode("utf-8", "replace"))])


async def _pause(book: FaultBook, seconds: float) -> None:
    """An injected wait; the request is dropped when the faults are cleared meanwhile."""
    if not await book.pause(seconds):
        raise InjectedAbort("faults cleared during an injected wait")


async def _pre_response(book: FaultBook, faults: list[Fault], scope: Scope, send: Send) -> bool:
    """Apply faults that act before the answer; True when one of them answered."""
    for fault in faults:
        if isinstance(fault, LatencyFault):
            await _pause(book, fault.ms / 1000)
        elif isinstance(fault, StallFault):
            await _pause(book, fault.seconds)
    for fault in faults:
        if isinstance(fault, DownFault):
            await _json_error(send, 503, "Service unavailable", fault.retry_after)
        elif isinstance(fault, StatusFault):
            retry = fault.retry_after if fault.status in {429, 503} else None
            await _json_error(send, fault.status, _STATUS_MESSAGES[fault.status], retry)
        elif isinstance(fault, RedirectLoopFault):
            query = scope.get("query_string", b"").decode("latin-1")
            full = scope.get("root_path", "") + route_path(scope)
            await _redirect(send, full + (f"?{query}" if query else ""))
        elif isinstance(fault, BadRedirectFault):
            await _redirect(send, fault.location)
        else:
            continue
        return True
    return False


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
    b"<body><p>Please sign in to continue.</p></body></html>\n"
)


def _replace_answer(start: Message, body: bytes, faults: list[Fault]) -> tuple[Message, bytes]:
    """The answer that `wrong_status` or `html_page` puts in place of a successful one."""
    wrong = next((f for f in faults if isinstance(f, WrongStatusFault)), None)
    html = next((f for f in faults if isinstance(f, HtmlPageFault)), None)
    if wrong is None and html is None:
        return start, body
    status: int = start["status"]
    replaced: dict[bytes, bytes] = {}
    if html is not None:
        body, replaced[b"content-type"] = HTML_PAGE, html.content_type.encode("latin-1")
    if wrong is not None:
        status = wrong.status
        if status in (204, 304):
            body = b""
        elif status == 206:
            total, body = len(body), body[: len(body) // 2]
            replaced[b"content-range"] = f"bytes 0-{len(body) - 1}/{total}".encode()
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in {b"content-length", *replaced}
    ]
    headers += list(replaced.items())
    if status not in (204, 304):
        headers.append((b"content-length", str(len(body)).encode()))
    return {**start, "status": status, "headers": headers}, body


async def _play_body(
    book: FaultBook, send: Send, start: Message, body: bytes, faults: list[Fault]
) -> None:
    """Send `start` and `body` as the body faults dictate.

    Raises:
        InjectedAbort: for `reset`, when the server refuses a short or long body, and when the
            faults are cleared during a stall or throttle.
    """
    start, body = _replace_answer(start, body, faults)
    rates = [f.bytes_per_s for f in faults if isinstance(f, BandwidthFault)]
    stall = next((f for f in faults if isinstance(f, StallFault)), None)
    reset = next((f for f in faults if isinstance(f, ResetFault)), None)
    short = next((f for f in faults if isinstance(f, ShortBodyFault)), None)
    long = next((f for f in faults if isinstance(f, LongBodyFault)), None)
    rate = min(rates) if rates else None

    end = len(body)
    if short is not None:
        end = max(0, end - short.missing_bytes)
    if reset is not None:
        end = min(end, int(len(body) * reset.fraction))
    stall_at = min(end, len(body) // 2) if stall is not None else end

    async def emit(data: bytes) -> None:
        if rate is None:
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            return
        step = max(1, min(MAX_THROTTLE_SLICE, int(rate * THROTTLE_SLICE_SECONDS)))
        for offset in range(0, len(data), step):
            piece = data[offset : offset + step]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await _pause(book, len(piece) / rate)

    await send(start)
    await emit(body[:stall_at])
    if stall is not None:
        await _pause(book, stall.seconds)
    await emit(body[stall_at:end])
    if reset is not None:
        raise InjectedAbort("reset mid-body")
    tail = b"\0" * long.extra_bytes if long is not None else b""
    try:
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    except RuntimeError as exc:
        # uvicorn refuses a body that disagrees with its Content-Length.
        raise InjectedAbort(str(exc)) from exc


class SandboxMiddleware:
    """Log every API request and apply the matching faults around the routed app."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.state.ensure_seeded()
        path = route_path(scope)
        kind = classify(path, self.state)
        if kind is None:
            await self.app(scope, receive, send)
            return
        route, image_id = kind
        status_box: list[int] = []
        started = time.monotonic()
        tag = self._tag(scope, route, path)

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box.append(message["status"])
                self._remember_asset(message, tag)
            await send(message)

        try:
            await self._handle(scope, receive, logged_send, route, image_id)
        finally:
            self.state.log.record(
                {
                    "at": iso(datetime.now(UTC)),
                    "method": scope["method"],
                    "path": path,
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "status": status_box[0] if status_box else 500,
                    "api_key": bool(_header(scope, b"x-api-key")),
                    "dev_mode": _header(scope, b"x-dev-mode") is not None,
                    "route": route,
                    "image_id": image_id,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
                tag=tag,
            )

    def _tag(self, scope: Scope, route: RouteKind | None, path: str) -> str | None:
        """The key digest this request is logged under (see `RequestLog`)."""
        if route == "asset":
            return self.state.log.asset_tag(path.rsplit("/", 1)[-1])
        return key_tag(_header(scope, b"x-api-key"))

    def _remember_asset(self, start: Message, tag: str | None) -> None:
        if tag is None or start["status"] != 302:
            return
        for name, value in start.get("headers", []):
            if name.lower() == b"location" and b"/assets/" in value:
                token = value.rsplit(b"/", 1)[-1].decode("latin-1")
                self.state.log.remember_asset(token, tag)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: RouteKind | None,
        image_id: str | None,
    ) -> None:
        if route is None:
            await self.app(scope, receive, send)
            return
        faults = self.state.faults
        key = _header(scope, b"x-api-key")
        if await _pre_response(
            faults, faults.take(route, image_id, body=False, api_key=key), scope, send
        ):
            return
        await self.app(
            scope,
            receive,
            _body_fault_send(
                faults, send, lambda: faults.take(route, image_id, body=True, api_key=key)
            ),
        )


def _body_fault_send(
    book: FaultBook, send: Send, take: Callable[[], list[Fault]]
) -> Callable[[Message], Awaitable[None]]:
    """A `send` that buffers a successful response and replays it through its body faults.

    Faults are looked up (and charged) only once a 2xx response with a body starts, so a
    302 on the way to an asset leaves them for the asset request.
    """
    pending: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            faults = take() if 200 <= status < 300 and status != 204 else []
            if not faults:
                await send(message)
                return
            pending.update(start=message, faults=faults, chunks=[])
            return
        if not pending or message["type"] != "http.response.body":
            await send(message)
            return
        pending["chunks"].append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(pending["chunks"])
            await _play_body(book, send, pending["start"], body, pending["faults"])

    return wrapped
