"""Garbage to every route: always a 4xx JSON error in the upstream shape, never a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.sandbox import DEMO_ORDER_ID

BAD_BODIES: list[bytes] = [
    b"not json",
    b"[1, 2, 3]",
    b"null",
    b'"a string"',
    b"\xff\xfe\x00garbage",
    b'{"name": 5, "order_id": {"nested": true}}',
    b'{"image_name": "", "rating": 9, "cloud_type": "PURPLE"}',
    b'{"image_name": ["x"], "order_id": 7, "metadata": "x", "enhance": "perhaps"}',
    b'{"images": -1, "image_bytes": "big", "statuses": {"x": "melted"}}',
    b'{"kind": "status", "status": 999, "count": -4}',
    b'{"credits": -5, "status": "exploded"}',
    b"{" * 5000,
]
BAD_IDS = ["%00", "..%2F..%2Fetc", "a" * 3000, "%F0%9F%92%A5", "'; DROP TABLE orders; --", "%25"]
BAD_QUERIES = [
    "per_page=-1",
    "per_page=abc",
    "per_page=" + "9" * 40,
    "offset=%00%01",
    "offset=" + "A" * 500,
    "format=avif&quality=abc",
    "quality=0&scale=nan",
    "scale=inf&max_width=-3",
    "preview=perhaps&watermark=2",
    "size=enormous&finetune=maybe",
    "format=" + "x" * 100,
    "%ZZ=%ZZ&&&==",
]
ROUTES: list[tuple[str, str]] = [
    ("POST", "/v3/orders"),
    ("POST", "/v3/orders/"),
    ("GET", "/v3/orders"),
    ("GET", "/v3/orders/{id}"),
    ("PATCH", "/v3/orders/{id}"),
    ("DELETE", "/v3/orders/{id}"),
    ("POST", "/v3/images"),
    ("POST", "/v3/images/"),
    ("GET", "/v3/images/{id}"),
    ("DELETE", "/v3/images/{id}"),
    ("POST", "/v3/images/{id}/process"),
    ("GET", "/v3/images/{id}/enhanced"),
    ("GET", "/v3/images/{id}/original"),
    ("PUT", "/uploads/{id}"),
    ("GET", "/assets/{id}"),
    ("POST", "/_sandbox/orders"),
    ("POST", "/_sandbox/faults"),
    ("DELETE", "/_sandbox/faults/{id}"),
    ("PUT", "/_sandbox/account"),
    ("POST", "/_sandbox/images/{id}/status"),
]


def assert_clean_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    body: Any = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("message"), str)
    assert "Traceback" not in response.text


@pytest.fixture(scope="module")
def client(sandbox_url: str) -> Any:
    root = sandbox_url.removesuffix("/v3")
    with httpx.Client(base_url=root, headers={"x-api-key": "garbage-key"}, timeout=30) as c:
        yield c


def assert_never_5xx(response: httpx.Response) -> None:
    """Unknown keys and parameters are ignored, so garbage may succeed; it must not crash."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert_clean_4xx(response)


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_garbage_bodies_ids_and_queries(client: httpx.Client, method: str, route: str) -> None:
    for index, body in enumerate(BAD_BODIES):
        bad_id = BAD_IDS[index % len(BAD_IDS)]
        response = client.request(
            method,
            f"{route.replace('{id}', bad_id)}?{BAD_QUERIES[index % len(BAD_QUERIES)]}",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert_never_5xx(response)


# Inputs each route must refuse with the 422 ValidationError shape.
INVALID: list[tuple[str, str, Any]] = [
    ("POST", "/v3/orders/", b"not json"),
    ("POST", "/v3/orders/", [1, 2]),
    ("POST", "/v3/orders/", {"name": 5}),
    ("POST", "/v3/orders/", {"order_id": ""}),
    ("GET", "/v3/orders/?per_page=0", None),
    ("GET", "/v3/orders/?per_page=abc", None),
    ("GET", "/v3/orders/?offset=%00%01", None),
    ("PATCH", f"/v3/orders/{DEMO_ORDER_ID}", {"name": ["x"]}),
    ("POST", "/v3/images/", {}),
    ("POST", "/v3/images/", {"image_name": ""}),
    ("POST", "/v3/images/", {"image_name": "a", "rating": 9}),
    ("POST", "/v3/images/", {"image_name": "a", "cloud_type": "PURPLE"}),
    ("POST", "/v3/images/", {"image_name": "a", "metadata": "x"}),
    ("POST", "/v3/images/", {"image_name": "a", "enhance": "perhaps"}),
    ("POST", "/v3/images/", b"\xff\xfe"),
    ("POST", "/v3/images/x/process", {"rating": -1}),
    ("GET", "/v3/images/x/enhanced?quality=abc", None),
    ("GET", "/v3/images/x/original?scale=nan", None),
    ("GET", "/v3/images/x/enhanced?scale=inf", None),
    ("POST", "/_sandbox/orders", {"images": -1}),
    ("POST", "/_sandbox/orders", {"image_bytes": "big"}),
    ("POST", "/_sandbox/orders", {"images": 2, "statuses": {"5": "error"}}),
    ("POST", "/_sandbox/orders", {"statuses": {"x": "melted"}}),
    ("POST", "/_sandbox/orders", {"surprise": True}),
    ("POST", "/_sandbox/faults", {"kind": "status", "status": 999}),
    ("PUT", "/_sandbox/account", {"credits": -5}),
    ("POST", "/_sandbox/images/x/status", {"status": "exploded"}),
    ("DELETE", "/_sandbox/faults/abc", None),
]


@pytest.mark.parametrize(("method", "path", "body"), INVALID)
def test_invalid_input_is_422(client: httpx.Client, method: str, path: str, body: Any) -> None:
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = client.request(
        method, path, content=content, headers={"content-type": "application/json"}
    )
    assert_clean_4xx(response)
    assert response.status_code == 422
    assert response.json()["message"] == "Validation error"


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_no_key_and_garbage_headers(sandbox_url: str, method: str, route: str) -> None:
    root = sandbox_url.removesuffix("/v3")
    path = route.replace("{id}", "nope")
    headers = {"x-api-version": "1999-99-99", "x-dev-mode": "maybe?!", "accept": "*/*;q=nan"}
    response = httpx.request(method, root + path, headers=headers, content=b"{}", timeout=30)
    assert_clean_4xx(response)


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("PUT", "/v3/orders/")])
def test_unknown_routes_and_methods(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code in {404, 405}
    assert_clean_4xx(response)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["format", "quality", "preview", "watermark", "max_width", "scale", "size", "x"]
        ),
        st.text(max_size=12),
        max_size=5,
    )
)
def test_fuzzed_download_queries_never_500(client: httpx.Client, params: dict[str, str]) -> None:
    order = client.get(f"/v3/orders/{DEMO_ORDER_ID}").json()
    image_id = order["images"][0]["image_id"]
    response = client.get(
        f"/v3/images/{image_id}/enhanced",
        params=params,
        headers={"x-dev-mode": "true"},
        follow_redirects=True,
    )
    if response.status_code == 200:
        assert response.headers["content-type"].startswith("image/")
    else:
        assert_clean_4xx(response)
