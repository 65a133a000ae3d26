"""Processes and measurements shared by the benchmarks.

Everything runs on loopback: the standalone sandbox, the service (one uvicorn worker) and the
clients. Peak RSS is sampled from the service process every few milliseconds with psutil.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], ready_url: str) -> Iterator[psutil.Process]:
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(ready_url, process)
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def sandbox() -> Iterator[str]:
    """The standalone sandbox; yields its root URL (without /v3)."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "app.sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--processing-delay",
        "0",
    ]
    with _process(args, {"SANDBOX_SEED_DEMO": "false"}, f"http://127.0.0.1:{port}/_sandbox/health"):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def service(sandbox_root: str, **env: str) -> Iterator[tuple[str, psutil.Process]]:
    """The service under one uvicorn worker, talking to the sandbox over a socket."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-") as data:
        full_env = {
            "AUTOENHANCE_API_KEY": "bench-key",
            "AUTOENHANCE_API_BASE": f"{sandbox_root}/v3",
            "DATA_DIR": data,
            "ARCHIVE_CACHE_MAX_BYTES": "0",  # every run streams from the upstream
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_DOWNLOADS": "100000/minute",
            **env,
        }
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        with _process(args, full_env, f"http://127.0.0.1:{port}/health") as proc:
            yield f"http://127.0.0.1:{port}", proc


class RssSampler:
    """Samples a process's resident set size in a background thread; keeps the peak."""

    def __init__(self, process: psutil.Process, interval: float = 0.005) -> None:
        self._process = process
        self._interval = interval
        self.baseline = process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / MB


@dataclass
class Transfer:
    ttfb: float
    total: float
    size: int
    status: int

    @property
    def mb_per_s(self) -> float:
        return self.size / MB / self.total if self.total else 0.0


def curl(url: str, *, output: str = "/dev/null") -> subprocess.Popen[str]:
    """Start a curl download; `finish` reads its timings. curl is a lean client, so the
    figures measure the service rather than a Python client."""
    return subprocess.Popen(
        [
            "curl",
            "-s",
            "-o",
            output,
            "-w",
            "%{http_code} %{time_starttransfer} %{time_total} %{size_download}",
            url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> Transfer:
    out, _ = process.communicate(timeout=600)
    status, ttfb, total, size = out.split()
    return Transfer(ttfb=float(ttfb), total=float(total), size=int(size), status=int(status))


def create_order(sandbox_root: str, *, images: int, image_bytes: int) -> str:
    response = httpx.post(
        f"{sandbox_root}/_sandbox/orders",
        json={"images": images, "image_bytes": image_bytes},
        timeout=120,
    )
    response.raise_for_status()
    order_id: str = response.json()["order_id"]
    return order_id


def set_latency(sandbox_root: str, ms: int) -> None:
    httpx.delete(f"{sandbox_root}/_sandbox/faults", timeout=10).raise_for_status()
    if ms:
        httpx.post(
            f"{sandbox_root}/_sandbox/faults",
            json={"kind": "latency", "ms": ms, "scope": "enhanced"},
            timeout=10,
        ).raise_for_status()
