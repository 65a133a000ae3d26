"""Bring your own key: it reaches the upstream, never a log line, and never another's data."""

from __future__ import annotations

import io
import logging
import uuid
import zipfile

import httpx
import pytest

from app.main import create_app
from testkit.processes import ROOT
from tests.conftest import SettingsFactory, create_order
from tests.support import SandboxControl, UvicornThread

KEY_A = "caller-a-secret-key-1111"
KEY_B = "caller-b-secret-key-2222"


def test_own_key_reaches_upstream_and_no_log_line(
    make_settings: SettingsFactory, sandbox: SandboxControl, caplog: pytest.LogCaptureFixture
) -> None:
    own_key = f"caller-own-secret-key-{uuid.uuid4().hex}"  # this test's log is read by it
    caplog.set_level(logging.DEBUG)
    access = logging.getLogger("uvicorn.access")
    with UvicornThread(create_app(make_settings(log_level="DEBUG"))) as server:
        access.setLevel(logging.INFO)
        access.addHandler(caplog.handler)
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                own = {"X-Autoenhance-Key": own_key}
                files = [("files", ("front.jpg", (ROOT / "sample_images/garden.jpg").read_bytes()))]
                created = client.post("/api/create-order", files=files, headers=own)
                assert created.status_code == 201
                order_id = created.json()["order_id"]
                assert client.get(f"/orders/{order_id}", headers=own).status_code == 200
                refused = client.get(f"/orders/{order_id}", headers={"X-Autoenhance-Key": "x y"})
                assert refused.status_code == 401
        finally:
            access.removeHandler(caplog.handler)

    calls = sandbox.log(own_key)
    create_calls = [
        c for c in calls if c["method"] == "POST" and c["path"].startswith("/v3/orders")
    ]
    assert len(create_calls) == 1
    assert create_calls[0]["api_key"] is True
    assert all(c["api_key"] for c in calls if c["route"] == "order")

    lines = [record.getMessage() for record in caplog.records]
    assert any("/api/create-order" in line for line in lines)  # the access log was captured
    assert any("order created" in line for line in lines)  # and the service's own lines
    text = "\n".join(lines + [repr(record.__dict__) for record in caplog.records])
    for secret in (own_key, sandbox.operator_key):
        assert secret not in text


def test_an_order_created_with_one_key_is_invisible_to_another(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        created = client.post("/api/create-sample-order", headers={"X-Autoenhance-Key": KEY_A})
        assert created.status_code == 201
        order_id = created.json()["order_id"]
        mine = client.get(f"/orders/{order_id}", headers={"X-Autoenhance-Key": KEY_A})
        assert mine.status_code == 200
        assert mine.json()["image_count"] == 3
        theirs = client.get(f"/orders/{order_id}/images", headers={"X-Autoenhance-Key": KEY_B})
        assert theirs.status_code == 404
        operator = client.get(f"/orders/{order_id}/images")
        assert operator.status_code == 404


def test_a_cached_archive_is_never_served_to_another_key(
    service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=20_000, api_key=KEY_A)
    url = f"{service.url}/orders/{order['order_id']}/images"
    with httpx.Client(timeout=60) as client:
        first = client.get(url, headers={"X-Autoenhance-Key": KEY_A})
        assert first.status_code == 200
        assert "content-length" not in first.headers
        again = client.get(url, headers={"X-Autoenhance-Key": KEY_A})
        assert again.status_code == 200
        assert "content-length" in again.headers
        assert again.headers["etag"] == first.headers["etag"]
        assert again.content == first.content
        assert len(zipfile.ZipFile(io.BytesIO(again.content)).namelist()) == 3
        for other in ({"X-Autoenhance-Key": KEY_B}, {}):
            response = client.get(url, headers=other)
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/json")
