"""`stored_object_response` over a real uvicorn server: ranges, conditionals, 416, redirects.

A small app serves one stored object the way the archive routes do (with the service's error
handlers, so a 416 has the service's JSON error shape).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.api.archives import stored_object_response
from app.archive.http_rules import http_date
from app.core.errors import NotFound
from app.storage import ArchiveStore, LocalArchiveStore
from app.storage._s3 import S3ArchiveStore
from app.web.handlers import install_error_handlers
from app.web.middleware import install_middleware
from testkit.s3 import S3Server
from tests.support import UvicornThread, settings_of

DATA = os.urandom(300_000)
KEY = "cache/object.zip"


def serving_app(make: Any, *, redirect_ttl: float | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        store: ArchiveStore = make()
        writer = store.writer(KEY)
        await writer.write(DATA)
        assert await writer.commit() is not None
        yield {"store": store}
        await store.settle()
        await store.aclose()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    install_middleware(app, settings_of())

    @app.api_route("/object", methods=["GET", "HEAD"])
    async def serve(request: Request) -> Response:
        store: ArchiveStore = request.state.store
        info = await store.stat(KEY)
        if info is None:
            raise NotFound("gone")
        return await stored_object_response(
            request, store, info, headers={"X-Extra": "1"}, redirect_ttl=redirect_ttl
        )

    return app


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("serving") / "archives"
    with UvicornThread(serving_app(lambda: LocalArchiveStore(root, quotas=()))) as running:
        yield f"{running.url}/object"


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


def test_whole_object_carries_validators_and_length(server: str) -> None:
    whole = get(server)
    assert whole.status_code == 200
    assert whole.content == DATA
    assert whole.headers["content-length"] == str(len(DATA))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"].startswith('"')
    assert not whole.headers["etag"].startswith("W/")
    assert whole.headers["last-modified"].endswith("GMT")
    assert whole.headers["content-type"] == "application/zip"
    assert whole.headers["x-extra"] == "1"
    head = httpx.head(server, timeout=30)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-length", "etag", "last-modified", "accept-ranges"):
        assert head.headers[name] == whole.headers[name]


def test_single_and_suffix_ranges(server: str) -> None:
    part = get(server, Range="bytes=100-199")
    assert part.status_code == 206
    assert part.content == DATA[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
    assert part.headers["content-length"] == "100"
    tail = get(server, Range="bytes=-1000")
    assert tail.status_code == 206
    assert tail.content == DATA[-1000:]
    rest = get(server, Range="bytes=299000-")
    assert rest.status_code == 206
    assert rest.content == DATA[299_000:]
    clipped = get(server, Range="bytes=299990-999999")
    assert clipped.content == DATA[299_990:]
    head = httpx.head(server, headers={"Range": "bytes=10-19"}, timeout=30)
    assert head.status_code == 206
    assert head.headers["content-length"] == "10"


@pytest.mark.parametrize("header", ["bytes=0-9, 1000-1099, -5", "bytes=0-1,4-5"])
def test_several_ranges_get_the_whole_object(server: str, header: str) -> None:
    """One rule for every archive answer: several ranges are ignored (200, everything)."""
    answer = get(server, Range=header)
    assert answer.status_code == 200
    assert answer.content == DATA
    assert "content-range" not in answer.headers


def test_if_range_and_conditional_requests(server: str) -> None:
    whole = get(server)
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]
    resumed = get(server, Range="bytes=1000-", **{"If-Range": etag})
    assert resumed.status_code == 206
    assert resumed.content == DATA[1000:]
    # A date is no strong validator of an archive: the whole object, never a range of it.
    by_date = get(server, Range="bytes=1000-", **{"If-Range": modified})
    assert by_date.status_code == 200
    assert by_date.content == DATA
    changed = get(server, Range="bytes=1000-", **{"If-Range": '"another-version"'})
    assert changed.status_code == 200
    assert changed.content == DATA
    cached = get(server, **{"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert get(server, **{"If-None-Match": '"x", W/' + etag}).status_code == 304
    assert get(server, **{"If-None-Match": '"x"'}).status_code == 200
    # Not evaluated, for the same reason: a shared date could call a changed archive current.
    assert get(server, **{"If-Modified-Since": modified}).status_code == 200


@pytest.mark.parametrize(
    "header", [f"bytes={len(DATA)}-", "bytes=999999999-", "bytes=-0", "bytes=" + "9" * 4301 + "-"]
)
def test_a_range_past_the_end_is_416_with_the_json_error(server: str, header: str) -> None:
    answer = get(server, Range=header)
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{len(DATA)}"
    body = answer.json()
    assert body["error"] == "range_not_satisfiable"
    assert body["detail"]
    assert body["request_id"]


@pytest.mark.parametrize(
    "header",
    ["bytes=abc", "items=0-5", "bytes=5-1", "bytes", "bytes=0-1,,x", "bytes=0-" + "9" * 4301],
)
def test_an_unusable_range_is_ignored(server: str, header: str) -> None:
    answer = get(server, Range=header)
    if header.startswith("bytes=0-9"):  # a huge last byte: to the end
        assert answer.status_code == 206
        assert answer.content == DATA
    else:
        assert answer.status_code == 200
        assert answer.content == DATA


def test_redirects_to_a_presigned_url_on_object_storage(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.bucket()

    def make() -> ArchiveStore:
        return S3ArchiveStore(
            bucket=bucket,
            prefix="p",
            endpoint=s3_server.endpoint,
            quotas=(),
            config=s3_server.credentials,
        )

    with UvicornThread(serving_app(make, redirect_ttl=60)) as running:
        url = f"{running.url}/object"
        moved = get(url)
        assert moved.status_code == 302
        assert moved.headers["cache-control"] == "no-store"
        location = moved.headers["location"]
        assert location.startswith(s3_server.endpoint)
        assert "X-Amz-Signature" in location
        followed = httpx.get(url, follow_redirects=True, timeout=30)
        assert followed.content == DATA
        part = httpx.get(location, headers={"Range": "bytes=10-19"}, timeout=30)
        assert part.status_code == 206
        assert part.content == DATA[10:20]
        etag = moved.headers.get("etag") or get(url, **{"If-None-Match": "*"}).headers["etag"]
        assert get(url, **{"If-None-Match": etag}).status_code == 304  # 304 wins
        # The redirect comes only after If-Range and Range were judged here: a range this
        # service would not honour is answered here, whole, never by the object store.
        for headers in (
            {b"Range": b"bytes=10-", b"If-Range": b'"another-version"'},
            {b"Range": b"bytes=10-", b"If-Range": b"Fri, 02 Jan 2026 03:04:05 GMT"},
            {b"Range": b"bytes=0-1,4-5"},
            {b"Range": "bytes=²-".encode("latin-1")},
        ):
            whole = httpx.get(url, headers=headers, timeout=30)
            assert whole.status_code == 200, headers
            assert whole.content == DATA
        honoured = get(url, Range="bytes=10-", **{"If-Range": etag})
        assert honoured.status_code == 302
        assert get(url, Range=f"bytes={len(DATA)}-").status_code == 416


def test_http_date_is_whole_seconds_gmt() -> None:
    from datetime import UTC, datetime

    assert http_date(datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)) == (
        "Fri, 02 Jan 2026 03:04:05 GMT"
    )
