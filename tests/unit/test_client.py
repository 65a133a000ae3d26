"""Unit tests of the upstream client with httpx.MockTransport: mapping, retries, redirects."""

from __future__ import annotations

import io
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.upstream.breaker import CircuitBreaker
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import (
    CircuitOpen,
    UpstreamError,
    UpstreamNetworkError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnauthorized,
)
from app.upstream.factory import build_http_client
from app.upstream.options import DownloadOptions

BASE = "https://api.example.test/v3"
ORDER_ID = "8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f"
Handler = Callable[[httpx.Request], httpx.Response]


def make_client(
    handler: Handler,
    *,
    retries: int = 3,
    breaker: CircuitBreaker | None = None,
    max_image_bytes: int | None = None,
) -> tuple[AutoenhanceClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = build_http_client(
        max_connections=4,
        connect_timeout=1,
        read_timeout=1,
        max_redirects=3,
        transport=httpx.MockTransport(recording),
    )
    client = AutoenhanceClient(
        http,
        base_url=BASE,
        api_version="2025-01-01",
        retries=retries,
        retry_max_wait=0.05,
        breaker=breaker or CircuitBreaker(failure_threshold=100, cooldown=1),
        max_image_bytes=max_image_bytes,
    )
    return client, seen


def order_json(**extra: object) -> dict[str, object]:
    return {
        "order_id": ORDER_ID,
        "name": "Harbour View",
        "last_updated_at": "2025-07-05T02:27:21.305Z",
        "images": [
            {"image_id": "a", "image_name": "front.jpg", "status": "processed", "extra_key": 1},
            {"id": "b", "image_name": "garden", "enhanced": True, "error": False},
            {"image_id": "c", "status": "processing"},
        ],
        "unknown_field": {"nested": True},
        **extra,
    }


async def test_get_order_parses_both_id_spellings_and_ignores_unknown_fields() -> None:
    client, seen = make_client(lambda r: httpx.Response(200, json=order_json()))
    order = await client.get_order(ORDER_ID, api_key="k1")
    assert [i.image_id for i in order.images] == ["a", "b", "c"]
    assert [i.is_ready for i in order.images] == [True, True, False]
    assert seen[0].headers["x-api-key"] == "k1"
    assert seen[0].headers["x-api-version"] == "2025-01-01"
    assert seen[0].url.path == f"/v3/orders/{ORDER_ID}"


async def test_no_key_sends_no_header() -> None:
    client, seen = make_client(lambda r: httpx.Response(200, json=order_json()))
    await client.get_order(ORDER_ID, api_key=None)
    assert "x-api-key" not in seen[0].headers


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, UpstreamNotFound),
        (401, UpstreamUnauthorized),
        (403, UpstreamUnauthorized),
        (422, UpstreamRejected),
        (402, UpstreamRejected),
    ],
)
async def test_client_errors_are_mapped_and_never_retried(
    status: int, error: type[UpstreamError]
) -> None:
    client, seen = make_client(lambda r: httpx.Response(status, json={"message": "nope"}))
    with pytest.raises(error) as info:
        await client.get_order(ORDER_ID, api_key="k")
    assert len(seen) == 1
    assert "nope" in info.value.message


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried_then_raised(status: int) -> None:
    client, seen = make_client(lambda r: httpx.Response(status), retries=2)
    with pytest.raises(UpstreamServerError):
        await client.get_order(ORDER_ID, api_key="k")
    assert len(seen) == 3


async def test_recovers_after_transient_failures() -> None:
    answers = iter(
        [httpx.Response(503), httpx.Response(500), httpx.Response(200, json=order_json())]
    )
    client, seen = make_client(lambda r: next(answers))
    order = await client.get_order(ORDER_ID, api_key="k")
    assert order.order_id == ORDER_ID
    assert len(seen) == 3


async def test_rate_limit_honours_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("asyncio.sleep", fake_sleep)
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0.03"}),
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=order_json()),
        ]
    )
    client, seen = make_client(lambda r: next(answers))
    await client.get_order(ORDER_ID, api_key="k")
    assert len(seen) == 3
    # The first wait is what the upstream asked for; the second is capped by retry_max_wait.
    assert waits == [pytest.approx(0.03), pytest.approx(0.05)]


async def test_rate_limit_exhausted_carries_retry_after() -> None:
    client, seen = make_client(
        lambda r: httpx.Response(429, headers={"Retry-After": "0"}), retries=1
    )
    with pytest.raises(UpstreamRateLimited) as info:
        await client.get_order(ORDER_ID, api_key="k")
    assert info.value.retry_after == 0
    assert len(seen) == 2


async def test_timeouts_and_connection_errors_are_retried() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        if calls["n"] == 2:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=order_json())

    client, _ = make_client(handler)
    await client.get_order(ORDER_ID, api_key="k")
    assert calls["n"] == 3


async def test_timeout_after_retries_is_mapped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, seen = make_client(handler, retries=1)
    with pytest.raises(UpstreamTimeout):
        await client.get_order(ORDER_ID, api_key="k")
    assert len(seen) == 2


async def test_network_error_after_retries_is_mapped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, _ = make_client(handler, retries=0)
    with pytest.raises(UpstreamNetworkError):
        await client.get_order(ORDER_ID, api_key="k")


async def test_download_follows_redirect_and_computes_crc() -> None:
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100 + b"\0\0\0\0IEND\xaeB`\x82"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/enhanced"):
            assert request.url.params["format"] == "png"
            assert request.url.params["preview"] == "false"
            assert request.headers["x-dev-mode"] == "true"
            return httpx.Response(302, headers={"Location": "https://cdn.example.test/asset/1"})
        assert "x-api-key" not in request.headers or request.url.host == "api.example.test"
        return httpx.Response(200, content=payload, headers={"Content-Type": "image/png"})

    client, seen = make_client(handler)
    sink = io.BytesIO()
    result = await client.download_enhanced(
        "img",
        sink,
        options=DownloadOptions(format="png", preview=False, dev_mode=True),
        api_key="k",
    )
    assert sink.getvalue() == payload
    assert result.size == len(payload)
    assert result.crc32 == zlib.crc32(payload)
    assert [r.url.host for r in seen] == ["api.example.test", "cdn.example.test"]


async def test_redirect_loop_is_a_protocol_error_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": str(request.url)})

    client, seen = make_client(handler)
    with pytest.raises(UpstreamProtocolError):
        await client.download_enhanced("img", io.BytesIO(), options=DownloadOptions(), api_key="k")
    assert len(seen) == 4  # first request + max_redirects, no retry


async def test_redirect_to_non_http_scheme_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "file:///etc/passwd"})

    client, seen = make_client(handler)
    with pytest.raises(UpstreamProtocolError):
        await client.download_enhanced("img", io.BytesIO(), options=DownloadOptions(), api_key="k")
    assert len(seen) == 1


async def test_short_body_is_detected_and_retried_into_a_clean_sink() -> None:
    good = b"\xff\xd8\xff" + b"x" * 995 + b"\xff\xd9"
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(200, content=good[:400], headers={"Content-Length": "1000"})
        return httpx.Response(200, content=good)

    client, _ = make_client(handler)
    sink = io.BytesIO()
    result = await client.download_enhanced("img", sink, options=DownloadOptions(), api_key="k")
    assert sink.getvalue() == good
    assert result.size == 1000
    assert calls["n"] == 2


async def test_a_body_without_a_length_stops_at_the_image_bound_and_is_not_retried() -> None:
    sent = {"bytes": 0}

    async def endless() -> AsyncIterator[bytes]:
        yield b"\xff\xd8\xff"
        while True:  # an upstream that never ends the picture
            sent["bytes"] += 64 * 1024
            yield b"x" * 64 * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    client, seen = make_client(handler, max_image_bytes=1_000_000)
    sink = io.BytesIO()
    with pytest.raises(UpstreamProtocolError, match="larger than 1000000 bytes"):
        await client.download_enhanced("img", sink, options=DownloadOptions(), api_key="k")
    assert len(sink.getvalue()) <= 1_000_000
    assert sent["bytes"] <= 1_000_000 + 2 * 64 * 1024
    assert len(seen) == 1


async def test_circuit_opens_after_failures_and_fails_fast() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60)
    client, seen = make_client(lambda r: httpx.Response(503), retries=0, breaker=breaker)
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            await client.get_order(ORDER_ID, api_key="k")
    with pytest.raises(CircuitOpen) as info:
        await client.get_order(ORDER_ID, api_key="k")
    assert 0 < info.value.retry_after <= 60
    assert len(seen) == 2


async def test_circuit_closes_on_success_after_cooldown() -> None:
    now = {"t": 0.0}
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10, clock=lambda: now["t"])
    answers = iter([httpx.Response(503), httpx.Response(200, json=order_json())])
    client, _ = make_client(lambda r: next(answers), retries=0, breaker=breaker)
    with pytest.raises(UpstreamServerError):
        await client.get_order(ORDER_ID, api_key="k")
    assert breaker.state == "open"
    now["t"] = 11
    # The state moves with the injected clock; mypy takes the property for a constant.
    assert breaker.state == "half-open"  # type: ignore[comparison-overlap]
    await client.get_order(ORDER_ID, api_key="k")
    assert breaker.state == "closed"


async def test_not_found_does_not_count_towards_the_circuit() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60)
    client, _ = make_client(lambda r: httpx.Response(404), retries=0, breaker=breaker)
    for _ in range(3):
        with pytest.raises(UpstreamNotFound):
            await client.get_order(ORDER_ID, api_key="k")
    assert breaker.state == "closed"


async def test_register_image_accepts_both_upload_url_spellings() -> None:
    answers = iter(
        [
            httpx.Response(
                200,
                json={
                    "image_id": "i1",
                    "order_id": ORDER_ID,
                    "s3PutObjectUrl": "https://s3.example.test/put/1",
                },
            ),
            httpx.Response(
                200,
                json={
                    "id": "i2",
                    "order_id": ORDER_ID,
                    "upload_url": "https://s3.example.test/put/2",
                },
            ),
        ]
    )
    client, seen = make_client(lambda r: next(answers))
    first = await client.register_image(
        api_key="k", order_id=ORDER_ID, image_name="a.jpg", content_type="image/jpeg"
    )
    second = await client.register_image(
        api_key="k", order_id=ORDER_ID, image_name="b.jpg", content_type="image/jpeg"
    )
    assert (first.image_id, first.upload_url) == ("i1", "https://s3.example.test/put/1")
    assert (second.image_id, second.upload_url) == ("i2", "https://s3.example.test/put/2")
    body = seen[0].read()
    assert b'"contentType":"image/jpeg"' in body.replace(b" ", b"")


async def test_list_orders_reads_pagination() -> None:
    client, seen = make_client(
        lambda r: httpx.Response(
            200, json={"orders": [order_json()], "pagination": {"per_page": 1, "next_offset": "t2"}}
        )
    )
    page = await client.list_orders(api_key="k", per_page=1, offset="t1")
    assert page.next_offset == "t2"
    assert page.orders[0].order_id == ORDER_ID
    assert seen[0].url.params["offset"] == "t1"


async def test_keys_never_reach_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    client, _ = make_client(lambda r: httpx.Response(503), retries=2)
    with pytest.raises(UpstreamServerError):
        await client.get_order(ORDER_ID, api_key="secret-key-value-123")
    assert caplog.records, "retries should have been logged"
    assert "secret-key-value-123" not in caplog.text


async def test_ids_are_quoted_as_one_path_segment() -> None:
    client, seen = make_client(lambda r: httpx.Response(200, json=order_json()))
    await client.get_order("../../images/x?format=png#", api_key="k")
    await client.delete_order("a/b", api_key="k")
    assert [r.url.raw_path for r in seen] == [
        b"/v3/orders/..%2F..%2Fimages%2Fx%3Fformat%3Dpng%23",
        b"/v3/orders/a%2Fb",
    ]
    for dots in ("", ".", ".."):
        with pytest.raises(UpstreamProtocolError, match="refusing"):
            await client.get_order(dots, api_key="k")
    assert len(seen) == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(204),
        httpx.Response(200, json={"images": []}),  # no order_id
        httpx.Response(200, json=[1, 2]),
    ],
)
async def test_an_answer_that_is_not_an_order_is_a_protocol_error(response: httpx.Response) -> None:
    client, _ = make_client(lambda r: response)
    with pytest.raises(UpstreamProtocolError, match="not an Order"):
        await client.get_order(ORDER_ID, api_key="k")


async def test_only_the_start_of_an_error_body_is_read() -> None:
    sent = {"chunks": 0}

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'{"message": "'
            while True:
                sent["chunks"] += 1
                yield b"x" * 16384

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, stream=Endless())

    client, _ = make_client(handler)
    with pytest.raises(UpstreamRejected) as caught:
        await client.download_enhanced("img", io.BytesIO(), options=DownloadOptions(), api_key="k")
    assert caught.value.message == "upstream answered 422"  # cut JSON: no message parsed
    assert sent["chunks"] <= 64 * 1024 // 16384 + 1
