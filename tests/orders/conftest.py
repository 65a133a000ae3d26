"""Fixtures of the orders tests: the service on a real socket, talking to a sandbox on another."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from testkit.processes import sandbox_process
from tests.support import UvicornThread, settings_of

ADMIN_TOKEN = "admin-token-0123456789"
SERVICE_KEY = "service-key-0123456789"
OPERATOR_KEY = "operator-test-key"

ServiceFactory = Callable[..., contextlib.AbstractContextManager[UvicornThread]]


@pytest.fixture(scope="module")
def private_sandbox_url() -> Iterator[str]:
    """A standalone sandbox of this module only, without the shared demo order.

    Listing shows every shared (keyless) order to every key, so the list tests get a sandbox
    in which only they create orders, each under keys no other test uses.
    """
    with sandbox_process("--processing-delay", "0.2", "--seed-demo", "false") as root:
        yield f"{root}/v3"


@pytest.fixture
def private_sandbox(private_sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=private_sandbox_url.removesuffix("/v3"), timeout=30) as client:
        yield client


def unique_key(label: str) -> str:
    """An Autoenhance key no other test uses, so its orders are this test's alone."""
    return f"{label}-{uuid.uuid4().hex}"


def synthetic_order(sandbox: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = sandbox.post("/_sandbox/orders", json={"images": 2, "image_bytes": 2000, **fields})
    response.raise_for_status()
    payload: dict[str, Any] = response.json()
    return payload


@pytest.fixture
def live_service(tmp_path: Path) -> ServiceFactory:
    """Start the service in live mode against a given sandbox, with settings overrides."""

    @contextlib.contextmanager
    def start(upstream: str, **overrides: Any) -> Iterator[UvicornThread]:
        values: dict[str, Any] = {
            "autoenhance_api_key": OPERATOR_KEY,
            "autoenhance_api_base": upstream,
            "data_dir": tmp_path / f"data-{uuid.uuid4().hex[:8]}",
            "upstream_retry_max_wait": 0.2,
            "upstream_read_timeout": 5.0,
            **overrides,
        }
        settings = settings_of(**values)
        with UvicornThread(create_app(settings)) as server:
            yield server

    return start


@pytest.fixture
def sandbox_mode_service(tmp_path: Path) -> ServiceFactory:
    """Start the service in sandbox mode (embedded emulator, demo order seeded)."""

    @contextlib.contextmanager
    def start(**overrides: Any) -> Iterator[UvicornThread]:
        values: dict[str, Any] = {
            "autoenhance_api_key": None,
            "data_dir": tmp_path / f"data-{uuid.uuid4().hex[:8]}",
            "sandbox_processing_delay": 0.2,
            **overrides,
        }
        settings = settings_of(**values)
        with UvicornThread(create_app(settings)) as server:
            yield server

    return start


def uploaded_order(
    sandbox_url: str, key: str, images: list[tuple[str, bytes]], *, timeout: float = 30
) -> dict[str, Any]:
    """An order of real pictures made through the sandbox's API with `key`, once processed."""
    with httpx.Client(base_url=sandbox_url, headers={"x-api-key": key}, timeout=30) as api:
        order = api.post("/orders/", json={"name": "Uploaded"}).raise_for_status().json()
        for name, data in images:
            registered = api.post(
                "/images/",
                json={
                    "order_id": order["order_id"],
                    "image_name": name,
                    "contentType": "image/jpeg",
                },
            ).raise_for_status()
            httpx.put(
                registered.json()["upload_url"],
                content=data,
                headers={"Content-Type": "image/jpeg"},
            ).raise_for_status()
        deadline = time.monotonic() + timeout
        while True:
            current: dict[str, Any] = api.get(f"/orders/{order['order_id']}").json()
            if all(image["status"] == "processed" for image in current["images"]):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"order not processed in {timeout}s: {current['status']}")
            time.sleep(0.05)
