"""Fixtures for the page's endpoints: the service in sandbox mode under a real uvicorn server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.main import create_app
from tests.support import UvicornThread, settings_of

ServiceFactory = Callable[..., contextlib.AbstractContextManager[UvicornThread]]


@pytest.fixture
def sandbox_service(tmp_path: Path) -> ServiceFactory:
    """Start the service in sandbox mode (embedded emulator) with settings overrides."""

    @contextlib.contextmanager
    def start(**overrides: Any) -> Iterator[UvicornThread]:
        values: dict[str, Any] = {
            "autoenhance_api_key": None,
            "data_dir": tmp_path / "data",
            "sandbox_processing_delay": 0.2,
            **overrides,
        }
        settings = settings_of(**values)
        with UvicornThread(create_app(settings)) as server:
            yield server

    return start
