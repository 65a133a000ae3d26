"""The service as operators start it: `uvicorn app:app` in its own process.

Several workers with multiprocess metrics, JSON logs read from the process's stderr, and
graceful shutdown on SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from testkit.processes import free_port, running, wait_for
from tests.conftest import create_order

ADMIN = "admin-token-0123456789"
SECRETS = {
    "X-Autoenhance-Key": "byok-secret-1",
    "X-API-Key": "service-secret-2",
    "Cookie": "session=cookie-secret-4",
}


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_dir: Path


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


@contextlib.contextmanager
def serve(tmp: Path, sandbox_url: str, *args: str, **env: str) -> Iterator[Served]:
    """`uvicorn app:app` on loopback, configured through the environment like in production."""
    metrics_dir = tmp / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    log = tmp / "service.log"
    full_env = {
        **os.environ,
        "AUTOENHANCE_API_KEY": "operator-test-key",
        "AUTOENHANCE_API_BASE": sandbox_url,
        "DATA_DIR": str(tmp / "data"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "UPSTREAM_RETRY_MAX_WAIT": "0.2",
        "ADMIN_TOKEN": ADMIN,
        **env,
    }
    # uvicorn binds the port itself here, as in production: these tests watch it close its
    # socket on SIGTERM, and a socket handed over with --fd stays open (uvicorn serves a copy).
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1"]
    with (
        log.open("wb") as sink,
        running(
            [*command, "--port", str(port), *args],
            ready_url=f"http://127.0.0.1:{port}/health",
            env=full_env,
            output=sink,
        ) as process,
    ):
        yield Served(f"http://127.0.0.1:{port}", process, log, metrics_dir)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, sandbox_url: str) -> Iterator[Served]:
    """Two workers sharing one metrics directory, logging JSON."""
    tmp = tmp_path_factory.mktemp("workers")
    with serve(tmp, sandbox_url, "--workers", "2", LOG_FORMAT="json") as served:
        yield served


def per_worker_health_counts(metrics_dir: Path, tmp: Path) -> dict[str, float]:
    """Requests to /health each worker counted, read from its own metrics file."""
    counts: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        alone = tmp / path.stem
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[path.stem] = sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == "http_requests_total" and sample.labels.get("route") == "/health"
        )
    return counts


def health_total(text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("http_requests_total{") and 'route="/health"' in line
    )


def test_metrics_add_up_every_worker(workers: Served, tmp_path: Path) -> None:
    counts: dict[str, float] = {}
    for _ in range(20):  # bounded: the kernel spreads new connections over the workers
        for _ in range(10):
            httpx.get(f"{workers.url}/health").raise_for_status()
        counts = per_worker_health_counts(workers.metrics_dir, tmp_path)
        if sum(1 for value in counts.values() if value > 0) >= 2:
            break
    assert sum(1 for value in counts.values() if value > 0) >= 2, counts
    scraped = health_total(httpx.get(f"{workers.url}/metrics").text)
    assert scraped == sum(per_worker_health_counts(workers.metrics_dir, tmp_path).values())


def test_stats_are_the_same_from_every_worker(workers: Served, sandbox: httpx.Client) -> None:
    before = httpx.get(f"{workers.url}/api/stats").json()
    order = create_order(sandbox, images=3, image_bytes=5_000)
    httpx.get(f"{workers.url}/orders/{order['order_id']}/images", timeout=30).raise_for_status()
    seen = [httpx.get(f"{workers.url}/api/stats").json() for _ in range(8)]
    assert {s["images_downloaded"] - before["images_downloaded"] for s in seen} == {3}
    assert {s["orders_processed"] - before["orders_processed"] for s in seen} == {1}


def test_json_logs_carry_request_ids_and_no_secret(workers: Served, sandbox: httpx.Client) -> None:
    order = create_order(sandbox, images=2, image_bytes=5_000)
    url = f"{workers.url}/orders/{order['order_id']}/images?sig=sig-secret-5&expires=1"
    headers = {**SECRETS, "X-Request-ID": "trace-me-42"}
    httpx.get(url, headers=headers, timeout=30)
    httpx.get(
        f"{workers.url}/api/stats",
        headers={"Authorization": f"Bearer {ADMIN}", "X-Request-ID": "trace-me-43"},
    )
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = []
        for raw in workers.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        if any(line.get("request_id") == "trace-me-43" for line in lines):
            break
        time.sleep(0.1)
    mine = [line for line in lines if line.get("request_id") == "trace-me-42"]
    access = [line for line in mine if line.get("event") == "request"]
    assert len(access) == 1
    assert access[0]["route"] == "/orders/{order_id}/images"
    assert access[0]["status"] == 200
    batch = [line for line in mine if line.get("event") == "batch"]
    assert batch
    assert batch[0]["order_id"] == order["order_id"]
    assert batch[0]["images"] == 2
    assert batch[0]["outcome"] == "complete"
    assert batch[0]["bytes"] > 0
    text = workers.log.read_text(errors="replace")
    for secret in ("byok-secret-1", "service-secret-2", "cookie-secret-4", "sig-secret-5", ADMIN):
        assert secret not in text, secret


def stream_in_background(url: str) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    """Download `url` in a thread; `first` is set when the first archive bytes arrived."""
    result: dict[str, Any] = {}
    first = threading.Event()

    def run() -> None:
        data = b""
        try:
            with httpx.stream("GET", url, timeout=30) as response:
                for chunk in response.iter_raw():
                    data += chunk
                    first.set()
        except httpx.HTTPError as exc:
            result["error"] = exc
        finally:
            first.set()
            result["data"] = data

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result, first


def slow_order(sandbox: httpx.Client, *, images: int, ms: int) -> dict[str, Any]:
    order = create_order(sandbox, images=images, image_bytes=5_000)
    ids = [image["image_id"] for image in order["images"][1:]]
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "latency", "ms": ms, "scope": "enhanced", "image_ids": ids},
    ).raise_for_status()
    return order


def test_sigterm_lets_an_archive_in_flight_finish(
    tmp_path: Path, sandbox_url: str, sandbox: httpx.Client
) -> None:
    order = slow_order(sandbox, images=4, ms=500)
    with serve(
        tmp_path, sandbox_url, "--timeout-graceful-shutdown", "20", DOWNLOAD_CONCURRENCY="1"
    ) as served:
        thread, result, first = stream_in_background(
            f"{served.url}/orders/{order['order_id']}/images"
        )
        assert first.wait(20)
        served.process.send_signal(signal.SIGTERM)
        wait_for(lambda: refuses_connections(f"{served.url}/health"))  # none once shutting down
        thread.join(30)
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert served.process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "error" not in result, result.get("error")
    archive = zipfile.ZipFile(io.BytesIO(result["data"]))
    assert archive.testzip() is None
    assert len(archive.namelist()) == 4


def test_sigterm_aborts_an_archive_past_the_grace_period(
    tmp_path: Path, sandbox_url: str, sandbox: httpx.Client
) -> None:
    order = slow_order(sandbox, images=4, ms=3000)
    with serve(
        tmp_path, sandbox_url, "--timeout-graceful-shutdown", "1", DOWNLOAD_CONCURRENCY="1"
    ) as served:
        thread, result, first = stream_in_background(
            f"{served.url}/orders/{order['order_id']}/images"
        )
        assert first.wait(20)
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(timeout=20)
        stopped = time.monotonic() - signalled
        thread.join(30)
    # The transfer fails visibly instead of ending as a complete-looking archive.
    assert "error" in result
    assert stopped < 9, "the server did not stop at the end of the grace period"
