"""The HTTP clients to the Autoenhance API and the upstream client on them (web and worker)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import httpx

from app.core.config import Settings
from app.core.identity import USER_AGENT
from app.upstream.aiohttp_transport import AiohttpTransport
from app.upstream.bodyreader import PooledBodyTransport
from app.upstream.breaker import CircuitBreaker, CredentialBreakers
from app.upstream.bytepool import BytePool
from app.upstream.client import AutoenhanceClient


class _ClientLimits(TypedDict):
    max_connections: int
    connect_timeout: float
    read_timeout: float
    max_redirects: int


@dataclass(frozen=True, slots=True)
class UpstreamClients:
    """The Autoenhance client and the HTTP clients it owns (close them all on shutdown)."""

    client: AutoenhanceClient
    http: httpx.AsyncClient
    download_pool: list[httpx.AsyncClient]

    @property
    def http_clients(self) -> list[httpx.AsyncClient]:
        return [self.http, *self.download_pool]


def build_upstream(
    settings: Settings, *, base_url: str, transport: httpx.AsyncBaseTransport | None = None
) -> UpstreamClients:
    """One shared client for API calls and the client(s) for image downloads.

    Image bytes are most of the service's work. By default (`IMAGE_POOL_BYTES` above 0)
    downloads go through `PooledBodyTransport`, whose image bodies are received into the
    buffers of one `BytePool` (`app.upstream.bodyreader`: the kernel's copy is the only one).
    With the pool off they spool, and httpcore's pure-Python HTTP/1.1 (h11) over anyio streams
    costs more per byte than aiohttp's C parser, so the download client sends through aiohttp
    (`UPSTREAM_DOWNLOAD_CLIENT`) behind the same httpx interface: redirects, retries and error
    mapping stay in `AutoenhanceClient` (`make bench`, (d): the service's CPU per GB streamed
    fell from 2.6 to 2.3 s, and to 1.6 s with larger body chunks). An injected `transport`
    (the embedded sandbox, tests) is used for everything.
    """
    limits: _ClientLimits = {
        "max_connections": settings.upstream_max_connections,
        "connect_timeout": settings.upstream_connect_timeout,
        "read_timeout": settings.upstream_read_timeout,
        "max_redirects": settings.upstream_max_redirects,
    }
    http = build_http_client(transport=transport, **limits)
    byte_pool = None
    if transport is None and settings.image_pool_bytes:
        pooled = PooledBodyTransport(max_connections=settings.upstream_max_connections)
        download_pool = [build_http_client(transport=pooled, **limits)]
        byte_pool = BytePool(
            max_bytes=settings.image_pool_bytes,
            request_bytes=settings.image_pool_request_bytes,
            max_image_bytes=settings.image_pool_max_image_bytes,
            wait=settings.image_pool_wait,
        )
    elif transport is None and settings.upstream_download_client == "aiohttp":
        download_pool = [build_http_client(transport=_aiohttp(settings), **limits)]
    else:
        download_pool = build_download_pool(transport=transport, **limits)
    client = AutoenhanceClient(
        http,
        base_url=base_url,
        api_version=settings.autoenhance_api_version,
        retries=settings.upstream_retries,
        retry_max_wait=settings.upstream_retry_max_wait,
        breaker=CircuitBreaker(
            failure_threshold=settings.circuit_failure_threshold,
            cooldown=settings.circuit_cooldown,
        ),
        credential_breakers=CredentialBreakers(
            failure_threshold=settings.circuit_failure_threshold,
            cooldown=settings.circuit_cooldown,
            max_entries=settings.circuit_max_credentials,
        ),
        download_pool=download_pool,
        max_json_bytes=settings.upstream_max_json_bytes,
        byte_pool=byte_pool,
        image_deadline=settings.upstream_image_deadline,
        max_image_bytes=settings.upstream_image_max_bytes,
    )
    return UpstreamClients(client=client, http=http, download_pool=download_pool)


def build_http_client(
    *,
    max_connections: int,
    connect_timeout: float,
    read_timeout: float,
    max_redirects: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The shared HTTP client: explicit timeouts, limits and User-Agent.

    Redirects are followed by `app.upstream.redirects` rather than by httpx, because httpx
    forwards custom headers such as `x-api-key` to whatever host a redirect names; `redirects`
    strips the key when a redirect leaves the API's origin and refuses non-http(s) targets.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=None),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        follow_redirects=False,
        max_redirects=max_redirects,
        transport=transport,
    )


# httpcore's connection pool scans every connection it holds, with a readiness syscall for each
# idle one, whenever a request starts or a response closes. With one pool of 64 connections the
# bookkeeping cost more CPU than moving the image bytes (measured: ~36% of the service's CPU in
# the streaming benchmark), so image downloads are spread over pools of this many connections.
POOL_SHARD_SIZE = 8


def build_download_pool(
    *,
    max_connections: int,
    connect_timeout: float,
    read_timeout: float,
    max_redirects: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[httpx.AsyncClient]:
    """Clients for image downloads: `max_connections` split into pools of POOL_SHARD_SIZE."""
    shards = max(1, -(-max_connections // POOL_SHARD_SIZE))
    return [
        build_http_client(
            max_connections=-(-max_connections // shards),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_redirects=max_redirects,
            transport=transport,
        )
        for _ in range(shards)
    ]


def _aiohttp(settings: Settings) -> AiohttpTransport:
    """aiohttp's connector keeps idle connections per host in a deque, so one pool of every
    connection does not cost the per-request scan that made httpcore need shards."""
    return AiohttpTransport(max_connections=settings.upstream_max_connections)
