"""POST /orders/{id}/download-link: signed links that work without a key, and only unchanged."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from app.core.keys import ServiceKeys
from app.core.security import Signer
from app.sandbox import DEMO_ORDER_ID
from tests.ui.conftest import ServiceFactory

SERVICE_KEY = "service-key-0123456789"
OTHER_ORDER = "00000000-0000-4000-8000-000000000000"


def _tampered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    params.update(changes)
    return parts.path + "?" + urlencode(params)


def test_link_downloads_the_archive_without_a_key(sandbox_service: ServiceFactory) -> None:
    with (
        sandbox_service(service_api_key=SERVICE_KEY) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        response = client.post(
            f"/orders/{DEMO_ORDER_ID}/download-link",
            json={"format": "jpeg", "max_width": 800},
            headers={"X-API-Key": SERVICE_KEY},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        url = body["url"]
        assert url.startswith(f"/orders/{DEMO_ORDER_ID}/images?")
        params = dict(parse_qsl(urlsplit(url).query))
        assert params["max_width"] == "800"
        assert params["format"] == "jpeg"
        assert len(params["sig"]) == 64
        expires_at = datetime.fromisoformat(body["expires_at"]).timestamp()
        assert int(params["expires"]) == int(expires_at)
        assert 590 <= expires_at - time.time() <= 600

        archive = client.get(url)
        assert archive.status_code == 200, archive.text
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
            assert zf.testzip() is None
            assert sorted(zf.namelist()) == ["garden.jpg", "house-front.jpg", "living-room.jpg"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"max_width": "801"}, id="changed option"),
        pytest.param({"preview": "false"}, id="changed preview"),
        pytest.param({"expires": "9999999999"}, id="extended expiry"),
        pytest.param({"sig": "0" * 64}, id="forged signature"),
    ],
)
def test_tampered_link_is_refused(sandbox_service: ServiceFactory, change: dict[str, str]) -> None:
    with (
        sandbox_service(service_api_key=SERVICE_KEY) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        url = client.post(
            f"/orders/{DEMO_ORDER_ID}/download-link?max_width=800",
            headers={"X-API-Key": SERVICE_KEY},
        ).json()["url"]
        response = client.head(_tampered(url, **change))
        assert response.status_code == 401
        assert client.head(url).status_code == 200


def test_link_for_one_order_does_not_open_another(sandbox_service: ServiceFactory) -> None:
    with (
        sandbox_service(service_api_key=SERVICE_KEY) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        url = client.post(
            f"/orders/{DEMO_ORDER_ID}/download-link", headers={"X-API-Key": SERVICE_KEY}
        ).json()["url"]
        other = url.replace(DEMO_ORDER_ID, OTHER_ORDER)
        response = client.get(other)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


def test_expired_link_is_refused(sandbox_service: ServiceFactory) -> None:
    secret = "signing-secret-0123456789"
    path = f"/orders/{DEMO_ORDER_ID}/images"
    signer = Signer(ServiceKeys.derive(secret.encode()).links)
    expired = signer.sign(path, {"format": "jpeg"}, ttl=10, now=time.time() - 60).url
    fresh = signer.sign(path, {"format": "jpeg"}, ttl=10).url
    with sandbox_service(service_api_key=SERVICE_KEY, signing_secret=secret) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.head(expired).status_code == 401
            assert client.head(fresh).status_code == 200


def test_issuing_a_link_needs_the_service_key(sandbox_service: ServiceFactory) -> None:
    with (
        sandbox_service(service_api_key=SERVICE_KEY) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        response = client.post(f"/orders/{DEMO_ORDER_ID}/download-link")
        assert response.status_code == 401
        assert set(response.json()) >= {"error", "detail"}


def test_own_key_callers_get_no_operator_link(sandbox_service: ServiceFactory) -> None:
    with (
        sandbox_service(service_api_key=SERVICE_KEY) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        response = client.post(
            f"/orders/{DEMO_ORDER_ID}/download-link",
            headers={"X-Autoenhance-Key": "someone-elses-key"},
        )
        assert response.status_code == 403
        assert response.json()["error"] == "own_key_not_linkable"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/orders/not-a-uuid/download-link", None, 400, "invalid_order_id"),
        (f"/orders/{DEMO_ORDER_ID}/download-link", {"format": "gif"}, 422, "validation_error"),
        (f"/orders/{DEMO_ORDER_ID}/download-link", {"quality": 0}, 422, "validation_error"),
        (f"/orders/{DEMO_ORDER_ID}/download-link", {"colour": "red"}, 422, "validation_error"),
    ],
)
def test_bad_requests_get_the_error_shape(
    sandbox_service: ServiceFactory, path: str, body: object, status: int, code: str
) -> None:
    with sandbox_service() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(path, json=body) if body is not None else client.post(path)
        assert response.status_code == status
        assert response.json()["error"] == code


def test_link_query_options_are_used_when_no_body(sandbox_service: ServiceFactory) -> None:
    with sandbox_service() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(f"/orders/{DEMO_ORDER_ID.upper()}/download-link?format=png")
        assert response.status_code == 200
        url = response.json()["url"]
        assert url.startswith(f"/orders/{DEMO_ORDER_ID}/images?")  # canonical id
        assert dict(parse_qsl(urlsplit(url).query))["format"] == "png"
