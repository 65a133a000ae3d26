"""Helpers of the test suite itself: in-process servers on loopback and external tools.

Tests that stream talk to a real uvicorn server in a thread (`UvicornThread`); integration
tests talk to the standalone sandbox over a socket (started with `testkit.processes`, which the
benchmarks share) and script it through `SandboxControl`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from app.core.config import Settings
from testkit.processes import bound_socket, port_of

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def settings_of(**values: Any) -> Settings:
    """`Settings` from `values`, the environment and the defaults: never a `.env` file."""
    return Settings(_env_file=None, **values)


def require_tool(name: str, *alternatives: str) -> str:
    """Return the path of an external program, or skip (locally) / fail (in CI)."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"external program {name!r} is not installed (see .ci/run for the Debian package)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class UvicornThread:
    """Run an ASGI app under a real uvicorn server in a background thread."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.socket = bound_socket()
        self.port = port_of(self.socket)
        self.config = uvicorn.Config(app, log_level="warning", lifespan="on", **config)
        self.server = uvicorn.Server(self.config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self.socket]))
        finally:
            self.loop.close()
            self.socket.close()

    def task_names(self) -> list[str]:
        """Names of the tasks alive in the server's event loop (asked from inside the loop)."""

        async def names() -> list[str]:
            return [
                f"{task.get_name()}:{task.get_coro().__qualname__}"  # type: ignore[union-attr]
                for task in asyncio.all_tasks()
            ]

        return asyncio.run_coroutine_threadsafe(names(), self.loop).result(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        if self.thread.is_alive():
            # A server still running would serve (and log into) the tests that follow.
            raise RuntimeError(f"uvicorn on {self.url} did not stop within 15 s")


class SandboxControl(httpx.Client):
    """A control client of the shared sandbox that knows the operator key of its test."""

    def __init__(self, *, base_url: str, operator_key: str) -> None:
        super().__init__(base_url=base_url, timeout=30)
        self.operator_key = operator_key

    def log(self, api_key: str | bytes | None = None) -> list[dict[str, Any]]:
        """The API requests made with `api_key` (this test's operator key by default)."""
        key = api_key or self.operator_key
        raw = key if isinstance(key, bytes) else key.encode("latin-1")
        response = self.get("/_sandbox/requests", headers={b"x-api-key": raw})
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries
