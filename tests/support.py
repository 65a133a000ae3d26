"""Helpers shared by the test suite: real servers on loopback and external tools.

Tests that stream talk to a real uvicorn server; integration tests talk to the
standalone sandbox over a socket. Both listen on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(url: str, *, timeout: float = 20.0, process: Any = None) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server process exited early with code {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError as exc:
            last_error = exc
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last_error!r}")


class UvicornThread:
    """Run an ASGI app under a real uvicorn server in a background thread."""

    def __init__(self, app: Any, *, port: int | None = None, **config: Any) -> None:
        self.port = port or free_port()
        self.config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", **config
        )
        self.server = uvicorn.Server(self.config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            self.loop.close()

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


@contextlib.contextmanager
def sandbox_process(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the standalone sandbox (`python -m app.sandbox`) and yield its base URL.

    The URL ends in `/v3`, ready to be used as AUTOENHANCE_API_BASE.
    """
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.sandbox", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=ROOT,
        env=full_env,
    )
    try:
        wait_until_listening(
            f"http://127.0.0.1:{port}/_sandbox/health", process=process, timeout=60
        )
        yield f"http://127.0.0.1:{port}/v3"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class S3Server:
    """moto's S3-protocol server on a free loopback port, in a thread of this process.

    It speaks the S3 wire protocol over real HTTP, so obstore (or any S3 client, in any
    process) talks to it exactly as to a real bucket. `bucket()` creates a fresh one.
    """

    ACCESS_KEY = "test-access-key"
    SECRET_KEY = "test-secret-key"
    REGION = "us-east-1"

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bucket(self) -> str:
        """Create a new empty bucket and return its name."""
        name = f"test-{os.urandom(6).hex()}"
        httpx.put(f"{self.endpoint}/{name}", timeout=10).raise_for_status()
        return name

    @property
    def credentials(self) -> dict[str, str]:
        """obstore configuration keys for this server."""
        return {
            "access_key_id": self.ACCESS_KEY,
            "secret_access_key": self.SECRET_KEY,
            "region": self.REGION,
        }

    @property
    def env(self) -> dict[str, str]:
        """Environment of a process using this server (with ARCHIVE_STORE set by the caller)."""
        return {
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_REGION": self.REGION,
        }

    def multipart_uploads(self, bucket: str) -> str:
        """The bucket's ListMultipartUploads answer (XML), to check none was left behind."""
        return httpx.get(f"{self.endpoint}/{bucket}?uploads", timeout=10).text

    def __enter__(self) -> S3Server:
        self._server.start()
        wait_until_listening(self.endpoint)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
