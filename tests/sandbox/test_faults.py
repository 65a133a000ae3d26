"""Each fault knob does what it says, observed over a real socket."""

from __future__ import annotations

import concurrent.futures
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.sandbox import DEMO_ORDER_ID
from testkit.processes import wait_for
from tests.sandbox.helpers import assert_http_error, jpeg_bytes, synthetic
from tests.support import SandboxControl

BODY_BYTES = 200_000


@pytest.fixture
def image_id(sandbox: SandboxControl) -> str:
    """A processed synthetic image of BODY_BYTES, shared (readable with any key)."""
    order = synthetic(sandbox, image_bytes=BODY_BYTES)
    value: str = order["images"][0]["image_id"]
    return value


def inject(sandbox: SandboxControl, **fault: Any) -> dict[str, Any]:
    response = sandbox.post("/_sandbox/faults", json=fault)
    assert response.status_code == 200, response.text
    added: dict[str, Any] = response.json()["faults"][0]
    return added


def raw_get(url: str, headers: dict[str, str], *, timeout: float = 10.0) -> tuple[str, bytes]:
    """GET over a bare socket; return (header block, every body byte until EOF)."""
    parts = urlsplit(url)
    lines = [
        f"GET {parts.path}?{parts.query} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Connection: keep-alive",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        # Read to EOF: had the server kept the connection alive, this would time out.
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), body


def content_length(head: str) -> int:
    fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
    return int(fields["content-length"])


def asset_url(api: httpx.Client, image_id: str) -> str:
    response = api.get(
        f"/images/{image_id}/enhanced", params={"preview": "false"}, headers={"x-dev-mode": "true"}
    )
    assert response.status_code == 302
    return str(response.url.join(response.headers["location"]))


def test_latency_delays_answers_for_count_requests(
    api: httpx.Client, sandbox: SandboxControl
) -> None:
    inject(sandbox, kind="latency", ms=400, scope="order", count=1)
    started = time.monotonic()
    assert api.get(f"/orders/{DEMO_ORDER_ID}").status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    api.get(f"/orders/{DEMO_ORDER_ID}")
    assert time.monotonic() - started < 0.3
    assert sandbox.get("/_sandbox/faults").json()["faults"] == []


def test_bandwidth_throttles_the_body_and_follows_the_redirect(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    inject(sandbox, kind="bandwidth", bytes_per_s=400_000, scope="enhanced")
    started = time.monotonic()
    response = api.get(f"/images/{image_id}/enhanced", follow_redirects=True)
    elapsed = time.monotonic() - started
    assert len(response.content) == BODY_BYTES
    assert elapsed >= 0.45  # 200 kB at 400 kB/s


@pytest.mark.parametrize("status", [500, 502, 503])
def test_error_status_injection(api: httpx.Client, sandbox: SandboxControl, status: int) -> None:
    inject(sandbox, kind="status", status=status, scope="order", count=1)
    assert_http_error(api.get(f"/orders/{DEMO_ORDER_ID}"), status)
    assert api.get(f"/orders/{DEMO_ORDER_ID}").status_code == 200


def test_429_carries_retry_after(api: httpx.Client, sandbox: SandboxControl, image_id: str) -> None:
    inject(sandbox, kind="status", status=429, retry_after=7, scope="enhanced")
    response = api.get(f"/images/{image_id}/enhanced")
    assert_http_error(response, 429)
    assert response.headers["retry-after"] == "7"
    # Scoped to downloads: metadata still works.
    assert api.get(f"/orders/{DEMO_ORDER_ID}").status_code == 200


def test_image_scoped_fault_spares_other_images(api: httpx.Client, sandbox: SandboxControl) -> None:
    first, second = (i["image_id"] for i in synthetic(sandbox, images=2)["images"])
    inject(sandbox, kind="status", status=500, image_ids=[first])
    assert api.get(f"/images/{first}/enhanced").status_code == 500
    assert api.get(f"/images/{second}/enhanced").status_code == 302


def test_stall_before_answering_times_out_the_client(
    sandbox_url: str, api_key: str, sandbox: SandboxControl
) -> None:
    inject(sandbox, kind="stall", seconds=3, phase="before", scope="order", count=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{sandbox_url}/orders/{DEMO_ORDER_ID}", timeout=0.5)


def test_stall_mid_body_sends_headers_then_hangs(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    url = asset_url(api, image_id)
    inject(sandbox, kind="stall", seconds=3, phase="mid_body", scope="asset", count=1)
    with httpx.stream("GET", url, timeout=0.5) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(BODY_BYTES)
        with pytest.raises(httpx.ReadTimeout):
            response.read()


def test_reset_mid_body_breaks_the_transfer(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    url = asset_url(api, image_id)
    inject(sandbox, kind="reset", scope="asset", count=2)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    head, body = raw_get(url, {})
    assert head.startswith("http/1.1 200")
    assert content_length(head) == BODY_BYTES
    assert 0 < len(body) < BODY_BYTES  # about half, then EOF


def test_short_body_ends_before_content_length(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    url = asset_url(api, image_id)
    inject(sandbox, kind="short_body", missing_bytes=1000, scope="asset", count=2)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    head, body = raw_get(url, {})
    assert content_length(head) == BODY_BYTES
    assert len(body) == BODY_BYTES - 1000


def test_long_body_is_cut_at_content_length_and_the_connection_closed(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    url = asset_url(api, image_id)
    inject(sandbox, kind="long_body", extra_bytes=5000, scope="asset", count=1)
    # uvicorn never writes past Content-Length: exactly the declared bytes arrive, then EOF
    # although the request asked for keep-alive (raw_get reads until the server closes).
    head, body = raw_get(url, {}, timeout=5)
    assert content_length(head) == BODY_BYTES
    assert len(body) == BODY_BYTES


def test_redirect_loop(api: httpx.Client, sandbox: SandboxControl, image_id: str) -> None:
    inject(sandbox, kind="redirect_loop", scope="enhanced")
    response = api.get(f"/images/{image_id}/enhanced", params={"format": "png"})
    assert response.status_code == 302
    assert response.headers["location"] == f"/v3/images/{image_id}/enhanced?format=png"
    with pytest.raises(httpx.TooManyRedirects):
        api.get(f"/images/{image_id}/enhanced", follow_redirects=True)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.invalid/x.jpg"])
def test_redirect_to_a_non_http_scheme(
    api: httpx.Client, sandbox: SandboxControl, image_id: str, location: str
) -> None:
    inject(sandbox, kind="bad_redirect", location=location, scope="enhanced")
    response = api.get(f"/images/{image_id}/enhanced")
    assert response.status_code == 302
    assert response.headers["location"] == location
    with pytest.raises(httpx.UnsupportedProtocol):
        api.get(f"/images/{image_id}/enhanced", follow_redirects=True)


def test_down_refuses_everything_but_control_for_count_requests(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    inject(sandbox, kind="down", retry_after=2, count=2)
    first = api.get(f"/orders/{DEMO_ORDER_ID}")
    assert_http_error(first, 503)
    assert first.headers["retry-after"] == "2"
    assert_http_error(api.get(f"/images/{image_id}/enhanced"), 503)
    assert sandbox.get("/_sandbox/health").status_code == 200
    assert api.get(f"/orders/{DEMO_ORDER_ID}").status_code == 200


def test_down_until_cleared(api: httpx.Client, sandbox: SandboxControl) -> None:
    inject(sandbox, kind="down")
    for _ in range(3):
        assert api.get(f"/orders/{DEMO_ORDER_ID}").status_code == 503
    assert sandbox.delete("/_sandbox/faults").status_code == 204
    assert api.get(f"/orders/{DEMO_ORDER_ID}").status_code == 200


def test_stuck_processing_holds_an_image_until_cleared(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    fault = inject(sandbox, kind="stuck", status="processing", image_ids=[image_id])
    held = api.get(f"/images/{image_id}").json()
    assert held["status"] == "processing"
    assert api.get(f"/images/{image_id}/enhanced").status_code == 422
    assert sandbox.delete(f"/_sandbox/faults/{fault['id']}").status_code == 204
    wait_for(lambda: api.get(f"/images/{image_id}").json()["status"] == "processed")


def test_stuck_error_fails_the_next_upload_with_a_reason(
    api: httpx.Client, sandbox: SandboxControl
) -> None:
    inject(sandbox, kind="stuck", status="error", status_reason="Rate limited", count=1)
    image = api.post("/images/", json={"image_name": "x"}).json()
    httpx.put(image["upload_url"], content=jpeg_bytes()).raise_for_status()

    def errored() -> dict[str, Any] | None:
        current: dict[str, Any] = api.get(f"/images/{image['image_id']}").json()
        return current if current["status"] == "error" else None

    current = wait_for(errored)
    assert current["status_reason"] == "Rate limited"
    assert current["error"] is True
    order = api.get(f"/orders/{image['order_id']}").json()
    assert order["status"] == "error"
    assert order["is_processing"] is False


INVALID_FAULTS: list[Any] = [
    {"kind": "meteor"},
    {"kind": "status", "status": 418},
    {"kind": "latency"},
    {"kind": "latency", "ms": 5, "scope": "moon"},
    [{"kind": "down", "count": 0}],
    {"kind": "down", "surprise": True},
]


@pytest.mark.parametrize("body", INVALID_FAULTS)
def test_invalid_fault_is_422(sandbox: SandboxControl, body: Any) -> None:
    assert_http_error(sandbox.post("/_sandbox/faults", json=body), 422)
    assert sandbox.get("/_sandbox/faults").json()["faults"] == []


def test_request_log_records_requests_without_key_values(
    api: httpx.Client, sandbox: SandboxControl, api_key: str
) -> None:
    order_id = api.post("/orders", json={"name": "request log"}).json()["order_id"]
    missing = str(uuid.uuid4())
    api.get(f"/orders/{order_id}", params={"x": "1"}, headers={"x-dev-mode": "true"})
    httpx.get(str(api.base_url.join(f"orders/{missing}")))
    everything = sandbox.get("/_sandbox/requests")
    assert api_key not in everything.text
    keyless = [e for e in everything.json()["requests"] if e["path"] == f"/v3/orders/{missing}"]
    assert [(e["status"], e["api_key"], e["dev_mode"]) for e in keyless] == [(404, False, False)]
    mine = sandbox.log()
    assert [(e["method"], e["path"], e["status"]) for e in mine] == [
        ("POST", "/v3/orders", 200),
        ("GET", f"/v3/orders/{order_id}", 200),
    ]
    assert mine[1]["query"] == "x=1"
    assert (mine[1]["api_key"], mine[1]["dev_mode"]) == (True, True)


def test_request_log_is_read_and_cleared_per_key(
    api: httpx.Client, sandbox: SandboxControl, sandbox_url: str, image_id: str
) -> None:
    other_key = f"other-{uuid.uuid4().hex}"
    api.get(f"/images/{image_id}/enhanced")
    theirs = httpx.get(f"{sandbox_url}/images/{image_id}", headers={"x-api-key": other_key})
    assert theirs.status_code == 200
    mine = sandbox.log()
    # The asset leg carries no key; it is filed under the key that was redirected to it.
    assert [e["route"] for e in mine] == ["enhanced"]
    assert [e["route"] for e in sandbox.log(other_key)] == ["order"]
    assert sandbox.delete("/_sandbox/requests", headers={"x-api-key": other_key}).status_code == 204
    assert sandbox.log(other_key) == []
    assert sandbox.log() == mine
    assert sandbox.delete("/_sandbox/requests").status_code == 204
    assert sandbox.log() == []


def test_request_log_files_an_asset_leg_under_the_redirected_key(
    api: httpx.Client, sandbox: SandboxControl, image_id: str
) -> None:
    url = asset_url(api, image_id)
    assert httpx.get(url).status_code == 200
    assert [e["route"] for e in sandbox.log()] == ["enhanced", "asset"]


@pytest.mark.parametrize("phase", ["before", "mid_body"])
def test_clearing_faults_ends_the_requests_they_hold(
    api: httpx.Client, sandbox: SandboxControl, image_id: str, phase: str
) -> None:
    url = asset_url(api, image_id)
    inject(sandbox, kind="stall", seconds=600, phase=phase, scope="asset")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.get, url, timeout=30)
        wait_for(lambda: sandbox.get("/_sandbox/faults").json()["waiting"] == 1)
        assert sandbox.delete("/_sandbox/faults").status_code == 204
        # The held request ends now, not when its stall would have run out.
        wait_for(lambda: [e for e in sandbox.log() if e["route"] == "asset"])
        assert sandbox.get("/_sandbox/faults").json() == {"faults": [], "waiting": 0}
        error = pending.exception(timeout=30)
    if phase == "before":
        assert error is None
        assert pending.result().status_code == 500
    else:
        assert isinstance(error, httpx.RemoteProtocolError)
