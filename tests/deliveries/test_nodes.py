"""Two nodes sharing Redis (deliveries) and S3 (archives and manifests), each with its own
DATA_DIR: a download broken on node A and resumed with `curl -C -` on node B adds up to a
delivered archive, and a revocation on A is a 410 on B at once."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.deliveries.conftest import Photographer, service_settings
from tests.deliveries.support import wait_until
from tests.integration.resume_support import broken_download, store_settings
from tests.support import SandboxControl, UvicornThread, require_tool

pytestmark = pytest.mark.redis


@pytest.fixture
def two_nodes(
    make_settings: SettingsFactory, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """Nodes A and B: one Redis, one S3 bucket, one signing secret; a DATA_DIR each."""
    with contextlib.ExitStack() as stack:
        urls = []
        for name in ("a", "b"):

            def on_s3(name: str = name, **extra: Any) -> Any:
                return store_settings(
                    "s3", make_settings, request, data_dir=tmp_path / name, **extra
                )

            # No archive cache: every resume follows the manifest the other node wrote.
            settings = service_settings(on_s3, "redis", request, archive_cache_max_bytes=0)
            urls.append(stack.enter_context(UvicornThread(create_app(settings))).url)
        yield urls[0], urls[1]


def test_a_download_broken_on_one_node_and_resumed_on_another_is_delivered(
    two_nodes: tuple[str, str], sandbox: SandboxControl, tmp_path: Path
) -> None:
    node_a, node_b = two_nodes
    photographer = Photographer(
        url=node_a,
        backend="redis",
        key=f"photographer-{uuid.uuid4().hex[:12]}",
        settings=None,
        sandbox=sandbox,
    )
    order = photographer.order(images=4, image_bytes=4_000_000)
    created = photographer.deliver(order["order_id"], max_downloads=1)
    token = created["url"].rsplit("/", 1)[1]
    target = tmp_path / "photos.zip"
    # Past the first 1 MiB chunk: a chunk counts once the server asks for the next, and a
    # client that leaves inside the first may leave before its send returned.
    target.write_bytes(broken_download(f"{node_a}/d/{token}/archive", 3_000_000))
    wait_until(
        lambda: photographer.status(created["delivery_id"])["archives"][0]["bytes_served"],
        what="node A's bytes recorded",
    )

    result = subprocess.run(
        [
            require_tool("curl"),
            "-sS",
            "-f",
            "-C",
            "-",
            "-o",
            str(target),
            f"{node_b}/d/{token}/archive",
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr.decode()[-1000:]
    data = target.read_bytes()
    status = wait_until(
        lambda: (s := photographer.status(created["delivery_id"]))["status"] == "delivered" and s,
        what="delivered",
    )
    assert status["delivered"]["bytes"] == len(data)
    assert status["downloads_used"] == 1  # the resume on B did not count
    # The limit is shared: node B refuses a new whole download.
    assert httpx.get(f"{node_b}/d/{token}/archive").status_code == 403

    revoked = httpx.delete(
        f"{node_b}/deliveries/{created['delivery_id']}", headers=photographer.headers
    )
    assert revoked.status_code == 200
    assert httpx.get(f"{node_a}/d/{token}").status_code == 410
