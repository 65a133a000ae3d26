"""A Redis that hangs, dies or comes back empty, against real processes.

redis-server is a real process stopped with SIGSTOP (it accepts connections and never
answers: the hang of an overloaded or frozen Redis) and continued with SIGCONT, or killed and
restarted empty. Requests use a client timeout far above `REDIS_TIMEOUT` and far below the
stall: an answer proves the service did not wait for Redis, and no test times anything.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from testkit.jobs import FAST_JOBS, WEBHOOK_TOKEN
from testkit.processes import RedisProcess, wait_for
from tests.conftest import SettingsFactory, create_order
from tests.support import UvicornThread, require_tool

pytestmark = pytest.mark.redis

ADMIN_TOKEN = "redis-faults-admin-token-0123456789"
REDIS_TIMEOUT = 0.5
# Far above REDIS_TIMEOUT (plus the upstream call some routes make), far below the stall:
# the stall lasts until the test continues Redis.
CLIENT_TIMEOUT = 15.0


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with RedisProcess(require_tool("redis-server")) as server:
        yield server


def _service(make_settings: SettingsFactory, redis: RedisProcess) -> UvicornThread:
    settings = make_settings(
        **FAST_JOBS,
        redis_url=f"{redis.url}/0",
        redis_timeout=REDIS_TIMEOUT,
        admin_token=ADMIN_TOKEN,
        readiness_cache_seconds=0,
    )
    return UvicornThread(create_app(settings))


def _unavailable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    if response.request.method != "HEAD":
        assert response.json()["error"] == code
    assert int(response.headers["Retry-After"]) >= 1


def test_a_hung_redis_costs_each_request_its_deadline_never_more(
    make_settings: SettingsFactory, sandbox: httpx.Client, redis: RedisProcess
) -> None:
    order = create_order(sandbox, images=2, image_bytes=5_000)
    order_id = order["order_id"]
    with (
        _service(make_settings, redis) as server,
        httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
    ):
        created = client.post(f"/orders/{order_id}/jobs")
        assert created.status_code == 202, created.text
        job = created.json()["job_id"]
        assert client.get(f"/jobs/{job}").status_code == 200
        assert client.get(f"/orders/{order_id}/jobs").json()["jobs"][0]["job_id"] == job
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        delivery = client.post(
            f"/orders/{order_id}/deliveries", json={"recipient": "Agent"}, headers=admin
        )
        assert delivery.status_code == 201, delivery.text
        delivery_id = delivery.json()["delivery_id"]
        link = delivery.json()["url"]

        redis.pause()
        try:
            _unavailable(client.get(f"/jobs/{job}"), "queue_unavailable")
            _unavailable(client.post(f"/orders/{order_id}/jobs"), "queue_unavailable")
            _unavailable(client.get(f"/orders/{order_id}/jobs"), "queue_unavailable")
            _unavailable(client.delete(f"/jobs/{job}"), "queue_unavailable")
            _unavailable(client.get(f"/jobs/{job}/download"), "queue_unavailable")
            _unavailable(client.head(f"/jobs/{job}/download"), "queue_unavailable")
            webhook = client.post(
                "/webhooks/autoenhance",
                headers={"Authorization": WEBHOOK_TOKEN},
                json={
                    "event": "image_processed",
                    "order_id": order_id,
                    "order_is_processing": False,
                },
            )
            _unavailable(webhook, "queue_unavailable")
            sign_in = client.post("/api/admin/session", json={"token": ADMIN_TOKEN})
            _unavailable(sign_in, "session_store_unavailable")
            _unavailable(
                client.get(f"/deliveries/{delivery_id}", headers=admin), "deliveries_unavailable"
            )
            _unavailable(
                client.post(
                    f"/orders/{order_id}/deliveries", json={"recipient": "Agent"}, headers=admin
                ),
                "deliveries_unavailable",
            )
            _unavailable(client.get(link + "/archive"), "deliveries_unavailable")
            # The rate limiter fails open: the order is read as if there were no limit.
            assert client.get(f"/orders/{order_id}").status_code == 200
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"]["ok"] is False
        finally:
            redis.resume()

        wait_for(lambda: client.get(f"/jobs/{job}").status_code == 200)
        assert client.get(f"/deliveries/{delivery_id}", headers=admin).status_code == 200
        assert client.post("/api/admin/session", json={"token": ADMIN_TOKEN}).status_code == 200
        assert client.delete(f"/jobs/{job}").json()["state"] == "cancelled"


def test_a_signed_in_cookie_is_not_signed_out_by_a_hung_redis(
    make_settings: SettingsFactory, redis: RedisProcess
) -> None:
    """The session store cannot confirm the cookie: the owner gets a 503 to retry, never a 401
    that reads as signed out; the Bearer token does not need the store."""
    with (
        _service(make_settings, redis) as server,
        httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as page,
        httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as script,
    ):
        assert page.post("/api/admin/session", json={"token": ADMIN_TOKEN}).status_code == 200
        assert page.get("/api/admin/session").json()["via"] == "cookie"
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

        redis.pause()
        try:
            _unavailable(page.get("/api/admin/session"), "session_store_unavailable")
            _unavailable(page.get("/api/sentry/issues"), "session_store_unavailable")
            stats = page.get("/api/stats")
            assert stats.status_code == 200, stats.text
            assert "recent_errors" not in stats.json()
            assert script.get("/api/sentry/issues", headers=bearer).status_code == 200
            assert script.get("/api/admin/session").json()["admin"] is False
        finally:
            redis.resume()

        wait_for(lambda: page.get("/api/admin/session").status_code == 200)
        assert page.get("/api/admin/session").json()["via"] == "cookie"
