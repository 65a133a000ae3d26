"""Two web processes with separate DATA_DIRs sharing one S3 archive store (moto on loopback):
a download broken on node A resumes on node B with `curl -C -`, byte-identical; a Range on B
is served from the archive A completed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from testkit.processes import start_web, stop_group
from testkit.s3 import S3Server
from tests.conftest import SettingsFactory, create_order
from tests.integration.resume_support import broken_download
from tests.support import SandboxControl, UvicornThread, require_tool

NodeFactory = Callable[..., str]


@pytest.fixture
def nodes(
    s3_server: S3Server, s3_bucket: str, sandbox_url: str, operator_key: str, tmp_path: Path
) -> Iterator[NodeFactory]:
    """Starts `uvicorn app:app` processes that share the bucket; each has its own DATA_DIR."""
    started: list[Any] = []

    def start(name: str, **env: str) -> str:
        full_env = {
            **os.environ,
            **s3_server.env,
            "AUTOENHANCE_API_KEY": operator_key,
            "AUTOENHANCE_API_BASE": sandbox_url,
            "DATA_DIR": str(tmp_path / name),
            "ARCHIVE_STORE": f"s3://{s3_bucket}/archives",
            **env,
        }
        process, url = start_web(full_env)
        started.append(process)
        return url

    yield start
    for process in started:
        stop_group(process)


@pytest.fixture
def reference(make_settings: SettingsFactory, tmp_path: Path) -> Iterator[UvicornThread]:
    settings = make_settings(data_dir=tmp_path / "reference")
    with UvicornThread(create_app(settings)) as server:
        yield server


def test_a_download_broken_on_one_node_resumes_on_another(
    nodes: NodeFactory, reference: UvicornThread, sandbox: SandboxControl, tmp_path: Path
) -> None:
    node_a = nodes("a", ARCHIVE_CACHE_MAX_BYTES="0")
    node_b = nodes("b", ARCHIVE_CACHE_MAX_BYTES="0")
    order = create_order(sandbox, images=6, image_bytes=400_000)
    path = f"/orders/{order['order_id']}/images"
    whole = httpx.get(reference.url + path, timeout=120).content
    target = tmp_path / "order.zip"
    target.write_bytes(broken_download(node_a + path, 1_000_123))

    result = subprocess.run(
        [require_tool("curl"), "-sS", "-f", "-C", "-", "-o", str(target), node_b + path],
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr.decode()[-1000:]
    assert target.read_bytes() == whole


def test_a_range_on_one_node_is_served_from_the_archive_another_completed(
    nodes: NodeFactory, sandbox: SandboxControl
) -> None:
    node_a, node_b = nodes("a"), nodes("b")
    order = create_order(sandbox, images=3, image_bytes=50_000)
    path = f"/orders/{order['order_id']}/images"
    whole = httpx.get(node_a + path, timeout=60)
    assert whole.status_code == 200
    size = len(whole.content)
    before = image_fetches(sandbox, order)

    part = httpx.get(node_b + path, headers={"Range": "bytes=1000-"}, timeout=60)

    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    assert part.headers["etag"] == whole.headers["etag"]
    assert part.content == whole.content[1000:]
    assert image_fetches(sandbox, order) == before  # served from the store, not rebuilt


def image_fetches(sandbox: SandboxControl, order: dict[str, Any]) -> int:
    ids = {image["image_id"] for image in order["images"]}
    entries = sandbox.log()
    return sum(1 for e in entries if e["route"] == "enhanced" and e["image_id"] in ids)
