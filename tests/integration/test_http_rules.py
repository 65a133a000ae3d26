"""One set of HTTP rules for every archive answer (real uvicorn, the standalone sandbox).

Every form of `Range`, `If-Range` and `If-None-Match` is sent to every kind of answer — a fresh
stream, a resume from a manifest, a cached copy, a `stream=false` build and a job's archive —
and each must answer as `app.archive.http_rules` says: the same header, the same outcome, except
that a fresh stream, whose size is not known yet, ignores a `Range`. A property test then sends
arbitrary header bytes: never a 500, never an error that is not the JSON shape.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from testkit.jobs import FAST_JOBS
from tests.conftest import create_order
from tests.support import SandboxControl, UvicornThread, settings_of

KINDS = ("streamed", "resumed", "cached", "built", "job")

# A Range form, and what it asks of an archive of `size` bytes: (start, end) to send, "416",
# or None (ignored: the whole archive).
Wanted = Callable[[int], tuple[int, int] | str | None]


def _ignored(size: int) -> None:
    return None


RANGES: dict[str, tuple[bytes, Wanted]] = {
    "first-bytes": (b"bytes=0-9", lambda size: (0, 10)),
    "from-zero": (b"bytes=0-", lambda size: (0, size)),
    "middle": (b"bytes=100-199", lambda size: (100, 200)),
    "open-ended": (b"bytes=1000-", lambda size: (1000, size)),
    "suffix": (b"bytes=-70", lambda size: (size - 70, size)),
    "past-the-end-clipped": (b"bytes=10-99999999999", lambda size: (10, size)),
    "spaces": (b"BYTES = 5 - 9", lambda size: (5, 10)),
    "at-the-end": (b"bytes=<size>-", lambda size: "416"),
    "empty-suffix": (b"bytes=-0", lambda size: "416"),
    "huge-first": (b"bytes=" + b"9" * 4301 + b"-", lambda size: "416"),
    "letters": (b"bytes=abc", _ignored),
    "backwards": (b"bytes=5-2", _ignored),
    "other-unit": (b"items=0-5", _ignored),
    "several": (b"bytes=0-1,4-5", _ignored),
    "several-overlapping": (b"bytes=0-9,5-20", _ignored),
    "latin1-superscript": ("bytes=²-".encode("latin-1"), _ignored),
    "latin1-superscript-last": ("bytes=0-³".encode("latin-1"), _ignored),
    "arabic-digits": ("bytes=١-".encode(), _ignored),
    "no-dash": (b"bytes=5", _ignored),
    "no-unit": (b"0-5", _ignored),
    "empty": (b"", _ignored),
}
# If-Range forms, sent with `bytes=100-199`: whether the range is honoured.
IF_RANGES: dict[str, tuple[str, bool]] = {
    "if-range-current": ("<etag>", True),
    "if-range-other": ('"another-version"', False),
    "if-range-weak": ("W/<etag>", False),
    "if-range-date": ("<last-modified>", False),
    "if-range-garbage": ("yesterday", False),
}
# If-None-Match forms: whether the answer is a 304.
IF_NONE_MATCHES: dict[str, tuple[str, bool]] = {
    "inm-current": ("<etag>", True),
    "inm-weak": ("W/<etag>", True),
    "inm-list": ('"x", <etag>', True),
    "inm-star": ("*", True),
    "inm-other": ('"another-version"', False),
}
FORMS = [*RANGES, *IF_RANGES, *IF_NONE_MATCHES]


@dataclass
class World:
    """Two services on one shared sandbox: one without a cache (resumes, builds), one with."""

    plain: UvicornThread
    cached: UvicornThread
    sandbox: SandboxControl
    operator_key: str
    job_order: str
    job_url: str
    size: int  # of every archive here: three images of the same size, the same names

    def fresh_order(self) -> str:
        order = create_order(self.sandbox, images=3, image_bytes=3_000)
        return str(order["order_id"])


@pytest.fixture(scope="module")
def world(sandbox_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    key = f"operator-{uuid.uuid4().hex[:12]}"
    unlimited = {
        f"rate_limit_{name}": "100000/minute" for name in ("downloads", "lookups", "job_downloads")
    }

    def make(name: str, **extra: Any) -> Any:
        return settings_of(
            **FAST_JOBS,
            **unlimited,
            autoenhance_api_key=key,
            autoenhance_api_base=sandbox_url,
            data_dir=tmp_path_factory.mktemp(name),
            **extra,
        )

    root = sandbox_url.removesuffix("/v3")
    with (
        SandboxControl(base_url=root, operator_key=key) as sandbox,
        UvicornThread(create_app(make("plain", archive_cache_max_bytes=0))) as plain,
        UvicornThread(create_app(make("cached"))) as cached,
    ):
        order = create_order(sandbox, images=3, image_bytes=3_000)["order_id"]
        created = httpx.post(f"{cached.url}/orders/{order}/jobs", timeout=30).json()
        deadline = time.monotonic() + 30
        while httpx.get(created["status_url"], timeout=30).json()["state"] != "complete":
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        size = len(httpx.get(created["download_url"], timeout=30).content)
        yield World(plain, cached, sandbox, key, order, created["download_url"], size)


def _target(world: World, kind: str) -> tuple[str, dict[str, str]]:
    """The URL of an answer of `kind` (prepared so that the next GET is one), and its query."""
    if kind == "job":
        return world.job_url, {}
    order = world.fresh_order()
    if kind == "streamed":
        return f"{world.plain.url}/orders/{order}/images", {}
    if kind == "built":
        return f"{world.plain.url}/orders/{order}/images", {"stream": "false"}
    server = world.plain if kind == "resumed" else world.cached
    url = f"{server.url}/orders/{order}/images"
    assert httpx.get(url, timeout=30).status_code == 200  # a complete manifest, or the cache
    return url, {}


def _headers(form: str, *, etag: str, modified: str, size: int) -> list[tuple[bytes, bytes]]:
    def fill(value: str) -> bytes:
        return value.replace("<etag>", etag).replace("<last-modified>", modified).encode()

    if form in RANGES:
        value = RANGES[form][0].replace(b"<size>", str(size).encode())
        return [(b"Range", value)]
    if form in IF_RANGES:
        return [(b"Range", b"bytes=100-199"), (b"If-Range", fill(IF_RANGES[form][0]))]
    return [(b"If-None-Match", fill(IF_NONE_MATCHES[form][0]))]


def _expected(form: str, kind: str, size: int) -> tuple[int, tuple[int, int] | None]:
    """The status, and the bytes of a 206."""
    if form in IF_NONE_MATCHES:
        return (304, None) if IF_NONE_MATCHES[form][1] else (200, None)
    if kind == "streamed":  # no size yet: a Range is ignored
        return 200, None
    wanted = RANGES[form][1](size) if form in RANGES else (100, 200)
    if form in IF_RANGES and not IF_RANGES[form][1]:
        wanted = None
    if wanted is None:
        return 200, None
    if wanted == "416":
        return 416, None
    assert isinstance(wanted, tuple)
    return 206, wanted


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", FORMS)
def test_every_header_form_gets_the_same_answer_from_every_kind(
    world: World, kind: str, form: str
) -> None:
    url, params = _target(world, kind)
    # A HEAD fetches nothing, so the next GET is still of its kind (jobs have no HEAD).
    head = httpx.request("GET" if kind == "job" else "HEAD", url, timeout=30)
    assert head.status_code == 200
    etag, modified = head.headers["etag"], head.headers["last-modified"]
    size = world.size
    headers = _headers(form, etag=etag, modified=modified, size=size)

    answer = httpx.get(url, params=params, headers=headers, timeout=30)
    whole = httpx.get(url, params=params, timeout=30)

    assert whole.status_code == 200
    assert len(whole.content) == size
    status, span = _expected(form, kind, size)
    assert answer.status_code == status, (answer.status_code, answer.text[:200])
    if status in (200, 206, 304):  # every archive answer names its pinned URL
        assert urlsplit(answer.headers["content-location"]).path == urlsplit(url).path
    if status == 200:
        assert answer.content == whole.content
        assert "content-range" not in answer.headers
    elif status == 206:
        assert span is not None
        assert answer.content == whole.content[span[0] : span[1]]
        assert answer.headers["content-range"] == f"bytes {span[0]}-{span[1] - 1}/{size}"
        assert answer.headers["content-length"] == str(span[1] - span[0])
    elif status == 416:
        assert answer.json()["error"] == "range_not_satisfiable"
        assert answer.headers["content-range"] == f"bytes */{size}"
    else:
        assert answer.content == b""
        assert answer.headers["etag"] == etag
        assert "content-disposition" not in answer.headers


HEADER_NAMES = [b"Range", b"If-Range", b"If-None-Match", b"If-Modified-Since"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=st.lists(
        st.tuples(
            st.sampled_from(HEADER_NAMES),
            # Any octet a field value may hold (RFC 9110 §5.5: HTAB, SP, VCHAR, obs-text; no
            # whitespace at either end); other control bytes are refused by uvicorn's parser
            # with a 400 before the app is called.
            st.binary(max_size=40).map(
                lambda raw: bytes(b for b in raw if b == 0x09 or 0x20 <= b != 0x7F).strip(b" \t")
            ),
        ),
        min_size=1,
        max_size=3,
    ),
    kind=st.sampled_from(["streamed-or-resumed", "cached", "built", "job"]),
)
def test_arbitrary_header_bytes_never_make_a_500(
    world: World, kind: str, values: list[tuple[bytes, bytes]]
) -> None:
    order = world.job_order
    base = {
        "streamed-or-resumed": f"{world.plain.url}/orders/{order}/images",
        "cached": f"{world.cached.url}/orders/{order}/images",
        "built": f"{world.plain.url}/orders/{order}/images?stream=false",
        "job": world.job_url,
    }[kind]
    answer = httpx.get(base, headers=values, timeout=30)
    assert answer.status_code < 500, answer.text[:300]
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) >= {"error", "detail"}
    else:
        assert answer.status_code in (200, 206, 304)
