"""Operations endpoints and middleware on a real uvicorn server, against the sandbox."""

from __future__ import annotations

import io
import logging
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sentry_sdk
from fastapi import FastAPI, Request
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from app.core.sentry import init_sentry
from app.main import create_app
from app.web.bodies import BodyLimitMiddleware
from app.web.handlers import install_error_handlers
from tests.conftest import SettingsFactory, create_order
from tests.support import SandboxControl, UvicornThread

ADMIN = "admin-token-0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def ops_service(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    """The service with every operations feature on: CORS, admin, proxies, rate limits."""
    settings = make_settings(
        admin_token=ADMIN,
        allowed_origins="https://pages.example",
        trusted_proxies="127.0.0.1",
        rate_limit_downloads="3/minute",
        max_request_body_bytes=4096,
        max_upload_files=2,
        max_upload_bytes=10_000,
    )
    with UvicornThread(create_app(settings)) as server:
        yield server


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "camera=()" in response.headers["permissions-policy"]
    assert response.headers["x-request-id"]


def test_health_is_cheap_and_never_shows_the_key(
    ops_service: UvicornThread, sandbox: SandboxControl
) -> None:
    response = httpx.get(f"{ops_service.url}/health")
    assert response.json() == {
        "status": "ok",
        "mode": "live",
        "upstream_key_configured": True,
        "version": "1.0.0",
    }
    assert sandbox.operator_key not in response.text
    head = httpx.head(f"{ops_service.url}/health")
    assert head.status_code == 200
    assert head.content == b""
    assert sandbox.log() == []  # the health check never calls the upstream


def test_ready_probes_upstream_once_per_ttl(
    ops_service: UvicornThread, sandbox: SandboxControl
) -> None:
    for _ in range(3):
        response = httpx.get(f"{ops_service.url}/ready")
        assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["upstream"]["ok"]
    assert body["checks"]["archive_store"]["ok"]
    log = sandbox.log()
    probes = [r for r in log if r["path"] == "/v3/orders/"]
    assert len(probes) == 1, probes


def test_ready_names_the_failing_parts(
    refused_port: int, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where DATA_DIR should be")
    settings = make_settings(autoenhance_api_base=f"http://127.0.0.1:{refused_port}/v3")
    app = create_app(settings)
    with UvicornThread(app) as server:
        settings.data_dir = blocked / "data"  # the store becomes unwritable after start-up
        response = httpx.get(f"{server.url}/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert not checks["upstream"]["ok"]
    assert "unreachable" in checks["upstream"]["detail"]
    assert response.json()["status"] == "not_ready"


def test_ready_checks_redis_when_configured(
    refused_port: int, make_settings: SettingsFactory
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{refused_port}/0")
    with UvicornThread(create_app(settings)) as server:
        response = httpx.get(f"{server.url}/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False


def test_jobs_answer_503_while_redis_is_down(
    refused_port: int, make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{refused_port}/0")
    order = sandbox.post("/_sandbox/orders", json={"images": 1, "image_bytes": 5000}).json()
    with UvicornThread(create_app(settings)) as server:
        health = httpx.get(f"{server.url}/health")
        job = httpx.post(f"{server.url}/orders/{order['order_id']}/jobs", timeout=30)
    assert health.status_code == 200
    assert job.status_code == 503
    assert job.json()["error"] == "queue_unavailable"
    assert job.headers["retry-after"] == "5"


def test_security_headers_on_every_response(ops_service: UvicornThread) -> None:
    for path in ("/health", "/nope", "/orders/not-a-uuid/images", "/openapi.json"):
        response = httpx.get(ops_service.url + path)
        assert_security_headers(response)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "unsafe-inline" not in csp


def test_docs_work_offline_with_a_csp_relaxed_only_there(ops_service: UvicornThread) -> None:
    page = httpx.get(f"{ops_service.url}/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "'unsafe-inline'" in page.headers["content-security-policy"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in page.text
        assert httpx.get(f"{ops_service.url}/static-offline-docs/{asset}").status_code == 200


def test_cors_allows_only_listed_origins(ops_service: UvicornThread) -> None:
    allowed = httpx.get(f"{ops_service.url}/health", headers={"Origin": "https://pages.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://pages.example"
    assert "X-Request-ID" in allowed.headers["access-control-expose-headers"]
    other = httpx.get(f"{ops_service.url}/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_request_id_is_taken_when_safe_and_replaced_when_not(ops_service: UvicornThread) -> None:
    echoed = httpx.get(f"{ops_service.url}/nope", headers={"X-Request-ID": "abc-123.x_y"})
    assert echoed.headers["x-request-id"] == "abc-123.x_y"
    assert echoed.json()["request_id"] == "abc-123.x_y"
    hostile = httpx.get(f"{ops_service.url}/nope", headers={"X-Request-ID": "a b<script>" * 10})
    assert hostile.headers["x-request-id"] != "a b<script>" * 10
    assert hostile.headers["x-request-id"].isalnum()


def test_body_limit_answers_413_json(ops_service: UvicornThread) -> None:
    declared = httpx.post(f"{ops_service.url}/orders/x/images", content=b"x" * 5000)
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"
    assert_security_headers(declared)


def test_body_limit_counts_chunked_bodies_as_they_are_read() -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=4096, path_limits={"/big": 20_000})

    @app.post("/echo")
    @app.post("/big")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    with UvicornThread(app) as server:
        refused = httpx.post(f"{server.url}/echo", content=chunks())
        small = httpx.post(f"{server.url}/echo", content=b"x" * 4000)
        big = httpx.post(f"{server.url}/big", content=chunks())
    assert refused.status_code == 413
    assert refused.json()["error"] == "payload_too_large"
    assert small.json() == {"size": 4000}
    assert big.json() == {"size": 10_000}


def test_uploads_get_their_own_body_limit(ops_service: UvicornThread) -> None:
    # 2 files x 10 kB fit the upload limit although they exceed the 4 kB general one.
    files = [("files", (f"{i}.jpg", b"\xff" * 9000, "image/jpeg")) for i in range(2)]
    response = httpx.post(f"{ops_service.url}/api/create-order", files=files)
    assert response.status_code != 413


def test_rate_limit_on_downloads_is_429_with_retry_after(
    ops_service: UvicornThread, sandbox: SandboxControl
) -> None:
    url = f"{ops_service.url}/orders/not-a-uuid/images"
    statuses = [httpx.get(url).status_code for _ in range(3)]
    assert statuses == [400, 400, 400]
    refused = httpx.get(url)
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another client, here seen through the trusted proxy, has its own budget...
    forwarded = httpx.get(url, headers={"X-Forwarded-For": "198.51.100.7"})
    assert forwarded.status_code == 400
    # ...while a key sent from the refused address does not lift that address's limit.
    own = httpx.get(url, headers={"X-Autoenhance-Key": "someone-else"})
    assert own.status_code == 429


def test_stats_show_recent_errors_to_admins_only(
    ops_service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=2, image_bytes=5_000)
    assert httpx.get(f"{ops_service.url}/orders/{order['order_id']}/images").status_code == 200
    crash = httpx.get(f"{ops_service.url}/sentry-debug", headers=ADMIN_HEADERS)
    public = httpx.get(f"{ops_service.url}/api/stats").json()
    assert "recent_errors" not in public
    assert public["images_downloaded"] >= 2
    assert public["orders_processed"] >= 1
    assert public["uptime_seconds"] >= 0
    admin = httpx.get(f"{ops_service.url}/api/stats", headers=ADMIN_HEADERS).json()
    ids = [event["request_id"] for event in admin["recent_errors"]]
    assert crash.headers["x-request-id"] in ids
    assert set(public) == {
        "orders_processed",
        "images_downloaded",
        "images_failed",
        "archives_served",
        "orders_created",
        "uptime_seconds",
    }
    event = admin["recent_errors"][ids.index(crash.headers["x-request-id"])]
    assert set(event) == {"at", "kind", "status", "route", "request_id", "message"}
    assert event["at"].endswith("Z")
    assert event["status"] == 500


def test_sentry_debug_needs_an_admin_and_answers_the_json_500(
    ops_service: UvicornThread,
) -> None:
    assert httpx.get(f"{ops_service.url}/sentry-debug").status_code == 401
    response = httpx.get(f"{ops_service.url}/sentry-debug", headers=ADMIN_HEADERS)
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert "Traceback" not in response.text
    assert "SentryDebugError" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]
    assert_security_headers(response)


def test_sentry_issues_degrade_when_not_configured(ops_service: UvicornThread) -> None:
    assert httpx.get(f"{ops_service.url}/api/sentry/issues").status_code == 401
    response = httpx.get(f"{ops_service.url}/api/sentry/issues", headers=ADMIN_HEADERS)
    assert response.status_code == 200
    assert response.json()["configured"] is False
    assert "SENTRY_AUTH_TOKEN" in response.json()["message"]


def test_sentry_issues_are_listed_through_the_api(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        admin_token=ADMIN,
        sentry_auth_token="sntrys_secret",
        sentry_org="acme",
        sentry_project="dl",
        sentry_api_base="https://sentry.example",
    )
    with respx.mock(assert_all_called=True) as mock:
        mock.route(host="127.0.0.1").pass_through()
        api = mock.get("https://sentry.example/api/0/projects/acme/dl/issues/").respond(
            200, json=[{"id": "9", "title": "KeyError: x", "count": "3"}]
        )
        with UvicornThread(create_app(settings)) as server:
            response = httpx.get(f"{server.url}/api/sentry/issues", headers=ADMIN_HEADERS)
    assert response.status_code == 200
    assert response.json()["issues"][0]["title"] == "KeyError: x"
    assert api.calls.last.request.headers["authorization"] == "Bearer sntrys_secret"


class CapturingTransport(Transport):
    envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


def test_sentry_events_are_sent_scrubbed(make_settings: SettingsFactory) -> None:
    with_dsn = make_settings(
        admin_token=ADMIN,
        sentry_dsn="https://public@sentry.example/1",
        sentry_environment="staging",
        sentry_release="dl@1.2.3",
    )
    CapturingTransport.envelopes = []
    assert init_sentry(with_dsn, transport=CapturingTransport)
    try:
        # The app is built without a DSN so that it keeps the capturing client started above.
        with UvicornThread(create_app(make_settings(admin_token=ADMIN))) as server:
            httpx.get(
                f"{server.url}/sentry-debug?sig=abcdef",
                headers={
                    **ADMIN_HEADERS,
                    "X-Autoenhance-Key": "byok-secret",
                    "Cookie": "session=cookie-secret",
                },
            )
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()
    events = [
        item.payload.json
        for env in CapturingTransport.envelopes
        for item in env.items
        if item.type == "event" and item.payload.json
    ]
    assert events, "no event reached the transport"
    event: dict[str, Any] = events[0]
    assert event["environment"] == "staging"
    assert event["release"] == "dl@1.2.3"
    text = str(event)
    for secret in ("byok-secret", "cookie-secret", "abcdef", ADMIN):
        assert secret not in text


def test_metrics_by_route_template_and_optional_token(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    settings = make_settings(metrics_token="metrics-token-0123456789")
    order = create_order(sandbox, images=2, image_bytes=5_000)
    with UvicornThread(create_app(settings)) as server:
        httpx.get(f"{server.url}/orders/{order['order_id']}/images").raise_for_status()
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        text = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"}
        ).text
    assert 'route="/orders/{order_id}/images"' in text
    assert order["order_id"] not in text
    for name in (
        "http_request_duration_seconds_bucket",
        "archive_time_to_first_byte_seconds",
        "archive_bytes_streamed_total",
        "upstream_requests_total",
        "images_delivered_total",
        "archive_cache_lookups_total",
    ):
        assert name in text, name


def test_archive_streams_through_every_middleware(
    ops_service: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=5, image_bytes=60_000)
    last = order["images"][-1]["image_id"]
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "latency", "ms": 3000, "scope": "enhanced", "image_ids": [last]},
    )
    with httpx.stream(
        "GET",
        f"{ops_service.url}/orders/{order['order_id']}/images",
        headers={"Origin": "https://pages.example"},
        timeout=60,
    ) as response:
        assert response.headers["access-control-allow-origin"] == "https://pages.example"
        chunks = response.iter_raw()
        first = next(chunks)
        seen = {r.get("image_id") for r in sandbox.log()}
        assert last not in seen, "the archive started only after the last image was fetched"
        rest = b"".join(chunks)
    archive = zipfile.ZipFile(io.BytesIO(first + rest))
    assert archive.testzip() is None
    assert len(archive.namelist()) == 5


def test_access_log_has_one_line_per_request_without_secrets(
    ops_service: UvicornThread, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = {
        "X-Autoenhance-Key": "byok-secret-1",
        "X-API-Key": "service-secret-2",
        "Authorization": "Bearer bearer-secret-3",
        "Cookie": "session=cookie-secret-4",
    }
    with caplog.at_level(logging.INFO):
        httpx.get(f"{ops_service.url}/orders/not-a-uuid/images?sig=sig-secret-5", headers=secrets)
        # The server thread writes the line once the response is out, which can be just after
        # the client has it: wait for it (bounded).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = [r for r in caplog.records if r.name == "app.access"]
            if lines:
                break
            time.sleep(0.02)
    assert len(lines) == 1
    assert lines[0].route == "/orders/{order_id}/images"  # type: ignore[attr-defined]
    assert lines[0].status == 400  # type: ignore[attr-defined]
    assert lines[0].request_id != "-"  # type: ignore[attr-defined]
    text = caplog.text
    for secret in (
        "byok-secret-1",
        "service-secret-2",
        "bearer-secret-3",
        "cookie-secret-4",
        "sig-secret-5",
    ):
        assert secret not in text
