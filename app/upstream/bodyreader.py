"""An httpx transport whose answers can be received straight into a caller's buffer.

Image bodies are most of the bytes this service moves. Through aiohttp each byte is copied
three times in user space before the archive sees it (the event loop copies every read into a
new `bytes`, the C parser copies each body slice again, and the spool copies it once more), and
the spool writes it to disk and reads it back. This transport reads on an asyncio
`BufferedProtocol`: the answer's head is parsed by h11 (which also frames every body it
streams), and a body of known length can instead be received with `read_into` directly into a
buffer the caller owns (a `app.upstream.bytepool` buffer), with its CRC-32 taken (and the
image check fed) every `HASH_BYTES` received, while the bytes are still in cache: the kernel's
copy is the only one.

Why not a library: httpx's own transport (httpcore) and aiohttp hand bodies out as new `bytes`
objects and offer no way to name the memory a body lands in; `asyncio.BufferedProtocol` is the
standard library's way to do that, and only the body loop is written here. What that buys,
measured (`python -m bench.stream --only d --runs 5`, 50 x 10 MB, three alternating pairs on a
shared 2-core machine): 0.66-0.74 service CPU-seconds per GB through this transport and the
pool, 1.45-1.62 through aiohttp and the spool; 750-970 MB/s against 370-480
(docs/performance.md). Redirects, the key's origin rule, retries and error mapping stay in
`app.upstream.client` and `app.upstream.redirects`, on httpx's types, as for every other
transport.

Errors, all raised as httpx's (like `app.upstream.aiohttp_transport`): a connect timeout
`ConnectTimeout`; a failed connection `ConnectError`; silence longer than the read timeout
`ReadTimeout`; a connection lost or a malformed answer `RemoteProtocolError` before the body,
`ReadError` during it (also a body that ends before its Content-Length).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import h11
import httpx
from isal import isal_zlib

# Bytes one socket read may bring for bodies streamed through h11 (error answers, redirects,
# bodies without a length).
READ_SIZE = 256 * 1024
# Received body bytes are hashed (and shown to `read_into`'s observer) once this many have
# come: still in the CPU's cache, and with one call per 256 kB rather than one per read (over
# TLS a read is one 16 kB record).
HASH_BYTES = 256 * 1024
# Bytes one socket read may bring while an answer's head is awaited, and what is read ahead
# of it before reading pauses. The body's first bytes come with the head and are copied on
# their way to a pooled buffer (scratch, h11, the buffer); at 256 kB that was a tenth of a
# 10 MB image copied five times over, at this size it is nothing.
HEAD_READ_SIZE = 16 * 1024
# What a lying upstream's answer head may cost: h11 refuses a head larger than this.
MAX_HEAD_BYTES = 64 * 1024

Origin = tuple[str, str, int]
# The response extension that holds an answer's `PooledBody`.
POOLED_BODY = "pooled_body"


class _Protocol(asyncio.BufferedProtocol):
    """One connection's receiving side: into a scratch buffer, or into a caller's view."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._scratch = bytearray(READ_SIZE)
        self.read_size = HEAD_READ_SIZE  # bytes one read into scratch may bring
        self._pending = bytearray()  # received into scratch, not yet taken
        self._target: memoryview | None = None
        self._observe: Callable[[memoryview], None] | None = None
        self._filled = 0
        self._hashed = 0  # of `_filled`, the bytes hashed and observed
        self.crc = 0
        self.closed: BaseException | None = None
        self.eof = False
        self._waiter: asyncio.Future[None] | None = None
        self.last_read = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, but they are transports.
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._target is not None:
            return self._target[self._filled :]
        return memoryview(self._scratch)[: self.read_size]

    def buffer_updated(self, nbytes: int) -> None:
        loop = asyncio.get_running_loop()
        self.last_read = loop.time()
        if self._target is not None:
            self._filled += nbytes
            done = self._filled == len(self._target)
            if done or self._filled - self._hashed >= HASH_BYTES:
                received = self._target[self._hashed : self._filled]
                self._hashed = self._filled
                self.crc = isal_zlib.crc32(received, self.crc)
                if self._observe is not None:
                    self._observe(received)
            if done:
                self._target = None
                self._wake()
            return
        self._pending += memoryview(self._scratch)[:nbytes]
        if len(self._pending) >= self.read_size and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = exc or ConnectionResetError("connection closed")
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, read_timeout: float | None) -> None:
        """Until something arrives or the connection ends; no byte for `read_timeout` s fails."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self.last_read = loop.time()
        try:
            while not waiter.done():
                if read_timeout is None:
                    await waiter
                    break
                left = self.last_read + read_timeout - loop.time()
                if left <= 0:
                    raise httpx.ReadTimeout(f"no byte for {read_timeout} s")
                # Not wait_for: on Python 3.11 it can swallow a cancellation that lands with
                # the read (a caller's deadline, a client that left) and carry on reading.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await asyncio.shield(waiter)
        finally:
            self._waiter = None

    def take(self) -> bytes:
        """Everything received into scratch and not yet taken."""
        data = bytes(self._pending)
        self._pending.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        return data

    async def receive(self, read_timeout: float | None) -> bytes:
        """The next bytes from scratch; b"" at the end of the connection."""
        while not self._pending and self.closed is None and not self.eof:
            await self._wait(read_timeout)
        return self.take()

    async def fill(
        self,
        view: memoryview,
        already: bytes,
        read_timeout: float | None,
        observe: Callable[[memoryview], None] | None,
    ) -> int:
        """Receive exactly `len(view)` bytes into `view`, of which `already` arrived before;
        returns their CRC-32. `observe` is called with each received slice of `view`, in
        order."""
        already += self.take()
        if len(already) > len(view):
            raise httpx.ReadError("the answer ran past its Content-Length")
        view[: len(already)] = already
        self.crc = isal_zlib.crc32(already)
        self._filled = self._hashed = len(already)
        if observe is not None and already:
            observe(view[: len(already)])
        if self._filled < len(view):
            self._target = view
            self._observe = observe
            try:
                while self._target is not None:
                    if self.closed is not None or self.eof:
                        raise httpx.ReadError(
                            f"connection closed after {self._filled} of {len(view)} body bytes"
                        )
                    await self._wait(read_timeout)
            finally:
                self._target = None
                self._observe = None
        return self.crc


class _Connection:
    def __init__(self, origin: Origin, protocol: _Protocol) -> None:
        self.origin = origin
        self.protocol = protocol
        self.idle_since = 0.0

    @property
    def usable(self) -> bool:
        p = self.protocol
        return p.closed is None and not p.eof and not p._pending and p.transport is not None

    def close(self) -> None:
        if self.protocol.transport is not None:
            self.protocol.transport.close()

    def abort(self) -> None:
        """Close at once: a TLS transport's `close` sends its close_notify on later turns of
        the loop, which a shutting-down loop never takes (its socket would be left open)."""
        if self.protocol.transport is not None:
            self.protocol.transport.abort()


class PooledBody(httpx.AsyncByteStream):
    """An answer's body: streamed through h11, or received whole into a buffer (`read_into`)."""

    def __init__(
        self,
        connection: _Connection,
        parser: h11.Connection,
        *,
        length: int | None,
        keep_alive: bool,
        read_timeout: float | None,
        release: Callable[[_Connection, bool], None],
    ) -> None:
        self._connection = connection
        self._parser = parser
        self.length = length
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._release = release
        self._reusable = False
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        protocol = self._connection.protocol
        protocol.read_size = READ_SIZE
        while True:
            try:
                event = self._parser.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.ReadError(str(exc)) from exc
            if event is h11.NEED_DATA:
                self._parser.receive_data(await protocol.receive(self._read_timeout))
            elif isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._reusable = self._parser.their_state is h11.DONE and not len(
                    self._parser.trailing_data[0]
                )
                return
            else:
                raise httpx.ReadError(f"unexpected {type(event).__name__} in a body")

    async def read_into(
        self, view: memoryview, *, observe: Callable[[memoryview], None] | None = None
    ) -> int:
        """Receive the whole body, exactly `len(view)` bytes (its Content-Length), into `view`;
        returns its CRC-32. `observe`, when given, sees each received slice of `view` in order
        while it is still in the CPU's cache (the image check: a second pass over a 10 MB
        buffer reads it back from memory). The body is consumed: iterate no more.

        Raises:
            httpx.ReadError: the connection ended first. httpx.ReadTimeout: it fell silent.
        """
        if self.length != len(view):
            raise ValueError(f"a body of {self.length} bytes does not fit {len(view)}")
        already, _closed = self._parser.trailing_data
        crc = await self._connection.protocol.fill(
            view, bytes(already), self._read_timeout, observe
        )
        self._reusable = self._keep_alive
        return crc

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._release(self._connection, self._reusable)


class PooledBodyTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests over at most `max_connections` kept-alive HTTP/1.1 connections
    (TLS by `ssl_context` for https, the system's trust by default). Timeouts come from each
    request's httpx timeout (`connect`, `read`); redirects are never followed here and bodies
    are never decoded."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._keepalive_expiry = keepalive_expiry
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        origin: Origin = (request.url.scheme, request.url.host, request.url.port or _port(request))
        content = await request.aread()
        await self._slots.acquire()
        try:
            connection = await self._connection(origin, timeout.get("connect"))
            try:
                return await self._exchange(connection, request, content, timeout.get("read"))
            except BaseException:
                connection.close()
                raise
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(
        self, connection: _Connection, request: httpx.Request, content: bytes, read: Any
    ) -> httpx.Response:
        parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        headers = list(request.headers.raw)
        if content:
            headers.append((b"Content-Length", str(len(content)).encode()))
        target = request.url.raw_path
        wire = parser.send(h11.Request(method=request.method, target=target, headers=headers))
        wire = (wire or b"") + (parser.send(h11.Data(data=content)) or b"") if content else wire
        wire = (wire or b"") + (parser.send(h11.EndOfMessage()) or b"")
        protocol = connection.protocol
        assert protocol.transport is not None
        protocol.read_size = HEAD_READ_SIZE
        protocol.transport.write(wire)
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                parser.receive_data(await protocol.receive(read))
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                break
            raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__}")
        raw = [(bytes(k), bytes(v)) for k, v in event.headers.raw_items()]
        length = _content_length(raw)
        keep_alive = event.http_version == b"1.1" and not any(
            k.lower() == b"connection" and b"close" in v.lower() for k, v in raw
        )
        body = PooledBody(
            connection,
            parser,
            length=length,
            keep_alive=keep_alive,
            read_timeout=read,
            release=self._release,
        )
        return httpx.Response(
            status_code=event.status_code,
            headers=raw,
            stream=body,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": bytes(event.reason),
                # httpx wraps the stream; the body is found here (`pooled_body`).
                POOLED_BODY: body,
            },
        )

    async def _connection(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(origin, [])
        while idle:
            connection = idle.pop()
            if connection.usable and loop.time() - connection.idle_since < self._keepalive_expiry:
                return connection
            connection.close()
        scheme, host, port = origin
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl or httpx.create_ssl_context()
        elif scheme != "http":
            raise httpx.UnsupportedProtocol(f"{scheme} is not http or https")
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    _Protocol, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _Connection(origin, protocol)

    def _release(self, connection: _Connection, reusable: bool) -> None:
        self._slots.release()
        if reusable and connection.usable and not self._closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.abort()
        self._idle.clear()


def pooled_body(response: httpx.Response) -> PooledBody | None:
    """The body of an answer this transport gave, to `read_into`; None for any other."""
    body = response.extensions.get(POOLED_BODY)
    return body if isinstance(body, PooledBody) else None


def _port(request: httpx.Request) -> int:
    return 443 if request.url.scheme == "https" else 80


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    values = {v.strip() for k, v in headers if k.lower() == b"content-length"}
    if len(values) != 1:
        return None
    (value,) = values
    return int(value) if value.isdigit() else None
