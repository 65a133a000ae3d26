"""Fixtures shared by the whole suite."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from testkit.processes import refused_port, sandbox_process
from testkit.s3 import S3Server
from tests.support import SandboxControl, UvicornThread, settings_of

SettingsFactory = Callable[..., Settings]


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """A standalone sandbox on a real socket, shared by the session (base URL ends in /v3).

    Tests that script faults must reset them; use `sandbox` for a clean control client.
    """
    with sandbox_process("--processing-delay", "0.2") as root:
        yield f"{root}/v3"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3-protocol server (moto) on loopback, shared by the session: give every test its
    own bucket (`s3_bucket`)."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket of the shared S3 server."""
    return s3_server.bucket()


@pytest.fixture(name="refused_port")
def refused_port_fixture() -> Iterator[int]:
    """A loopback port on which nothing listens, held for the test (connecting is refused)."""
    with refused_port() as port:
        yield port


@pytest.fixture
def operator_key() -> str:
    """An operator key of this test alone: the sandbox files its request log by key, so the
    log a test reads holds none of the requests an earlier test still has in flight."""
    return f"operator-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sandbox(sandbox_url: str, operator_key: str) -> Iterator[SandboxControl]:
    """A control client of the shared sandbox. Faults are cleared around each test (which
    also drops requests an earlier test left stalled); read the request log with `.log()`."""
    root = sandbox_url.removesuffix("/v3")
    with SandboxControl(base_url=root, operator_key=operator_key) as client:
        client.delete("/_sandbox/faults").raise_for_status()
        yield client
        client.delete("/_sandbox/faults")


@pytest.fixture
def make_settings(tmp_path: Path, sandbox_url: str, operator_key: str) -> SettingsFactory:
    """Settings for a service talking to the standalone sandbox, with state in tmp_path."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "autoenhance_api_key": operator_key,
            "autoenhance_api_base": sandbox_url,
            "data_dir": tmp_path / "data",
            "upstream_retry_max_wait": 0.2,
            "upstream_read_timeout": 5.0,
            **overrides,
        }
        return settings_of(**values)

    return factory


@pytest.fixture
def service(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    """The service under a real uvicorn server on loopback, talking to the standalone sandbox."""
    with UvicornThread(create_app(make_settings())) as server:
        yield server


def create_order(
    sandbox: httpx.Client, *, images: int, image_bytes: int = 20_000, **extra: Any
) -> dict[str, Any]:
    """Create a processed synthetic order in the sandbox and return its OrderOut JSON."""
    response = sandbox.post(
        "/_sandbox/orders", json={"images": images, "image_bytes": image_bytes, **extra}
    )
    response.raise_for_status()
    payload: dict[str, Any] = response.json()
    return payload
