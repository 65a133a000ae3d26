"""A resume never joins two versions of an archive (real uvicorn, the standalone sandbox, both
archive store backends; the presigned redirect on S3, the only store that has it).

Each test breaks a first download, changes the order through the sandbox's control route, lets
someone else download the new version in full (so its manifest and cached copy exist), then
resumes the broken download the way one kind of client does. The resumed file must be
byte-identical to one version of the archive, or the answer must be a 200 (the whole current
archive) or a 410 (a pinned URL of a version that is gone).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory, create_order
from tests.integration.resume_support import broken_download, store_settings
from tests.support import SandboxControl, UvicornThread

BREAK_AT = 50_000


@pytest.fixture(params=["local", "s3"])
def node(request: pytest.FixtureRequest, make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    """The service with its archive store (and cache) on a local directory or on S3."""
    settings = store_settings(request.param, make_settings, request)
    with UvicornThread(create_app(settings)) as server:
        yield server


@pytest.fixture
def redirecting(
    request: pytest.FixtureRequest, make_settings: SettingsFactory
) -> Iterator[UvicornThread]:
    """The service on S3 answering complete archives with a presigned redirect."""
    settings = store_settings("s3", make_settings, request, archive_redirect=True)
    with UvicornThread(create_app(settings)) as server:
        yield server


def versions_of(
    url: str, sandbox: SandboxControl, order: dict[str, Any], **headers: str
) -> tuple[bytes, bytes]:
    """The whole archive before and after the order changes: its first image fails, so every
    entry of the new version moves up one, and a splice at any byte differs from both."""
    before = httpx.get(url, headers=headers, timeout=60)
    assert before.status_code == 200
    first = order["images"][0]["image_id"]
    sandbox.post(f"/_sandbox/images/{first}/status", json={"status": "error"}).raise_for_status()
    # Someone else downloads the new version: its manifest and cached copy now exist.
    after = httpx.get(url, headers=headers, timeout=60)
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    for archive in (before.content, after.content):
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            assert zf.testzip() is None
    # Both differ from every splice at BREAK_AT, so a splice cannot pass for either.
    assert before.content[:BREAK_AT] != after.content[:BREAK_AT]
    assert before.content[BREAK_AT:] != after.content[BREAK_AT:]
    return before.content, after.content


def assert_no_splice(head: bytes, answer: httpx.Response, versions: tuple[bytes, ...]) -> None:
    """`answer` to a resume of `head` gives one version whole, or refuses to continue."""
    assert answer.status_code in (200, 206, 410), answer.text
    if answer.status_code == 410:
        assert answer.json()["error"] == "archive_version_gone"
    elif answer.status_code == 200:
        assert answer.content in versions
    else:
        assert head + answer.content in versions, "the resumed file joins two archives"


def test_a_pinned_url_of_a_changed_order_is_gone_for_a_plain_range(
    node: UvicornThread, sandbox: SandboxControl
) -> None:
    """`curl -C -`, `wget -c`, `aria2c`: a Range without a validator, on the pinned URL."""
    order = create_order(sandbox, images=4, image_bytes=30_000)
    url = f"{node.url}/orders/{order['order_id']}/images"
    with httpx.stream("GET", url, timeout=60) as first:
        location = first.headers["content-location"]
    pinned = node.url + location
    assert urlsplit(pinned).path == urlsplit(url).path
    assert parse_qs(urlsplit(pinned).query)["version"]
    head = broken_download(pinned, BREAK_AT)
    versions = versions_of(url, sandbox, order)

    resumed = httpx.get(pinned, headers={"Range": f"bytes={BREAK_AT}-"}, timeout=60)

    assert_no_splice(head, resumed, versions)
    assert resumed.status_code == 410
    body = resumed.json()
    current = body["detail"]["current_url"]
    assert current == httpx.head(url, timeout=60).headers["content-location"]
    assert current != location
    for method in ("GET", "HEAD"):
        assert httpx.request(method, pinned, timeout=60).status_code == 410
    assert httpx.get(node.url + current, timeout=60).content == versions[1]


def test_if_range_with_a_date_never_resumes_another_version(
    node: UvicornThread, sandbox: SandboxControl
) -> None:
    """A client that resumes with `If-Range: <Last-Modified>`. Two versions of an archive can
    share that date (it is the order's last change, to the second); the test sends the new
    version's own date, which is what the client holds when both changes fall in one second."""
    order = create_order(sandbox, images=4, image_bytes=30_000)
    url = f"{node.url}/orders/{order['order_id']}/images"
    with httpx.stream("GET", url, timeout=60) as first:
        old_date = first.headers["last-modified"]
    head = broken_download(url, BREAK_AT)
    versions = versions_of(url, sandbox, order)
    new_date = httpx.head(url, timeout=60).headers["last-modified"]

    for date in (new_date, old_date):
        resumed = httpx.get(
            url, headers={"Range": f"bytes={BREAK_AT}-", "If-Range": date}, timeout=60
        )
        assert_no_splice(head, resumed, versions)
        assert resumed.status_code == 200
        assert resumed.content == versions[1]


def test_the_presigned_redirect_never_resumes_another_version(
    redirecting: UvicornThread, sandbox: SandboxControl
) -> None:
    """`Range` + `If-Range: <old ETag>` with ARCHIVE_REDIRECT=true, the new version cached."""
    order = create_order(sandbox, images=4, image_bytes=30_000)
    url = f"{redirecting.url}/orders/{order['order_id']}/images"
    with httpx.stream("GET", url, timeout=60) as first:
        old_etag = first.headers["etag"]
    head = broken_download(url, BREAK_AT)
    versions = versions_of(url, sandbox, order)
    assert httpx.get(url, timeout=60).status_code == 302  # the new version is in the store

    resumed = httpx.get(
        url,
        headers={"Range": f"bytes={BREAK_AT}-", "If-Range": old_etag},
        follow_redirects=True,
        timeout=60,
    )

    assert_no_splice(head, resumed, versions)
    assert resumed.status_code == 200
    assert not resumed.history, "redirected before If-Range was judged"
    assert resumed.content == versions[1]


def test_a_signed_link_is_pinned_and_its_successor_is_signed_too(
    make_settings: SettingsFactory, sandbox: SandboxControl
) -> None:
    """The page's links (POST /orders/{id}/download-link) name the version they were made
    for; once the order changed they answer 410 with a signed link to the current archive,
    with the same expiry, that works without a key."""
    key = "service-key-0123456789"
    order = create_order(sandbox, images=4, image_bytes=30_000)
    with UvicornThread(create_app(make_settings(service_api_key=key))) as server:
        made = httpx.post(
            f"{server.url}/orders/{order['order_id']}/download-link",
            headers={"X-API-Key": key},
            timeout=60,
        )
        assert made.status_code == 200, made.text
        link = made.json()["url"]
        params = parse_qs(urlsplit(link).query)
        assert params["version"]
        with httpx.stream("GET", server.url + link, timeout=60) as first:
            assert first.status_code == 200
            assert first.headers["content-location"] == link  # already pinned, same signature
        head = broken_download(server.url + link, BREAK_AT)
        url = f"{server.url}/orders/{order['order_id']}/images"
        versions = versions_of(url, sandbox, order, **{"X-API-Key": key})

        resumed = httpx.get(server.url + link, headers={"Range": f"bytes={BREAK_AT}-"}, timeout=60)

        assert_no_splice(head, resumed, versions)
        assert resumed.status_code == 410
        current = resumed.json()["detail"]["current_url"]
        assert parse_qs(urlsplit(current).query)["expires"] == params["expires"]
        fresh = httpx.get(server.url + current, timeout=60)  # no key: the link is signed
        assert fresh.status_code == 200
        assert fresh.content == versions[1]


def test_the_first_full_quality_download_resumes_although_buying_touched_the_order(
    node: UvicornThread, sandbox: SandboxControl
) -> None:
    """Buying an image (its first `preview=false` download) moves the order's
    `last_updated_at` but nothing in the archive: the pinned URL of that very first download
    still resumes."""
    order = create_order(sandbox, images=4, image_bytes=30_000)
    url = f"{node.url}/orders/{order['order_id']}/images?preview=false"
    before = sandbox.get(f"/v3/orders/{order['order_id']}").json()["last_updated_at"]
    with httpx.stream("GET", url, timeout=60) as first:
        pinned = node.url + first.headers["content-location"]
    head = broken_download(pinned, BREAK_AT)
    after = sandbox.get(f"/v3/orders/{order['order_id']}").json()["last_updated_at"]
    assert after != before  # the download bought the images

    resumed = httpx.get(pinned, headers={"Range": f"bytes={BREAK_AT}-"}, timeout=60)

    assert resumed.status_code == 206
    whole = httpx.get(pinned, timeout=60)
    assert whole.status_code == 200
    assert head + resumed.content == whole.content
