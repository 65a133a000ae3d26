"""Image bodies received into pooled buffers (IMAGE_POOL_BYTES): the same archive bytes as the
spool (also from an https upstream, cached on S3, and rendered into variants), the pool's
bounds under many requests, a slow client and a client that leaves, and the shared circuit.

The fault matrix (test_fault_matrix.py, its "pooled" case) meets every failure of an image
download on this path; the transport itself (TLS, the redirect's key rule, cut and stalled
bodies) is in tests/unit/test_bodyreader.py, the pool's grants in tests/unit/test_bytepool.py."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import ssl
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from app.main import create_app
from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.upstream import factory
from app.upstream.bytepool import BytePool
from app.web.server import with_header_timeout
from testkit.processes import wait_for
from testkit.tls import self_signed
from tests.conftest import SettingsFactory, create_order
from tests.integration.resume_support import store_settings
from tests.support import SandboxControl, UvicornThread

MB = 1024 * 1024


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[BytePool]:
    """Every pool the services of this test build (a real BytePool, recorded)."""
    made: list[BytePool] = []

    class Recorded(BytePool):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            made.append(self)

    monkeypatch.setattr(factory, "BytePool", Recorded)
    return made


def bodies(into: str) -> float:
    return REGISTRY.get_sample_value("image_bodies_total", {"into": into}) or 0.0


def archive_of(server: UvicornThread, order_id: str) -> bytes:
    response = httpx.get(f"{server.url}/orders/{order_id}/images", timeout=120)
    assert response.status_code == 200, response.text
    return response.content


def checked(data: bytes, images: int) -> None:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert len([n for n in archive.namelist() if not n.startswith("_")]) == images


def test_pooled_mixed_and_spooled_archives_are_byte_identical(
    make_settings: SettingsFactory, sandbox: SandboxControl, pools: list[BytePool]
) -> None:
    order = create_order(sandbox, images=8, image_bytes=3 * MB)["order_id"]
    variants: dict[str, dict[str, Any]] = {
        "pooled": {"image_pool_bytes": 64 * MB},
        # Room for one image at a time: the others wait, and some go to the spool.
        "mixed": {
            "image_pool_bytes": 4 * MB,
            "image_pool_request_bytes": 4 * MB,
            "image_pool_wait": 0.05,
        },
        "aiohttp": {"image_pool_bytes": 0},
        "httpx": {"image_pool_bytes": 0, "upstream_download_client": "httpx"},
    }
    archives: dict[str, bytes] = {}
    counts: dict[str, tuple[float, float]] = {}
    for name, overrides in variants.items():
        pooled, spooled = bodies("pool"), bodies("spool")
        settings = make_settings(archive_cache_max_bytes=0, **overrides)
        # The pooled variants are served as every start command serves them: by the
        # project's protocol, which writes chunks as views (`WritelinesCycle`).
        protocol = {"http": with_header_timeout(30)} if settings.image_pool_bytes else {}
        with UvicornThread(create_app(settings), **protocol) as server:
            archives[name] = archive_of(server, order)
        counts[name] = (bodies("pool") - pooled, bodies("spool") - spooled)
    checked(archives["aiohttp"], 8)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in archives.items()}
    assert len(set(digests.values())) == 1, digests
    assert counts["pooled"] == (8, 0)
    assert counts["mixed"][0] >= 1
    assert sum(counts["mixed"]) == 8
    assert counts["aiohttp"] == (0, 8)
    assert all(pool.lent == 0 and pool.peak <= pool.max_bytes for pool in pools)


def test_many_concurrent_requests_stay_within_the_pool(
    make_settings: SettingsFactory, sandbox: SandboxControl, pools: list[BytePool]
) -> None:
    orders = [create_order(sandbox, images=6, image_bytes=2 * MB)["order_id"] for _ in range(6)]
    settings = make_settings(
        image_pool_bytes=12 * MB, image_pool_request_bytes=6 * MB, image_pool_wait=0.2
    )
    with UvicornThread(create_app(settings)) as server:
        reference = archive_of(server, orders[0])
        with concurrent.futures.ThreadPoolExecutor(len(orders)) as clients:
            results = list(clients.map(lambda o: archive_of(server, o), orders))
        (pool,) = pools
        wait_for(lambda: pool.lent == 0, timeout=10)
    for data in results:
        checked(data, 6)
    assert results[0] == reference
    assert 0 < pool.peak <= 12 * MB
    assert pool.held <= 12 * MB


@pytest.fixture
def pooled_server(
    make_settings: SettingsFactory, pools: list[BytePool]
) -> Iterator[tuple[UvicornThread, BytePool]]:
    settings = make_settings(
        image_pool_bytes=16 * MB, image_pool_request_bytes=8 * MB, image_pool_wait=0.2
    )
    with UvicornThread(create_app(settings), http=with_header_timeout(30)) as server:
        (pool,) = pools
        yield server, pool


def test_a_slow_client_holds_no_more_than_its_share(
    pooled_server: tuple[UvicornThread, BytePool], sandbox: SandboxControl
) -> None:
    server, pool = pooled_server
    slow_order = create_order(sandbox, images=20, image_bytes=2 * MB)["order_id"]
    other = create_order(sandbox, images=6, image_bytes=2 * MB)["order_id"]
    url = f"{server.url}/orders/{slow_order}/images"
    with httpx.stream("GET", url, timeout=60) as response:
        chunks = response.iter_raw(64 * 1024)
        next(chunks)
        # The slow client's downloads run ahead until its share is lent out.
        wait_for(lambda: pool.lent >= 6 * MB, timeout=20)
        assert pool.lent <= 8 * MB  # its share, whatever its window would allow
        before = bodies("pool")
        checked(archive_of(server, other), 6)
        # Another request still gets buffers from what the slow one cannot take.
        assert bodies("pool") > before
        received = sum(len(chunk) for chunk in chunks)
    assert received > 38 * MB
    wait_for(lambda: pool.lent == 0, timeout=10)
    assert pool.peak <= 16 * MB


@pytest.mark.parametrize("at", [1, 3 * MB, 9 * MB + MB // 2])
def test_a_client_that_leaves_mid_image_gives_every_buffer_back(
    pooled_server: tuple[UvicornThread, BytePool], sandbox: SandboxControl, at: int
) -> None:
    server, pool = pooled_server
    order = create_order(sandbox, images=10, image_bytes=2 * MB)["order_id"]
    with httpx.stream("GET", f"{server.url}/orders/{order}/images", timeout=60) as response:
        received = 0
        for chunk in response.iter_raw(64 * 1024):
            received += len(chunk)
            if received >= at:
                break
    wait_for(lambda: pool.lent == 0, timeout=10)
    wait_for(lambda: not [n for n in server.task_names() if n.startswith("batch-")], timeout=10)
    # The pool serves the next request in full.
    checked(archive_of(server, order), 10)
    assert pool.lent == 0


def test_a_pooled_archive_is_cached_on_s3_as_streamed(
    make_settings: SettingsFactory,
    sandbox: SandboxControl,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The archive's chunks are views of pooled buffers; the S3 store that caches it as it
    streams takes them like bytes, and the cached copy is the streamed one."""
    order = create_order(sandbox, images=4, image_bytes=2 * MB)["order_id"]
    settings = store_settings("s3", make_settings, request, image_pool_bytes=16 * MB)
    with UvicornThread(create_app(settings), http=with_header_timeout(30)) as server:
        pooled_before = bodies("pool")
        streamed = archive_of(server, order)
        assert bodies("pool") - pooled_before == 4
        again = archive_of(server, order)
    checked(streamed, 4)
    assert again == streamed
    assert not [r for r in caplog.records if "storage failed" in r.getMessage()]


def test_variants_are_rendered_from_pooled_images(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    """The decoder of a variant reads a pooled image whole, as it reads a spooled one."""
    order = create_order(sandbox, images=3, image_bytes=MB)["order_id"]
    archives = {}
    for pool in (16 * MB, 0):
        settings = make_settings(image_pool_bytes=pool, archive_cache_max_bytes=0)
        with UvicornThread(create_app(settings), http=with_header_timeout(30)) as server:
            pooled_before = bodies("pool")
            url = f"{server.url}/orders/{order}/images"
            response = httpx.get(url, params={"variants": "mls", "dev_mode": "true"}, timeout=60)
            assert response.status_code == 200, response.text
            assert bodies("pool") - pooled_before == (3 if pool else 0)
        archives[pool] = response.content
    names = zipfile.ZipFile(io.BytesIO(archives[0])).namelist()
    assert len([n for n in names if n.startswith("MLS/")]) == 3
    assert archives[16 * MB] == archives[0]


def test_an_archive_from_an_https_upstream_is_pooled_and_the_same_as_over_http(
    make_settings: SettingsFactory,
    sandbox: SandboxControl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pooled bodies arrive over asyncio's SSL transport (a sandbox served over TLS with a
    certificate the service trusts through SSL_CERT_FILE), and the archive is the one the
    same images make over plain HTTP."""
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    upstream = create_sandbox_app(SandboxConfig(processing_delay=0, seed_demo=False))
    with UvicornThread(upstream, ssl_certfile=str(cert), ssl_keyfile=str(key)) as tls:
        https = f"https://127.0.0.1:{tls.port}"
        created = httpx.post(
            f"{https}/_sandbox/orders",
            json={"images": 4, "image_bytes": 2 * MB},
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=60,
        )
        created.raise_for_status()
        order = created.json()["order_id"]
        settings = make_settings(autoenhance_api_base=f"{https}/v3", image_pool_bytes=16 * MB)
        with UvicornThread(create_app(settings), http=with_header_timeout(30)) as server:
            pooled_before = bodies("pool")
            over_tls = archive_of(server, order)
            assert bodies("pool") - pooled_before == 4
    plain_order = create_order(sandbox, images=4, image_bytes=2 * MB)["order_id"]
    with UvicornThread(create_app(make_settings(image_pool_bytes=0))) as server:
        over_http = archive_of(server, plain_order)
    checked(over_tls, 4)
    assert entries_of(over_tls) == entries_of(over_http)


def entries_of(data: bytes) -> list[tuple[str, int, int]]:
    return [(i.filename, i.file_size, i.CRC) for i in zipfile.ZipFile(io.BytesIO(data)).infolist()]


def test_image_downloads_failing_on_the_pooled_path_open_the_shared_circuit(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    """Every failure of a pooled download reaches the breaker as an upstream failure: after
    `CIRCUIT_FAILURE_THRESHOLD` of them the next request fails fast and /ready says so."""
    order = create_order(sandbox, images=3, image_bytes=MB)
    settings = make_settings(
        image_pool_bytes=16 * MB,
        upstream_retries=0,
        circuit_failure_threshold=3,
        circuit_cooldown=60,
        readiness_cache_seconds=0,
        download_concurrency=1,
    )
    sandbox.post(
        "/_sandbox/faults", json={"kind": "status", "status": 500, "scope": "enhanced"}
    ).raise_for_status()
    with UvicornThread(create_app(settings), http=with_header_timeout(30)) as server:
        url = f"{server.url}/orders/{order['order_id']}/images"
        first = httpx.get(url, timeout=60)
        again = httpx.get(url, timeout=60)
        ready = httpx.get(f"{server.url}/ready", timeout=30)
    assert first.status_code == 422, first.text  # every image answered 500
    assert first.json()["error"] == "nothing_to_deliver"
    assert again.status_code == 503, again.text  # the circuit is open: no request upstream
    assert ready.json()["checks"]["circuit"]["ok"] is False
