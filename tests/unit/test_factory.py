"""Which HTTP implementation carries the image downloads."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.upstream.aiohttp_transport import AiohttpTransport
from app.upstream.bodyreader import PooledBodyTransport
from app.upstream.factory import build_upstream
from tests.support import settings_of


def settings(tmp_path: Path, **values: object) -> Settings:
    return settings_of(data_dir=tmp_path, **values)


async def test_without_the_pool_image_downloads_go_through_aiohttp(tmp_path: Path) -> None:
    clients = build_upstream(
        settings(tmp_path, image_pool_bytes=0, upstream_max_connections=40), base_url="http://x"
    )
    try:
        (download,) = clients.download_pool
        transport = download._transport
        assert isinstance(transport, AiohttpTransport)
        assert transport.max_connections == 40
        assert not isinstance(clients.http._transport, AiohttpTransport)  # API calls: httpx
    finally:
        for client in clients.http_clients:
            await client.aclose()


async def test_image_bodies_are_received_into_the_pool_by_default(tmp_path: Path) -> None:
    clients = build_upstream(
        settings(tmp_path, image_pool_request_bytes=24 * 1024**2), base_url="http://x"
    )
    try:
        (download,) = clients.download_pool
        assert isinstance(download._transport, PooledBodyTransport)
        pool = clients.client.byte_pool
        assert pool is not None
        assert (pool.max_bytes, pool.request_bytes) == (40 * 1024**2, 24 * 1024**2)
        assert not isinstance(clients.http._transport, PooledBodyTransport)  # API calls: httpx
    finally:
        for client in clients.http_clients:
            await client.aclose()


async def test_httpx_downloads_are_spread_over_small_pools(tmp_path: Path) -> None:
    clients = build_upstream(
        settings(
            tmp_path,
            image_pool_bytes=0,
            upstream_download_client="httpx",
            upstream_max_connections=40,
        ),
        base_url="http://x",
    )
    try:
        assert len(clients.download_pool) == 5
        assert not any(isinstance(c._transport, AiohttpTransport) for c in clients.download_pool)
    finally:
        for client in clients.http_clients:
            await client.aclose()


async def test_an_injected_transport_carries_everything(tmp_path: Path) -> None:
    injected = httpx.MockTransport(lambda request: httpx.Response(204))
    clients = build_upstream(settings(tmp_path), base_url="http://x", transport=injected)
    try:
        assert all(c._transport is injected for c in clients.http_clients)
    finally:
        for client in clients.http_clients:
            await client.aclose()


def test_an_unknown_download_client_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="upstream_download_client"):
        settings(tmp_path, upstream_download_client="curl")
