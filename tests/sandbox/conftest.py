"""Fixtures for the sandbox tests.

The standalone sandbox (`sandbox_url`, `sandbox` from tests/conftest.py) is shared by the
session, so each test talks to it with its own API key and therefore sees only its own
records plus the shared ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.sandbox import SandboxConfig, create_sandbox_app
from tests.sandbox.helpers import INTERNAL_BASE, InProcess
from tests.support import SandboxControl


@pytest.fixture
def api_key(operator_key: str) -> str:
    """This test's own key: the one `sandbox.log()` reads the request log of."""
    return operator_key


@pytest.fixture
def api(sandbox_url: str, api_key: str, sandbox: SandboxControl) -> Iterator[httpx.Client]:
    """An API client of the shared standalone sandbox, with a key of its own."""
    with httpx.Client(base_url=sandbox_url, headers={"x-api-key": api_key}, timeout=30) as client:
        yield client


@pytest.fixture
def inprocess() -> InProcess:
    """`async with inprocess(**config) as client`: a sandbox mounted through ASGITransport."""

    @asynccontextmanager
    async def open_client(**config: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_sandbox_app(SandboxConfig(**{"processing_delay": 0, **config}))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=INTERNAL_BASE, headers={"x-api-key": "k1"}
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client

    return open_client
