"""The aiohttp transport against a raw socket server: what it sends, and every failure as
an httpx error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from app.upstream.aiohttp_transport import MAX_HEADERS, AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback server that runs `handler` for each connection and records what it read."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.heads: list[bytes] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._handler(reader, writer)
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        return head


def answer(body: bytes, *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = AiohttpTransport(max_connections=4, chunk_size=64 * 1024)
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(0.5, connect=0.5)
    ) as http:
        yield http


async def test_the_url_and_headers_go_out_exactly_as_built(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)
        writer.write(answer(b"ok"))
        await writer.drain()

    async with RawServer(handler) as server:
        response = await client.get(
            f"{server.url}/v3/images/x%3Fpreview%3Dfalse%26a/enhanced",
            params={"format": "jpeg"},
            headers={"x-api-key": "k"},
        )
    assert response.status_code == 200
    assert response.content == b"ok"
    request_line, *headers = server.heads[0].decode().split("\r\n")
    assert request_line == "GET /v3/images/x%3Fpreview%3Dfalse%26a/enhanced?format=jpeg HTTP/1.1"
    assert "x-api-key: k" in headers


async def test_a_body_comes_whole_in_chunks_of_at_most_the_chunk_size(
    client: httpx.AsyncClient,
) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)
        writer.write(answer(body))
        await writer.drain()

    async with RawServer(handler) as server:
        async with client.stream("GET", f"{server.url}/big") as response:
            chunks = [chunk async for chunk in response.aiter_raw()]
    assert b"".join(chunks) == body
    assert max(len(c) for c in chunks) <= 64 * 1024


async def test_a_connection_read_to_the_end_is_reused(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await server.head(reader)
            writer.write(answer(b"x" * 1000))
            await writer.drain()

    async with RawServer(handler) as server:
        for _ in range(2):
            assert (await client.get(f"{server.url}/a")).content == b"x" * 1000
    assert server.connections == 1


async def test_a_malformed_status_line_is_a_protocol_error(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{server.url}/a")


async def test_a_connection_closed_before_answering_is_a_protocol_error(
    client: httpx.AsyncClient,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)

    async with RawServer(handler) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{server.url}/a")


async def test_a_body_cut_short_is_a_read_error(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)
        writer.write(answer(b"y" * 50, length=100))
        await writer.drain()

    async with RawServer(handler) as server:
        with pytest.raises(httpx.ReadError):
            await client.get(f"{server.url}/a")


async def test_silence_past_the_read_timeout_is_a_read_timeout(client: httpx.AsyncClient) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        await release.wait()

    async with RawServer(handler) as server:
        try:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"{server.url}/a")
        finally:
            release.set()


async def test_a_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    async with RawServer(lambda reader, writer: asyncio.sleep(0)) as server:
        url = server.url
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{url}/a")


async def test_redirects_are_handed_back_not_followed(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as server:
        response = await client.get(f"{server.url}/a")
    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere"
    assert len(server.heads) == 1


async def test_an_answer_with_too_many_headers_is_refused(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.head(reader)
        lines = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"v" * 8000) for n in range(MAX_HEADERS + 1))
        writer.write(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{server.url}/a")
