"""Unit tests of the CLI's parts: the retry policy on a fake clock, exit codes, resume state."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import pytest

from app.cli.direct import upstream_failure
from app.cli.download import Partial, archive_path, rerun_note, retry_policy
from app.cli.main import RunState, again
from app.cli.service import service_failure, service_headers
from app.cli.usage import (
    EXIT_BAD_FILE,
    EXIT_FAILED,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    parse_args,
)
from app.upstream.errors import (
    CircuitOpen,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamUnauthorized,
)

# --- the download's retry policy ------------------------------------------------------------


class FakeClock:
    """Records the sleeps asked for instead of sleeping."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class Flaky:
    """Fails `breaks` times with `error`, then returns "done"."""

    def __init__(self, breaks: int, error: Exception) -> None:
        self.breaks = breaks
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.breaks:
            raise self.error
        return "done"


async def test_broken_transfers_are_retried_with_capped_exponential_waits() -> None:
    clock = FakeClock()
    seen: list[tuple[str, int]] = []
    flaky = Flaky(6, httpx.RemoteProtocolError("cut"))
    policy = retry_policy(6, on_retry=lambda e, n: seen.append((str(e), n)), sleep=clock.sleep)
    assert await policy(flaky) == "done"
    assert flaky.calls == 7
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert seen == [("cut", n) for n in range(1, 7)]


async def test_the_last_broken_attempt_is_reported_and_its_error_raised() -> None:
    clock = FakeClock()
    seen: list[int] = []
    error = httpx.ReadError("reset")
    flaky = Flaky(99, error)
    policy = retry_policy(2, on_retry=lambda e, n: seen.append(n), sleep=clock.sleep)
    with pytest.raises(httpx.ReadError) as raised:
        await policy(flaky)
    assert raised.value is error  # not wrapped in tenacity's RetryError
    assert flaky.calls == 3
    assert seen == [1, 2, 3]
    assert clock.sleeps == [0.5, 1.0]


async def test_no_retries_means_one_attempt() -> None:
    clock = FakeClock()
    flaky = Flaky(1, httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        await retry_policy(0, on_retry=lambda e, n: None, sleep=clock.sleep)(flaky)
    assert flaky.calls == 1
    assert clock.sleeps == []


async def test_an_answer_of_the_service_is_not_retried() -> None:
    clock = FakeClock()
    flaky = Flaky(1, CliError("the service answered 404", EXIT_NOT_FOUND))
    with pytest.raises(CliError):
        await retry_policy(3, on_retry=lambda e, n: None, sleep=clock.sleep)(flaky)
    assert flaky.calls == 1
    assert clock.sleeps == []


# --- exit codes -----------------------------------------------------------------------------


def error_answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, EXIT_USAGE),
        (403, EXIT_USAGE),
        (404, EXIT_NOT_FOUND),
        (413, EXIT_BAD_FILE),
        (415, EXIT_BAD_FILE),
        (422, EXIT_FAILED),
        (429, EXIT_FAILED),
        (500, EXIT_FAILED),
        (502, EXIT_NETWORK),
        (503, EXIT_NETWORK),
        (504, EXIT_NETWORK),
    ],
)
def test_each_service_status_has_its_exit_code(status: int, code: int) -> None:
    failure = service_failure(error_answer(status, {"error": "some_code", "detail": "why"}))
    assert failure.code == code
    assert failure.error == "some_code"
    assert failure.message == f"the service answered {status}: why"


def test_the_message_is_the_detail_never_the_raw_body() -> None:
    nested = error_answer(422, {"error": "x", "detail": {"message": "bad range", "at": 3}})
    assert service_failure(nested).message == "the service answered 422: bad range"
    listed = error_answer(422, {"error": "x", "detail": [{"loc": ["query", "images"]}]})
    assert service_failure(listed).message == (
        'the service answered 422: [{"loc": ["query", "images"]}]'
    )
    for body in (httpx.Response(502, text="<html>Bad Gateway</html>"), error_answer(500, [1])):
        failure = service_failure(body)
        assert failure.message == f"the service answered {body.status_code}"
        assert failure.error is None
    assert service_failure(error_answer(400, {"error": 7, "detail": "x"})).error is None


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UpstreamNotFound("gone", status_code=404), EXIT_NOT_FOUND),
        (UpstreamUnauthorized("no", status_code=401), EXIT_USAGE),
        (UpstreamServerError("500 twice", status_code=500), EXIT_NETWORK),
        (UpstreamRateLimited("slow down", retry_after=3.0), EXIT_NETWORK),
        (CircuitOpen("open", retry_after=5.0), EXIT_FAILED),
        (UpstreamError("odd answer"), EXIT_FAILED),
    ],
)
def test_each_upstream_failure_has_its_exit_code(exc: UpstreamError, code: int) -> None:
    assert upstream_failure(exc).code == code


@pytest.mark.parametrize(
    "argv",
    [[], ["a.jpg", "--retries", "-1"], ["a.jpg", "--timeout", "0"], ["a.jpg", "--download", "x"]],
)
def test_usage_errors_exit_with_the_usage_code(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == EXIT_USAGE


def test_only_the_credentials_that_are_set_are_sent() -> None:
    assert service_headers({"AUTOENHANCE_API_KEY": "", "OTHER": "x"}) == {}
    assert service_headers(
        {"AUTOENHANCE_API_KEY": "own", "ADMIN_TOKEN": "tok", "SERVICE_API_KEY": "svc"}
    ) == {"X-Autoenhance-Key": "own", "Authorization": "Bearer tok", "X-API-Key": "svc"}


# --- the resume state on disk ---------------------------------------------------------------


ORDER = "0b7d6c2e-1111-4222-8333-444455556666"


def partial_at(tmp_path: Path, *, data: bytes, meta: str | None) -> Partial:
    partial = Partial(tmp_path / "order.zip")
    partial.path.write_bytes(data)
    if meta is not None:
        partial.meta_path.write_text(meta)
    return partial


def test_a_partial_file_with_its_etag_resumes_from_its_size(tmp_path: Path) -> None:
    meta = json.dumps({"url": archive_path(ORDER), "etag": '"v1"'})
    partial = partial_at(tmp_path, data=b"x" * 1234, meta=meta)
    assert partial.resumable(archive_path(ORDER)) == (1234, '"v1"', archive_path(ORDER))
    pinned = archive_path(ORDER) + "?version=0123456789abcdef"
    partial.remember(archive_path(ORDER), '"v1"', pinned)
    assert partial.resumable(archive_path(ORDER)) == (1234, '"v1"', pinned)
    assert rerun_note(partial.out, archive_path(ORDER)) == " to resume the download from byte 1234"


@pytest.mark.parametrize(
    ("data", "meta"),
    [
        (b"x" * 10, None),  # no validator: the service streamed without an ETag
        (b"x" * 10, "{not json"),
        (b"x" * 10, json.dumps({"url": "/orders/other/images", "etag": '"v1"'})),
        (b"x" * 10, json.dumps({"url": f"/orders/{ORDER}/images", "etag": ""})),
        (b"", json.dumps({"url": f"/orders/{ORDER}/images", "etag": '"v1"'})),
    ],
)
def test_a_partial_file_that_cannot_be_continued_starts_over(
    tmp_path: Path, data: bytes, meta: str | None
) -> None:
    partial = partial_at(tmp_path, data=data, meta=meta)
    assert partial.resumable(archive_path(ORDER)) is None
    assert "download it again from the start" in rerun_note(partial.out, archive_path(ORDER))


def test_nothing_on_disk_adds_nothing_to_the_advice(tmp_path: Path) -> None:
    assert rerun_note(tmp_path / "order.zip", archive_path(ORDER)) == ""


def test_finishing_moves_the_partial_file_into_place(tmp_path: Path) -> None:
    partial = partial_at(tmp_path, data=b"PK\x03\x04", meta='{"url": "u", "etag": "e"}')
    partial.finish()
    assert partial.out.read_bytes() == b"PK\x03\x04"
    assert not partial.path.exists()
    assert not partial.meta_path.exists()


@pytest.mark.parametrize("download", [None, "order.zip"])
def test_a_run_stopped_before_its_order_exists_says_so_and_not_more(
    tmp_path: Path, download: str | None
) -> None:
    args = argparse.Namespace(download=tmp_path / download if download else None)
    assert again(args, RunState()) == "no order was created; run the same command again"


def test_a_run_stopped_after_creating_its_order_names_it(tmp_path: Path) -> None:
    args = argparse.Namespace(download=None)
    advice = again(args, RunState(order_id=ORDER, created=True))
    assert f"--order-id {ORDER}" in advice
