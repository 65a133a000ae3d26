"""The Go peer as a ceiling column: scosman/zipstreamer, built from its source on this machine.

zipstreamer streams a ZIP of URLs (stored, one image at a time, with a data descriptor). It is
the fastest peer in the prior art, and where bytes dominate it is the figure to beat. Its code
is not part of this project: `ZIPSTREAMER_SRC` names a checkout of its repository (with its
`vendor/` directory), and `build` compiles it with Debian's `golang-go` offline
(`-mod=vendor`, no module proxy, no toolchain download) into a directory of the benchmark's.
Without the variable, without `go`, or when the build fails, the column is skipped and the
table says why.

zipstreamer fetches each URL with a plain GET and cannot send the API's key, so it is handed
the asset URLs that the API's 302 points to (resolved before each run, outside the timing):
it makes one hop per image where the service and curl make two.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.common import API_KEY, CURL_MAX_TIME, GB, IMAGE_QUERY, Timed, cpu_seconds, image_ids
from testkit.processes import free_port, running

SOURCE_ENV = "ZIPSTREAMER_SRC"
# The build takes a few seconds; a program that takes minutes is not the one meant.
BUILD_TIMEOUT = 300


@dataclass(frozen=True)
class Peer:
    """A running zipstreamer: its root URL and its process."""

    base: str
    process: psutil.Process


def build(workdir: Path) -> Path | str:
    """The compiled zipstreamer, or the reason there is none."""
    source = os.environ.get(SOURCE_ENV)
    if not source:
        return f"Go peer not measured: set {SOURCE_ENV} to a zipstreamer checkout"
    go = shutil.which("go")
    if go is None:
        return "Go peer not measured: no `go` (make system-deps installs golang-go)"
    if not (Path(source) / "vendor").is_dir():
        return f"Go peer not measured: {source} has no vendor/ directory to build offline from"
    binary = workdir / "zipstreamer"
    env = {
        **os.environ,
        "GOFLAGS": "-mod=vendor",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOCACHE": str(workdir / "go-cache"),
        "CGO_ENABLED": "0",
    }
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"Go peer not measured: its build failed ({last})"
    return binary


@contextlib.contextmanager
def peer(binary: Path) -> Iterator[Peer]:
    """zipstreamer listening on a free port (it binds every interface; only loopback is used)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([str(binary)], ready_url=f"{url}/download", env={"PORT": str(port)}) as proc:
        yield Peer(base=url, process=psutil.Process(proc.pid))


def asset_urls(sandbox_root: str, order_id: str) -> list[tuple[str, str]]:
    """(asset URL, name in the archive) for every image: the API's 302 resolved with the key."""
    entries = []
    with httpx.Client(headers={"x-api-key": API_KEY}, timeout=60) as http:
        for n, image_id in enumerate(image_ids(sandbox_root, order_id)):
            answer = http.get(f"{sandbox_root}/v3/images/{image_id}/enhanced?{IMAGE_QUERY}")
            if answer.status_code != 302:
                raise RuntimeError(f"the API answered {answer.status_code}, not its 302")
            entries.append((str(answer.url.join(answer.headers["location"])), f"{n:04d}.jpg"))
    return entries


def through_peer(
    running_peer: Peer, sandbox_root: str, order_id: str, workdir: Path, cpu_per_gb: list[float]
) -> list[Timed]:
    """One curl client asking zipstreamer for the order's archive; appends its CPU-s per GB."""
    entries = asset_urls(sandbox_root, order_id)
    body = workdir / "zipstreamer.json"
    body.write_text(json.dumps({"files": [{"url": u, "zipPath": p} for u, p in entries]}))
    cpu = cpu_seconds(running_peer.process)
    started = time.monotonic()
    done = subprocess.run(
        [
            "curl",
            "-s",
            "--fail",
            "--max-time",
            str(CURL_MAX_TIME),
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{time_starttransfer}",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            f"@{body}",
            f"{running_peer.base}/download",
        ],
        capture_output=True,
        text=True,
        timeout=CURL_MAX_TIME + 10,
        check=False,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"zipstreamer's download failed: curl exited {done.returncode}")
    size, ttfb = done.stdout.split()
    cpu_per_gb.append((cpu_seconds(running_peer.process) - cpu) / (int(size) / GB))
    return [Timed(wall=wall, size=int(size), ttfb=float(ttfb))]
