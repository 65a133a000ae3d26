"""Fixtures of the deliveries suite: the service on either store, a photographer, a receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.main import create_app
from testkit.processes import redis_server
from tests.conftest import SettingsFactory, create_order
from tests.jobs.receivers import Receiver
from tests.support import SandboxControl, UvicornThread, require_tool

SIGNING_SECRET = "deliveries-suite-signing-secret"
RATE_LIMITED = ("downloads", "lookups", "links", "job_status", "thumbnails")


@pytest.fixture(scope="session")
def deliveries_redis() -> Iterator[str]:
    with redis_server(require_tool("redis-server")) as url:
        yield url


@dataclass
class Photographer:
    """The service under test and a photographer with their own Autoenhance key."""

    url: str
    backend: str
    key: str
    settings: Any
    sandbox: SandboxControl
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Autoenhance-Key": self.key}

    def order(self, *, images: int = 3, image_bytes: int = 30_000) -> dict[str, Any]:
        """A processed order private to this photographer's key, its photos bought (a
        photographer delivers photos they have paid for)."""
        order = create_order(self.sandbox, images=images, image_bytes=image_bytes, api_key=self.key)
        bought = httpx.get(
            f"{self.url}/orders/{order['order_id']}/images?preview=false",
            headers=self.headers,
            timeout=120,
        )
        assert bought.status_code == 200, bought.text
        return order

    def deliver(self, order_id: str, **body: Any) -> dict[str, Any]:
        body.setdefault("recipient", "Jane Doe, Harbour Realty")
        response = httpx.post(
            f"{self.url}/orders/{order_id}/deliveries", json=body, headers=self.headers, timeout=30
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def status(self, delivery_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/deliveries/{delivery_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


def service_settings(
    make_settings: SettingsFactory, backend: str, request: pytest.FixtureRequest, **extra: Any
) -> Any:
    overrides: dict[str, Any] = {
        "callback_allow_private": True,
        "signing_secret": SIGNING_SECRET,
        # Tests poll a delivery's status; with Redis the counters are shared by the session.
        **{f"rate_limit_{rule}": "off" for rule in RATE_LIMITED},
        **extra,
    }
    if backend == "redis":
        # Deliveries are keyed by random ids and by the test's own photographer: tests that
        # share the server never read each other's.
        overrides["redis_url"] = request.getfixturevalue("deliveries_redis")
    return make_settings(**overrides)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def photographer(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, sandbox: SandboxControl
) -> Iterator[Photographer]:
    settings = service_settings(make_settings, request.param, request)
    with UvicornThread(create_app(settings)) as server:
        yield Photographer(
            url=server.url,
            backend=request.param,
            key=f"photographer-{uuid.uuid4().hex[:12]}",
            settings=settings,
            sandbox=sandbox,
        )


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A callback receiver on loopback and its URL."""
    hook = Receiver()
    with UvicornThread(hook.app) as server:
        yield hook, f"{server.url}/hook"
