"""Every archive response is resumable, the first streamed one too (real uvicorn, the
standalone sandbox, both archive store backends).

A first download is broken at a byte inside a local header, inside image data and inside
the central directory; `Range` from there must give exactly the rest of the unbroken
archive, without fetching again an image whose entry ended before the offset.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory, create_order
from tests.integration.resume_support import broken_download, offsets, store_settings
from tests.support import SandboxControl, UvicornThread


@pytest.fixture(params=["local", "s3"])
def node(request: pytest.FixtureRequest, make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    """The service with its archive store on a local directory or on S3, caching no archive:
    whatever a broken download left, a resume has to regenerate the bytes from the manifest
    (a small archive could otherwise finish into the socket buffers and be cached)."""
    settings = store_settings(request.param, make_settings, request, archive_cache_max_bytes=0)
    with UvicornThread(create_app(settings)) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def cached_node(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> Iterator[UvicornThread]:
    """The service with its archive cache on, on either store backend."""
    settings = store_settings(request.param, make_settings, request)
    with UvicornThread(create_app(settings)) as server:
        yield server


@pytest.fixture
def reference(make_settings: SettingsFactory, tmp_path: Path) -> Iterator[UvicornThread]:
    """A second service with its own store: the source of unbroken archives."""
    settings = make_settings(data_dir=tmp_path / "reference")
    with UvicornThread(create_app(settings)) as server:
        yield server


def fetches(sandbox: SandboxControl, order: dict[str, Any]) -> Counter[str]:
    """Image downloads of this order's images the sandbox has seen (its log is shared)."""
    ids = {image["image_id"] for image in order["images"]}
    entries = sandbox.log()
    return Counter(
        e["image_id"] for e in entries if e["route"] == "enhanced" and e["image_id"] in ids
    )


def entry_ends(archive: bytes, order: dict[str, Any]) -> dict[str, int]:
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        infos = [i for i in zf.infolist() if not i.filename.startswith("_")]
        return {
            image["image_id"]: info.header_offset
            + 30
            + len(info.filename.encode())
            + info.file_size
            for image, info in zip(order["images"], infos, strict=True)
        }


@pytest.mark.parametrize("where", ["local_header", "image_data", "central_directory"])
def test_a_broken_first_download_resumes_from_its_offset_to_identical_bytes(
    node: UvicornThread, reference: UvicornThread, sandbox: SandboxControl, where: str
) -> None:
    order = create_order(sandbox, images=5, image_bytes=40_000)
    path = f"/orders/{order['order_id']}/images"
    whole = httpx.get(reference.url + path, timeout=60).content
    offset = offsets(whole)[where]
    with httpx.stream("GET", node.url + path, timeout=60) as first:
        headers = first.headers
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"].startswith('"')
    assert headers["last-modified"].endswith("GMT")
    assert "content-length" not in headers  # streamed: the size is not known yet
    head = broken_download(node.url + path, offset)
    before = fetches(sandbox, order)

    resumed = httpx.get(node.url + path, headers={"Range": f"bytes={offset}-"}, timeout=60)

    assert resumed.status_code == 206, resumed.text
    assert resumed.headers["content-range"] == f"bytes {offset}-{len(whole) - 1}/{len(whole)}"
    assert resumed.headers["etag"] == headers["etag"]
    assert head + resumed.content == whole
    again = fetches(sandbox, order) - before
    ends = entry_ends(whole, order)
    assert not [i for i in again if ends[i] <= offset], "an image that ended before was fetched"
    assert all(count == 1 for count in again.values())


def test_if_range_with_another_etag_gets_the_whole_current_archive(
    node: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=30_000)
    url = f"{node.url}/orders/{order['order_id']}/images"
    head = broken_download(url, 40_000)
    stale = httpx.get(url, headers={"Range": "bytes=40000-", "If-Range": '"stale"'}, timeout=60)
    assert stale.status_code == 200
    assert "content-range" not in stale.headers
    assert stale.content[:40_000] == head
    zipfile.ZipFile(io.BytesIO(stale.content)).testzip()
    etag = stale.headers["etag"]
    matching = httpx.get(url, headers={"Range": "bytes=40000-", "If-Range": etag}, timeout=60)
    assert matching.status_code == 206
    assert head + matching.content == stale.content


def test_a_changed_order_answers_a_plain_range_with_the_whole_new_archive(
    node: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=4, image_bytes=30_000)
    url = f"{node.url}/orders/{order['order_id']}/images"
    with httpx.stream("GET", url, timeout=60) as first:
        old_etag = first.headers["etag"]
    broken_download(url, 50_000)
    last = order["images"][-1]["image_id"]
    sandbox.post(f"/_sandbox/images/{last}/status", json={"status": "error"}).raise_for_status()

    answer = httpx.get(url, headers={"Range": "bytes=50000-"}, timeout=60)

    assert answer.status_code == 200
    assert "content-range" not in answer.headers
    assert answer.headers["etag"] != old_etag
    with zipfile.ZipFile(io.BytesIO(answer.content)) as zf:
        assert zf.testzip() is None
        assert len(zf.namelist()) == 4  # three images and the report naming the fourth


def test_an_image_that_no_longer_matches_its_record_gets_the_whole_archive(
    node: UvicornThread, reference: UvicornThread, sandbox: SandboxControl, tmp_path: Path
) -> None:
    """A record that disagrees with the re-fetched image (as if the image changed under the
    same order version) must not be spliced: the answer is 200 with the whole archive."""
    order = create_order(sandbox, images=3, image_bytes=30_000)
    path = f"/orders/{order['order_id']}/images"
    whole = httpx.get(reference.url + path, timeout=60).content
    offset = offsets(whole)["image_data"]
    broken_download(node.url + path, offset)
    tamper_manifest(node, lambda entries: entries[2].update(crc=(entries[2]["crc"] + 1) % 2**32))

    answer = httpx.get(node.url + path, headers={"Range": f"bytes={offset}-"}, timeout=60)

    assert answer.status_code == 200
    assert answer.content == whole


def tamper_manifest(node: UvicornThread, change: Any) -> None:
    """Rewrite the first manifest segment in the node's store (local or S3), from inside the
    server's event loop (where the store lives)."""

    async def rewrite() -> None:
        store = node.server.lifespan.state["downloads"].store
        (key,) = [item.key for item in await store.objects("manifests")]
        segment = json.loads(await store.get_bytes(key))
        change(segment["entries"])
        await store.put_bytes(key, json.dumps(segment).encode())

    asyncio.run_coroutine_threadsafe(rewrite(), node.loop).result(timeout=30)


def test_a_complete_archive_has_its_size_ranges_and_validators(
    cached_node: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=30_000)
    url = f"{cached_node.url}/orders/{order['order_id']}/images"
    whole = httpx.get(url, timeout=60)
    size = len(whole.content)
    etag = whole.headers["etag"]
    head = httpx.head(url, timeout=60)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(size)
    assert head.headers["etag"] == etag
    suffix = httpx.get(url, headers={"Range": "bytes=-100"}, timeout=60)
    assert suffix.status_code == 206
    assert suffix.content == whole.content[-100:]
    many = httpx.get(url, headers={"Range": "bytes=0-9,-10"}, timeout=60)
    assert many.status_code == 200  # several ranges: the whole archive, on every answer
    assert many.content == whole.content
    past = httpx.get(url, headers={"Range": f"bytes={size}-"}, timeout=60)
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    assert past.json()["error"] == "range_not_satisfiable"
    for ignored in ("bytes=abc", "items=0-10", "bytes=" + "9" * 4301 + "-"):
        plain = httpx.get(url, headers={"Range": ignored}, timeout=60)
        assert plain.status_code in (200, 416)
        assert plain.status_code != 500
        if plain.status_code == 200:
            assert plain.content == whole.content
    assert httpx.get(url, headers={"If-None-Match": etag}, timeout=60).status_code == 304


def test_a_complete_manifest_gives_size_and_ranges_without_a_cached_copy(
    node: UvicornThread, sandbox: SandboxControl
) -> None:
    order = create_order(sandbox, images=3, image_bytes=30_000)
    url = f"{node.url}/orders/{order['order_id']}/images"
    whole = httpx.get(url, timeout=60).content  # streamed; its manifest is now complete
    head = httpx.head(url, timeout=60)
    assert head.headers["content-length"] == str(len(whole))
    head_part = httpx.head(url, headers={"Range": "bytes=0-9"}, timeout=60)
    assert head_part.status_code == 206
    assert head_part.headers["content-range"] == f"bytes 0-9/{len(whole)}"
    again = httpx.get(url, timeout=60)
    assert again.headers["content-length"] == str(len(whole))
    assert again.content == whole
    suffix = httpx.get(url, headers={"Range": "bytes=-70"}, timeout=60)
    assert suffix.status_code == 206
    assert suffix.content == whole[-70:]
    middle = httpx.get(url, headers={"Range": "bytes=100-199"}, timeout=60)
    assert middle.status_code == 206
    assert middle.content == whole[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    past = httpx.get(url, headers={"Range": f"bytes={len(whole)}-"}, timeout=60)
    assert past.status_code == 416
    assert past.json()["error"] == "range_not_satisfiable"


def test_a_mismatch_after_the_first_byte_drops_the_connection_and_the_record(
    node: UvicornThread, sandbox: SandboxControl
) -> None:
    """A replay that finds a later image changed cannot honour its Content-Length: the
    transfer fails (never a valid-looking archive), and the next request starts afresh."""
    order = create_order(sandbox, images=4, image_bytes=30_000)
    url = f"{node.url}/orders/{order['order_id']}/images"
    whole = httpx.get(url, timeout=60).content
    tamper_manifest(node, lambda entries: entries[3].update(crc=(entries[3]["crc"] + 1) % 2**32))

    with httpx.stream("GET", url, timeout=60) as replay:
        assert replay.headers["content-length"] == str(len(whole))
        with pytest.raises(httpx.HTTPError):
            replay.read()

    again = httpx.get(url, timeout=60)
    assert again.status_code == 200
    assert "content-length" not in again.headers
    assert again.content == whole


def test_a_resumed_archive_ends_up_in_the_cache(
    cached_node: UvicornThread, sandbox: SandboxControl
) -> None:
    """Broken, resumed to the end, then downloaded twice: the first plain GET replays the
    manifest (a complete pass, teed into the cache) and the second is served from the cache
    without a single image fetched."""
    order = create_order(sandbox, images=4, image_bytes=60_000)
    last = order["images"][-1]["image_id"]
    # The last image comes late, so the broken first download cannot finish into socket
    # buffers (and be cached) before the client has gone.
    sandbox.post(
        "/_sandbox/faults",
        json={"kind": "latency", "ms": 500, "scope": "enhanced", "image_ids": [last], "count": 1},
    ).raise_for_status()
    url = f"{cached_node.url}/orders/{order['order_id']}/images"
    head = broken_download(url, 50_000)
    resumed = httpx.get(url, headers={"Range": "bytes=50000-"}, timeout=60)
    assert resumed.status_code == 206
    whole = head + resumed.content

    replayed = httpx.get(url, timeout=60)
    assert replayed.status_code == 200
    assert replayed.content == whole
    before = fetches(sandbox, order)
    cached = httpx.get(url, timeout=60)

    assert cached.status_code == 200
    assert cached.content == whole
    # The held fetch of the broken download may be logged late, so the last image is left
    # out: a replay would have fetched every image again.
    after = fetches(sandbox, order)
    del before[last], after[last]
    assert after == before, "the archive was fetched again, not cached"
