"""The counters count what they say: archives served, and requests by route template."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from tests.conftest import create_order
from tests.support import UvicornThread


def served(source: str) -> float:
    return REGISTRY.get_sample_value("archives_served_total", {"source": source}) or 0.0


def answered(route: str, status: int) -> float:
    labels = {"method": "GET", "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def test_a_head_is_not_an_archive_served(service: UvicornThread, sandbox: httpx.Client) -> None:
    order = create_order(sandbox, images=2, image_bytes=3_000)
    url = f"{service.url}/orders/{order['order_id']}/images"
    httpx.get(url, timeout=30).raise_for_status()  # streamed, and now cached
    stats = httpx.get(f"{service.url}/api/stats").json()

    before = served("cache")
    head = httpx.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) > 0  # the cached copy answered the HEAD
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
    assert answered("/openapi.json", 200) == openapi + 1
    assert answered("/static/{path}", 200) == static + 1
    assert answered("unmatched", 404) == missing + 2
    text = httpx.get(f"{service.url}/metrics").text
    assert "no-such-file" not in text and "app.js" not in text
