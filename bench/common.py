"""Processes and measurements shared by the benchmarks.

Everything runs on loopback, on free ports, and is stopped on the way out: the standalone
sandbox, the service (uvicorn, one worker unless asked), nginx for the static-file ceiling, and
curl as every client (`curl --parallel` for the direct ceiling). Peak RSS is sampled from the
service process every few milliseconds with psutil; CPU time is read from it and its workers.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from testkit.processes import MB, free_port, running, sandbox_process, start_web, stop_group

GB = 1024 * MB
API_KEY = "bench-key"


@contextlib.contextmanager
def sandbox() -> Iterator[str]:
    """The standalone sandbox; yields its root URL (without /v3)."""
    with sandbox_process(
        "--processing-delay", "0", env={"SANDBOX_SEED_DEMO": "false"}, output=subprocess.DEVNULL
    ) as root:
        yield root


@dataclass(frozen=True)
class Service:
    """A running service: its root URL, its (supervisor) process and its data directory."""

    base: str
    process: psutil.Process
    data_dir: Path


@contextlib.contextmanager
def service(sandbox_root: str, *, workers: int = 1, **env: str) -> Iterator[Service]:
    """The service under uvicorn (`workers` processes), talking to the sandbox over a socket."""
    with tempfile.TemporaryDirectory(prefix="bench-") as data:
        full_env = {
            "AUTOENHANCE_API_KEY": API_KEY,
            "AUTOENHANCE_API_BASE": f"{sandbox_root}/v3",
            "DATA_DIR": data,
            "ARCHIVE_CACHE_MAX_BYTES": "0",  # every run streams from the upstream
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_DOWNLOADS": "100000/minute",
            **env,
        }
        if workers > 1:
            metrics_dir = Path(data) / "prometheus"
            metrics_dir.mkdir()
            full_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        args = [
            "--workers",
            str(workers),
            # As `make run` starts it: the protocol with a deadline on request headers.
            "--http",
            "app.web.server:HeaderDeadlineProtocol",
            "--limit-concurrency",
            "256",
            "--no-access-log",
            "--log-level",
            "info",  # no access log: info adds only the start-up lines waited for below
        ]
        log = Path(data) / "uvicorn.log"
        with log.open("wb") as sink:
            process, base = start_web(full_env, *args, output=sink)
        try:
            _wait_for_workers(log, workers)
            yield Service(base=base, process=psutil.Process(process.pid), data_dir=Path(data))
        finally:
            stop_group(process)


def _wait_for_workers(log: Path, workers: int, timeout: float = 60) -> None:
    """Poll uvicorn's log until every worker ran its lifespan: /health answered by one worker
    says nothing of the others."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count("Application startup complete") >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{workers} workers did not come up")


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time of a process and its live children (uvicorn's workers)."""
    total = 0.0
    for proc in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


@dataclass
class Transfer:
    ttfb: float
    total: float
    size: int
    status: int

    @property
    def mb_per_s(self) -> float:
        return self.size / MB / self.total if self.total else 0.0


# No transfer of a benchmark may take longer (seconds): curl gives up, the run fails.
CURL_MAX_TIME = 300


@contextlib.contextmanager
def _reaped(procs: list[subprocess.Popen[str]]) -> Iterator[None]:
    """Kill whichever of `procs` is still running when the block is left by an error."""
    try:
        yield
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise


def curl(url: str, *, output: str = "/dev/null") -> subprocess.Popen[str]:
    """Start a curl download; `finish` reads its timings. curl is a lean client, so the
    figures measure the service rather than a Python client."""
    return subprocess.Popen(
        [
            "curl",
            "-s",
            "--max-time",
            str(CURL_MAX_TIME),
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
    out, _ = process.communicate(timeout=CURL_MAX_TIME + 10)
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


# --- the ceiling: curl straight at the sandbox, and nginx for a file on disk ------------------

CEILING_CONNECTIONS = 8  # per client, as many as the service opens for one request
# The query the service sends for its default options (DownloadOptions.upstream_params()).
IMAGE_QUERY = "format=jpeg&preview=true"


def image_ids(sandbox_root: str, order_id: str) -> list[str]:
    response = httpx.get(
        f"{sandbox_root}/v3/orders/{order_id}", headers={"x-api-key": API_KEY}, timeout=60
    )
    response.raise_for_status()
    return [image["image_id"] for image in response.json()["images"]]


@dataclass(frozen=True)
class Timed:
    """One client's transfer: wall time from spawning curl to its exit, bytes, first byte."""

    wall: float
    size: int
    ttfb: float | None = None

    @property
    def mb_per_s(self) -> float:
        return self.size / MB / self.wall


def direct(
    sandbox_root: str, orders: list[str], *, workdir: Path, connections: int = CEILING_CONNECTIONS
) -> list[Timed]:
    """The ceiling: one `curl --parallel` client per order, all at once, fetching every image
    of its order straight from the sandbox (`/v3/images/{id}/enhanced`, the 302 and the asset:
    the same two hops the service makes) with `connections` connections each."""
    configs = []
    for n, order_id in enumerate(orders):
        config = workdir / f"direct-{n}.curlrc"
        config.write_text(
            "".join(
                f'url = "{sandbox_root}/v3/images/{image_id}/enhanced?{IMAGE_QUERY}"\n'
                'output = "/dev/null"\n'
                for image_id in image_ids(sandbox_root, order_id)
            )
        )
        configs.append(config)
    args = [
        "curl",
        "--silent",
        "--show-error",
        "--no-progress-meter",
        "--max-time",
        str(CURL_MAX_TIME),
        "--fail",
        "--location",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        str(connections),
        "--header",
        f"x-api-key: {API_KEY}",
        "--write-out",
        "%{http_code} %{size_download}\\n",
    ]
    started = time.monotonic()
    procs = [
        subprocess.Popen([*args, "--config", str(c)], stdout=subprocess.PIPE, text=True)
        for c in configs
    ]
    results = []
    with _reaped(procs):
        for proc in procs:
            out, _ = proc.communicate(timeout=CURL_MAX_TIME + 10)
            wall = time.monotonic() - started
            lines = out.split()
            statuses, sizes = lines[0::2], [int(s) for s in lines[1::2]]
            if proc.returncode != 0 or set(statuses) != {"200"}:
                raise RuntimeError(f"direct download failed: curl exited {proc.returncode}")
            results.append(Timed(wall=wall, size=sum(sizes)))
    return results


def through(urls: list[str], *, output: str = "/dev/null") -> list[Timed]:
    """Clients of the service (or of any URL): one plain curl per URL, all at once."""
    started = time.monotonic()
    procs = [curl(url, output=output) for url in urls]
    results = []
    with _reaped(procs):
        for proc in procs:
            t = finish(proc)
            wall = time.monotonic() - started
            if t.status != 200:
                raise RuntimeError(f"{proc.args!r} answered {t.status}")
            results.append(Timed(wall=wall, size=t.size, ttfb=t.ttfb))
    return results


NGINX = "/usr/sbin/nginx"
# Two ways nginx moves a file; which is faster on loopback varies from run to run, so the
# ceiling takes the better of them.
NGINX_TUNINGS = ("sendfile on; tcp_nopush on;", "sendfile off; output_buffers 2 1m;")


@contextlib.contextmanager
def nginx_running(http_body: str, *, ready_url: str) -> Iterator[None]:
    """nginx, one worker process, its files in a temporary directory, with `http_body` inside
    its `http` block; running once `ready_url` answers."""
    if not Path(NGINX).exists():
        raise RuntimeError(f"{NGINX} is missing (make system-deps installs it)")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        temp_paths = "".join(
            f"    {kind}_temp_path {prefix}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf.write_text(
            f"daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log off;\n{temp_paths}{http_body}}}\n"
        )
        args = [NGINX, "-e", f"{prefix}/error.log", "-p", prefix, "-c", str(conf)]
        with running(args, ready_url=ready_url):
            yield


@contextlib.contextmanager
def nginx(root: Path, *, directives: str = NGINX_TUNINGS[0]) -> Iterator[str]:
    """nginx serving `root` on a free loopback port, configured with `directives`: the ceiling
    for serving a file that is already on disk. Yields its root URL."""
    port = free_port()
    body = (
        f"    {directives}\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n        root {root};\n    }}\n"
    )
    with nginx_running(body, ready_url=f"http://127.0.0.1:{port}/"):
        yield f"http://127.0.0.1:{port}"
