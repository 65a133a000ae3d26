"""Real download clients resume a broken first download: `curl -C -` and `wget -c` from a
byte inside a local header, inside image data and inside the central directory, and
`aria2c -x4 -s4` fetches a complete archive in four parallel ranges. Every result is
byte-identical to an unbroken download and passes `zipfile`, `unzip -t`, `7z t` and
`bsdtar -t`."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory, create_order
from tests.integration.resume_support import broken_download, offsets
from tests.support import UvicornThread, require_tool


@pytest.fixture
def node(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    """No archive cache: every resume is regenerated from the manifest."""
    with UvicornThread(create_app(make_settings(archive_cache_max_bytes=0))) as server:
        yield server


@pytest.fixture
def cached_node(make_settings: SettingsFactory, tmp_path: Path) -> Iterator[UvicornThread]:
    settings = make_settings(data_dir=tmp_path / "cached")
    with UvicornThread(create_app(settings)) as server:
        yield server


def check_archive(path: Path, expected: bytes) -> None:
    data = path.read_bytes()
    assert len(data) == len(expected)
    assert data == expected
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
    for command in (
        [require_tool("unzip"), "-tqq", str(path)],
        [require_tool("7z", "7za", "7zz"), "t", "-bd", str(path)],
        [require_tool("bsdtar"), "-tf", str(path)],
    ):
        result = subprocess.run(command, capture_output=True, timeout=120, check=False)
        assert result.returncode == 0, (command[0], result.stdout[-500:], result.stderr[-500:])


CLIENTS = {
    "curl": lambda url, out: [require_tool("curl"), "-sS", "-f", "-C", "-", "-o", out, url],
    # -S prints the server's answer: a 200 would also end in the right file (wget -c starts
    # over on 200), so the test checks that the range was honoured.
    "wget": lambda url, out: [require_tool("wget"), "-q", "-S", "-c", "-t", "1", "-O", out, url],
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("where", ["local_header", "image_data", "central_directory"])
def test_a_client_resumes_a_broken_first_download(
    node: UvicornThread,
    cached_node: UvicornThread,
    sandbox: httpx.Client,
    tmp_path: Path,
    client: str,
    where: str,
) -> None:
    order = create_order(sandbox, images=5, image_bytes=60_000)
    path = f"/orders/{order['order_id']}/images"
    whole = httpx.get(cached_node.url + path, timeout=60).content  # another node's store
    offset = offsets(whole)[where]
    target = tmp_path / "order.zip"
    target.write_bytes(broken_download(node.url + path, offset))

    command = CLIENTS[client](node.url + path, str(target))
    result = subprocess.run(command, capture_output=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr.decode()[-1000:]
    if client == "wget":
        assert b" 206 " in result.stderr, result.stderr.decode()[-1000:]
    check_archive(target, whole)


@pytest.mark.parametrize("source", ["cached", "manifest"])
def test_aria2c_fetches_a_complete_archive_in_four_ranges(
    node: UvicornThread,
    cached_node: UvicornThread,
    sandbox: httpx.Client,
    tmp_path: Path,
    source: str,
) -> None:
    order = create_order(sandbox, images=6, image_bytes=1_000_000)
    server = cached_node if source == "cached" else node
    url = f"{server.url}/orders/{order['order_id']}/images"
    whole = httpx.get(url, timeout=120).content  # completes the archive (cache or manifest)
    assert httpx.head(url, timeout=60).headers["content-length"] == str(len(whole))

    result = subprocess.run(
        [
            require_tool("aria2c"),
            "-x4",
            "-s4",
            "--min-split-size=1M",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "--console-log-level=warn",
            "--summary-interval=0",
            "-d",
            str(tmp_path),
            "-o",
            "aria.zip",
            url,
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stdout.decode()[-1000:]
    check_archive(tmp_path / "aria.zip", whole)
