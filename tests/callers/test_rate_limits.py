"""Rate limits count the client address whatever key a request brings, and cover every route
that costs an upstream call or a job lookup; Ask's limit is one of the shared rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from testkit.processes import redis_server
from tests.conftest import SettingsFactory, create_order
from tests.support import UvicornThread, require_tool


def forwarded(address: str, **headers: str) -> dict[str, str]:
    # The test talks to loopback, a trusted proxy here: X-Forwarded-For names the client.
    return {"X-Forwarded-For": address, **headers}


def test_made_up_keys_do_not_lift_the_address_limit(
    make_settings: SettingsFactory, sandbox: httpx.Client
) -> None:
    order_id = create_order(sandbox, images=1, image_bytes=2_000)["order_id"]
    # Per hour, so that a slow machine cannot let the first requests leave the window.
    settings = make_settings(rate_limit_downloads="60/hour")
    with UvicornThread(create_app(settings)) as server, httpx.Client(timeout=30) as client:
        statuses = [
            client.get(
                f"{server.url}/orders/{order_id}/images",
                headers={"X-Autoenhance-Key": f"made-up-{n}-{uuid.uuid4().hex}"},
            ).status_code
            for n in range(100)
        ]
    assert statuses.count(200) == 60
    assert statuses.count(429) == 40
    assert set(statuses[60:]) == {429}


def test_one_key_from_many_addresses_has_a_budget_of_its_own(
    make_settings: SettingsFactory, sandbox: httpx.Client
) -> None:
    order_id = create_order(sandbox, images=1, image_bytes=2_000)["order_id"]
    settings = make_settings(rate_limit_lookups="2/hour", trusted_proxies=["127.0.0.1"])
    key = f"shared-{uuid.uuid4().hex}"
    with UvicornThread(create_app(settings)) as server, httpx.Client(timeout=30) as client:
        statuses = [
            client.get(
                f"{server.url}/orders/{order_id}",
                headers=forwarded(f"203.0.113.{n}", **{"X-Autoenhance-Key": key}),
            ).status_code
            for n in (1, 2, 3)
        ]
        # Another address without that key still has its own budget.
        fresh = client.get(f"{server.url}/orders/{order_id}", headers=forwarded("203.0.113.9"))
    assert statuses == [200, 200, 429]
    assert fresh.status_code == 200


@pytest.fixture
def strict_service(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    """Every rule at one request per hour; loopback is a trusted proxy, so each check below
    uses its own client address and cannot spend another check's budget."""
    rules: dict[str, Any] = {
        name: "1/hour"
        for name in (
            "rate_limit_downloads",
            "rate_limit_lookups",
            "rate_limit_jobs",
            "rate_limit_job_status",
            "rate_limit_links",
            "ask_rate_limit",
        )
    }
    settings = make_settings(trusted_proxies=["127.0.0.1"], **rules)
    with UvicornThread(create_app(settings)) as server:
        yield server


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("HEAD", "/orders/{order}/images"),
        ("GET", "/orders/{order}"),
        ("GET", "/jobs/{job}"),
        ("DELETE", "/jobs/{job}"),
        ("POST", "/jobs/{job}/download-link"),
    ],
)
def test_lookups_and_job_endpoints_are_limited(
    strict_service: UvicornThread, sandbox: httpx.Client, method: str, path: str
) -> None:
    order_id = create_order(sandbox, images=1, image_bytes=2_000)["order_id"]
    url = strict_service.url + path.format(order=order_id, job=uuid.uuid4().hex)
    headers = forwarded(f"198.51.100.{uuid.uuid4().int % 250 + 1}")
    with httpx.Client(timeout=30) as client:
        first = client.request(method, url, headers=headers)
        second = client.request(method, url, headers=headers)
    assert first.status_code != 429
    assert second.status_code == 429
    assert "Retry-After" in second.headers
    if method != "HEAD":
        assert second.json()["error"] == "rate_limited"


def test_ask_limit_looks_through_trusted_proxies(strict_service: UvicornThread) -> None:
    question = {"question": "How do I download an order?"}
    with httpx.Client(timeout=30) as client:
        first = client.post(
            f"{strict_service.url}/api/ask", json=question, headers=forwarded("192.0.2.1")
        )
        other = client.post(
            f"{strict_service.url}/api/ask", json=question, headers=forwarded("192.0.2.2")
        )
        again = client.post(
            f"{strict_service.url}/api/ask", json=question, headers=forwarded("192.0.2.1")
        )
    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)
    assert again.json()["error"] == "rate_limited"


@pytest.mark.redis
def test_ask_limit_is_shared_through_redis(make_settings: SettingsFactory) -> None:
    question = {"question": "What is the sandbox?"}
    with redis_server(require_tool("redis-server")) as url:
        settings: Settings = make_settings(redis_url=url, ask_rate_limit="1/hour")
        with (
            UvicornThread(create_app(settings)) as first,
            UvicornThread(create_app(settings)) as second,
            httpx.Client(timeout=30) as client,
        ):
            one = client.post(f"{first.url}/api/ask", json=question)
            two = client.post(f"{second.url}/api/ask", json=question)
    assert one.status_code == 200
    assert two.status_code == 429
