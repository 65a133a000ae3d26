"""The pooled-body transport against raw loopback servers, plain and TLS (a self-signed
certificate made here): bodies received into a buffer, streamed bodies, keep-alive, and every
failure as an httpx error."""

from __future__ import annotations

import asyncio
import io
import ssl
import zlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from app.sandbox.imaging import padded_jpeg
from app.upstream.bodyreader import PooledBodyTransport, pooled_body
from app.upstream.bytepool import BytePool
from app.upstream.client import AutoenhanceClient
from app.upstream.options import DownloadOptions
from testkit.tls import self_signed
from tests.unit.test_aiohttp_transport import Handler, RawServer, answer

MB = 1024 * 1024
BODY = bytes(range(256)) * 4096 + b"end"  # 1 MiB and a bit: many socket reads


Runner = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a test's coroutine on both loops: the service runs on uvloop, whose transports
    are not asyncio's."""

    def runner(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if request.param == "uvloop":
            uvloop.run(test())
        else:
            asyncio.run(test())

    return runner


class TlsServer(RawServer):
    """RawServer behind TLS with the given server context."""

    def __init__(self, handler: Handler, context: ssl.SSLContext) -> None:
        super().__init__(handler)
        self._context = context

    async def __aenter__(self) -> TlsServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"https://127.0.0.1:{port}"
        return self


async def serve_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        writer.write(answer(BODY))
        await writer.drain()


def client_of(transport: PooledBodyTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(0.5, connect=0.5))


async def received(client: httpx.AsyncClient, url: str) -> tuple[bytes, int]:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        body = pooled_body(response)
        assert body is not None
        assert body.length == len(BODY)
        buffer = bytearray(len(BODY) + 100)
        crc = await body.read_into(memoryview(buffer)[: len(BODY)])
        return bytes(buffer[: len(BODY)]), crc


def test_a_body_lands_in_the_buffer_with_its_crc_and_the_connection_is_kept(run: Runner) -> None:
    async def test() -> None:
        async with client_of(PooledBodyTransport(max_connections=2)) as plain:
            async with RawServer(serve_body) as server:
                for _ in range(3):
                    data, crc = await received(plain, f"{server.url}/image")
                    assert data == BODY
                    assert crc == zlib.crc32(BODY)
                assert server.connections == 1

    run(test)


def test_a_streamed_body_reads_as_httpx_bodies_do(run: Runner) -> None:
    async def test() -> None:
        async with client_of(PooledBodyTransport(max_connections=2)) as plain:
            async with RawServer(serve_body) as server:
                response = await plain.get(f"{server.url}/image")
                assert response.content == BODY
                assert (await plain.get(f"{server.url}/image")).content == BODY
                assert server.connections == 1

    run(test)


def test_tls_on_loopback_with_a_self_signed_certificate(run: Runner, tmp_path: Path) -> None:
    async def test() -> None:
        cert, key = self_signed(tmp_path)
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        trusting = ssl.create_default_context(cafile=str(cert))
        async with TlsServer(serve_body, server_context) as server:
            async with client_of(PooledBodyTransport(max_connections=2, ssl_context=trusting)) as c:
                for _ in range(2):
                    data, crc = await received(c, f"{server.url}/image")
                    assert data == BODY
                    assert crc == zlib.crc32(BODY)
            # The system's trust does not include this certificate: the connection is refused.
            async with client_of(PooledBodyTransport(max_connections=2)) as untrusting:
                with pytest.raises(httpx.ConnectError):
                    await untrusting.get(f"{server.url}/image")

    run(test)


def test_a_body_cut_short_is_a_read_error(run: Runner) -> None:
    async def test() -> None:
        async with client_of(PooledBodyTransport(max_connections=2)) as plain:

            async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer(BODY[:300_000], length=len(BODY)))
                await writer.drain()

            async with RawServer(cut) as server:
                with pytest.raises(httpx.ReadError):
                    await received(plain, f"{server.url}/image")

    run(test)


def test_a_body_that_stalls_is_a_read_timeout(run: Runner) -> None:
    async def test() -> None:
        async with client_of(PooledBodyTransport(max_connections=2)) as plain:

            async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer(BODY[:300_000], length=len(BODY)))
                await writer.drain()
                await asyncio.sleep(5)

            async with RawServer(stall) as server:
                with pytest.raises(httpx.ReadTimeout):
                    await received(plain, f"{server.url}/image")

    run(test)


def test_a_malformed_head_is_a_protocol_error(run: Runner) -> None:
    async def test() -> None:
        async with client_of(PooledBodyTransport(max_connections=2)) as plain:

            async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"NOT HTTP AT ALL\r\n\r\n")
                await writer.drain()

            async with RawServer(garbage) as server:
                with pytest.raises(httpx.RemoteProtocolError):
                    await plain.get(f"{server.url}/image")

    run(test)


def test_a_refused_connection_is_a_connect_error(run: Runner, refused_port: int) -> None:
    async def test() -> None:
        async with client_of(PooledBodyTransport(max_connections=2)) as plain:
            with pytest.raises(httpx.ConnectError):
                await plain.get(f"http://127.0.0.1:{refused_port}/image")

    run(test)


def test_a_chunked_body_has_no_length_and_streams(run: Runner) -> None:
    async def test() -> None:
        async with client_of(PooledBodyTransport(max_connections=2)) as plain:

            async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                writer.write(b"5\r\nhello\r\n0\r\n\r\n")
                await writer.drain()

            async with RawServer(chunked) as server, plain.stream("GET", server.url) as response:
                body = pooled_body(response)
                assert body is not None
                assert body.length is None
                assert await response.aread() == b"hello"

    run(test)


def test_the_final_hop_is_pooled_and_the_key_stays_at_the_api_origin(run: Runner) -> None:
    """The API's 302 to an asset on another origin: the asset's body lands in a pooled
    buffer, and only the API saw the key."""
    image = padded_jpeg(300_000)

    async def test() -> None:
        async def asset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await assets.head(reader)
            writer.write(answer(image))
            await writer.drain()

        async def api(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await apis.head(reader)
            location = f"{assets.url}/assets/front.jpg".encode()
            writer.write(
                b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location
            )
            await writer.drain()

        assets, apis = RawServer(asset), RawServer(api)
        pool = BytePool(max_bytes=4 * MB, request_bytes=4 * MB, max_image_bytes=MB, wait=1)
        share = pool.share()
        share.expect(0)
        http = client_of(PooledBodyTransport(max_connections=2))
        async with assets, apis, http:
            client = AutoenhanceClient(
                http, base_url=f"{apis.url}/v3", api_version="2024-01-01", byte_pool=pool
            )
            got = await client.download_enhanced(
                "img",
                io.BytesIO(),
                options=DownloadOptions(),
                api_key="secret-key",
                buffers=pool.image_buffer(share, 0),
            )
        assert got.pooled is not None
        assert bytes(got.pooled.view) == image
        assert got.crc32 == zlib.crc32(image)
        got.pooled.close()
        assert pool.lent == 0
        assert b"x-api-key: secret-key" in apis.heads[0].lower()
        assert b"x-api-key" not in assets.heads[0].lower()
        assert b"secret-key" not in assets.heads[0]

    run(test)
