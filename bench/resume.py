"""Benchmark (e): a first download of 100 x 1 MB at 200 ms upstream latency, broken at half,
then resumed with `curl -C -`.

Targets: the resumed request fetches no image whose entry ended before the offset (counted
in the sandbox's request log), and its first byte arrives <= 0.5 s after the request. The
resumed file must be byte-identical to an unbroken download.

The first download's manifest ends where its stream stopped, so the size of the archive is
not known when the resume arrives; HTTP needs the last byte position in `Content-Range`
before the first byte, so the service fetches the images still to come before it answers.
A second resume from the same offset finds the manifest complete and starts after the
spanning entry alone: both are reported.

`measure(sandbox_root, base)` returns the figures (for the `make bench` table);
`python -m bench.resume` runs it against its own sandbox and service and prints them.
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import create_order, curl, finish, sandbox, service, set_latency
from testkit.processes import MB, ROOT

IMAGES = 100
LATENCY_MS = 200
CONCURRENCY = 8
TTFB_TARGET = 0.5


def _broken_download(url: str, offset: int, target: Path) -> None:
    received = 0
    with target.open("wb") as out, httpx.stream("GET", url, timeout=120) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            take = chunk[: offset - received]
            out.write(take)
            received += len(take)
            if received >= offset:
                break


def _requests(sandbox_root: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = httpx.get(
        f"{sandbox_root}/_sandbox/requests", timeout=30
    ).json()["requests"]
    return entries


def _settle(sandbox_root: str, *, timeout: float = 10.0) -> None:
    """Wait until the sandbox has logged every request of the broken download (its
    in-flight fetches end a moment after the client left), then clear the log."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        count = len(_requests(sandbox_root))
        if count == seen:
            break
        seen = count
        time.sleep(0.5)
    httpx.delete(f"{sandbox_root}/_sandbox/requests", timeout=30).raise_for_status()


def _entry_ends(archive: bytes, image_ids: list[str]) -> dict[str, int]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        infos = [i for i in zf.infolist() if not i.filename.startswith("_")]
        return {
            image_id: info.header_offset + 30 + len(info.filename.encode()) + info.file_size
            for image_id, info in zip(image_ids, infos, strict=True)
        }


def _resume(
    sandbox_root: str, url: str, target: Path, ends: dict[str, int], offset: int
) -> dict[str, Any]:
    """Resume `target` with curl -C -; upstream requests and timings of that request."""
    result = finish(curl_resume(url, target))
    entries = [e for e in _requests(sandbox_root) if e["route"] == "enhanced"]
    fetched = Counter(e["image_id"] for e in entries)
    return {
        "status": result.status,
        "ttfb_s": result.ttfb,
        "total_s": result.total,
        "upstream_image_requests": sum(fetched.values()),
        "refetched_before_offset": sum(1 for i in fetched if ends.get(i, offset + 1) <= offset),
    }


def curl_resume(url: str, target: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "curl",
            "-s",
            "-C",
            "-",
            "-o",
            str(target),
            "-w",
            "%{http_code} %{time_starttransfer} %{time_total} %{size_download}",
            url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def measure(sandbox_root: str, base: str, reference: str) -> dict[str, Any]:
    """Run scenario (e) against a running sandbox and service; return its figures.

    `reference` is another service with its own store: the source of the unbroken archive
    the resumed file is compared with (a download from `base` itself would complete the
    manifest before the break)."""
    set_latency(sandbox_root, 0)
    order_id = create_order(sandbox_root, images=IMAGES, image_bytes=MB)
    order = httpx.get(f"{base}/orders/{order_id}", timeout=60).json()
    image_ids = [image["image_id"] for image in order["images"]]
    url = f"{base}/orders/{order_id}/images"
    set_latency(sandbox_root, LATENCY_MS)
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as work:
        whole_path = Path(work) / "whole.zip"
        finish(curl(f"{reference}/orders/{order_id}/images", output=str(whole_path)))
        whole = whole_path.read_bytes()
        ends = _entry_ends(whole, image_ids)
        offset = len(whole) // 2
        target = Path(work) / "order.zip"
        _broken_download(url, offset, target)
        _settle(sandbox_root)
        first = _resume(sandbox_root, url, target, ends, offset)
        first["identical"] = target.read_bytes() == whole
        # The same break resumed again: the manifest is complete now.
        with target.open("r+b") as handle:
            handle.truncate(offset)
        _settle(sandbox_root)
        second = _resume(sandbox_root, url, target, ends, offset)
        second["identical"] = target.read_bytes() == whole
    return {
        "scenario": f"(e) {IMAGES} x 1 MB, {LATENCY_MS} ms, broken at half, resumed",
        "offset": offset,
        "size": len(whole),
        "resume": first,
        "resume_again": second,
        "target": f"no image before the offset fetched again, first byte <= {TTFB_TARGET} s",
        "met": first["refetched_before_offset"] == 0
        and first["ttfb_s"] <= TTFB_TARGET
        and first["identical"],
    }


def main() -> None:
    with (
        sandbox() as sb,
        service(sb, DOWNLOAD_CONCURRENCY=str(CONCURRENCY)) as served,
        service(sb, DOWNLOAD_CONCURRENCY=str(CONCURRENCY)) as reference,
    ):
        figures = measure(sb, served.base, reference.base)
    print(json.dumps(figures, indent=2))
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "resume.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
