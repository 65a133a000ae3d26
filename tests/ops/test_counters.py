"""The counters count what they say: archives served, and requests by route template."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client import REGISTRY

from tests.conftest import create_order
from tests.support import UvicornThread


def served(source: str) -> float:
    return REGISTRY.get_sample_value("archives_served_total", {"source": source}) or 0.0


def answered(route: str, status: int) -> float:
    labels = {"method": "GET", "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def settled(read: Callable[[], float], expected: float, *, timeout: float = 10.0) -> float:
    """`read()` once it equals `expected` (or at the deadline): the server thread counts an
    answer when it has finished sending it, which may be just after the client has read it."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.01)
        value = read()
    return value


def test_a_head_is_not_an_archive_served(service: UvicornThread, sandbox: httpx.Client) -> None:
    order = create_order(sandbox, images=2, image_bytes=3_000)
    url = f"{service.url}/orders/{order['order_id']}/images"
    streamed = served("stream")
    httpx.get(url, timeout=30).raise_for_status()
    # The stream is counted, and cached, once the server has sent its last byte.
    assert settled(lambda: served("stream"), streamed + 1) == streamed + 1
    deadline = time.monotonic() + 10
    while "content-length" not in httpx.head(url).headers:  # the cached copy answers HEADs
        assert time.monotonic() < deadline, "the archive was not cached"
        time.sleep(0.01)
    stats = httpx.get(f"{service.url}/api/stats").json()

    before = served("cache")
    head = httpx.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) > 0
    assert served("cache") == before
    assert (
        httpx.get(f"{service.url}/api/stats").json()["archives_served"]
        == (stats["archives_served"])
    )

    httpx.get(url, timeout=30).raise_for_status()
    assert served("cache") == before + 1
    assert httpx.get(f"{service.url}/api/stats").json()["archives_served"] == (
        stats["archives_served"] + 1
    )


def test_the_openapi_document_and_static_files_have_their_own_labels(
    service: UvicornThread,
) -> None:
    openapi, static, missing = (
        answered("/openapi.json", 200),
        answered("/static/{path}", 200),
        answered("unmatched", 404),
    )
    assert httpx.get(f"{service.url}/openapi.json").status_code == 200
    assert httpx.get(f"{service.url}/static/app.js").status_code == 200
    assert httpx.get(f"{service.url}/static/no-such-file.js").status_code == 404
    assert httpx.get(f"{service.url}/no/such/route").status_code == 404
    assert settled(lambda: answered("/openapi.json", 200), openapi + 1) == openapi + 1
    assert settled(lambda: answered("/static/{path}", 200), static + 1) == static + 1
    assert settled(lambda: answered("unmatched", 404), missing + 2) == missing + 2
    text = httpx.get(f"{service.url}/metrics").text
    assert "no-such-file" not in text
    assert "app.js" not in text
