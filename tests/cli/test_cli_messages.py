"""setup_test_order.py says what is wrong, and what running again will do, before and after work."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.cli.main import main
from app.cli.progress import BYTES, IMAGES, progress_bar
from app.cli.usage import EXIT_FAILED, EXIT_NETWORK, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE
from app.main import create_app
from tests.cli.test_setup_test_order import ADMIN_TOKEN, FAST, PHOTOS, CuttingProxy, reference
from tests.conftest import SettingsFactory, create_order
from tests.support import UvicornThread


def stderr_of(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command printed on stderr, with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def test_a_missing_download_folder_is_refused_before_any_work(
    refused_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens there: any upload attempt would end in a network failure instead.
    dead = f"http://127.0.0.1:{refused_port}"
    out = tmp_path / "no-such-folder" / "order.zip"
    code = main([*PHOTOS, "--wait", "--download", str(out), "--service-url", dead, "--quiet"])
    assert code == EXIT_USAGE
    assert f"the folder {out.parent} does not exist" in stderr_of(capsys)


def test_a_wrong_service_url_is_not_an_order_not_found(
    service: UvicornThread, sandbox_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    order = "0b7d6c2e-1111-4222-8333-444455556666"
    for wrong in (sandbox_url.removesuffix("/v3"), f"{service.url}/not-the-root"):
        code = main(["--order-id", order, "--wait", "--service-url", wrong, *FAST], env={})
        assert code == EXIT_USAGE, wrong
        assert "does not look like the batch downloader service" in stderr_of(capsys)


def test_a_bad_service_url_or_api_base_is_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for url in ("http://[::1", "http://127.0.0.1:99999", "localhost:8000", "ftp://host"):
        with pytest.raises(SystemExit) as exited:
            main(["--order-id", "abc", "--service-url", url, "--quiet"], env={})
        assert exited.value.code == EXIT_USAGE, url
        assert "argument --service-url" in capsys.readouterr().err
        env = {"AUTOENHANCE_API_KEY": "k", "AUTOENHANCE_API_BASE": url}
        assert main(["--order-id", "abc", "--wait", "--quiet"], env=env) == EXIT_USAGE, url
        assert "AUTOENHANCE_API_BASE:" in stderr_of(capsys)


def answering(path: str, response: Response) -> Starlette:
    """A server that passes the CLI's /health check and answers `path` with `response`."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "mode": "sandbox"})

    async def other(request: Request) -> Response:
        return response

    return Starlette(routes=[Route("/health", health), Route(path, other, methods=["GET", "POST"])])


@pytest.mark.parametrize(
    "body",
    [
        Response("<html>login</html>", media_type="text/html"),
        JSONResponse([1, 2]),
        JSONResponse({"images": "all of them"}),
    ],
)
def test_an_answer_of_another_shape_fails_the_run_cleanly(
    capsys: pytest.CaptureFixture[str], body: Response
) -> None:
    with UvicornThread(answering("/orders/{order_id}", body)) as server:
        code = main(["--order-id", "abc", "--wait", "--service-url", server.url, *FAST], env={})
    assert code == EXIT_FAILED
    assert "the service answered /orders/abc with an unexpected body" in stderr_of(capsys)
    with UvicornThread(answering("/api/create-order", JSONResponse({"id": 1}))) as server:
        code = main([PHOTOS[0], "--service-url", server.url, "--quiet"], env={})
    assert code == EXIT_FAILED
    assert "/api/create-order with an unexpected body" in stderr_of(capsys)


def test_download_without_wait_on_an_order_not_processed_suggests_wait(
    service: UvicornThread,
    sandbox: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order = create_order(sandbox, images=2, image_bytes=3_000, status="processing")
    out = tmp_path / "early.zip"
    argv = ["--order-id", order["order_id"], "--download", str(out), "--quiet"]
    code = main([*argv, "--service-url", service.url], env={})
    assert code == EXIT_FAILED
    err = stderr_of(capsys)
    assert "No image of this order could be delivered" in err
    assert "Add --wait" in err
    assert "{" not in err
    assert "failures" not in err
    assert not out.exists()


def test_a_broken_first_streamed_download_says_it_resumes(
    service: UvicornThread,
    sandbox: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order_id = create_order(sandbox, images=4, image_bytes=60_000)["order_id"]
    proxy = CuttingProxy(service.url, cut_after=50_000, cuts=1)
    out = tmp_path / "cut.zip"
    argv = ["--order-id", order_id, "--download", str(out), "--retries", "0", "--quiet"]
    with UvicornThread(proxy.app) as front:
        code = main([*argv, "--service-url", front.url], env={})
    assert code == EXIT_NETWORK
    err = stderr_of(capsys)
    # Every archive answer has an ETag, the first streamed one too: it can be resumed.
    assert "run the same command again to resume the download from byte 50000" in err
    assert "cannot be resumed" not in err


def test_a_broken_cached_download_says_it_resumes(
    service: UvicornThread,
    sandbox: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order_id = create_order(sandbox, images=4, image_bytes=60_000)["order_id"]
    reference(service, order_id)  # cached: the next answer has an ETag, so it can be resumed
    proxy = CuttingProxy(service.url, cut_after=100_000, cuts=1)
    out = tmp_path / "cut.zip"
    argv = ["--order-id", order_id, "--download", str(out), "--retries", "0", "--quiet"]
    with UvicornThread(proxy.app) as front:
        code = main([*argv, "--service-url", front.url], env={})
    assert code == EXIT_NETWORK
    assert "run the same command again to resume the download from byte 100000" in stderr_of(capsys)


def test_after_creating_an_order_it_says_to_continue_with_its_id(
    sandbox_url: str, sandbox: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.post("/_sandbox/faults", json={"kind": "stuck"}).raise_for_status()
    argv = [PHOTOS[0], "--wait", "--timeout", "0.5", "--poll-interval", "0.1", "--quiet"]
    env = {"AUTOENHANCE_API_KEY": "cli-test-key", "AUTOENHANCE_API_BASE": sandbox_url}
    assert main(argv, env=env) == EXIT_TIMEOUT
    err = stderr_of(capsys)
    printed = re.search(
        r"\border ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", err
    )
    assert printed is not None, err
    order_id = printed.group(1)
    # Running the same command again would upload the photos into a second order.
    assert f"run again with --order-id {order_id} instead of the photos" in err


def test_the_cli_names_the_order_through_the_service(
    make_settings: SettingsFactory, sandbox: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    with UvicornThread(create_app(make_settings(admin_token=ADMIN_TOKEN))) as server:
        code = main(
            [*PHOTOS, "--name", "Harbour View", "--service-url", server.url, "--quiet"],
            env={"ADMIN_TOKEN": ADMIN_TOKEN},
        )
        assert code == EXIT_OK
        order_id = capsys.readouterr().out.strip().splitlines()[-1]
        summary = httpx.get(f"{server.url}/orders/{order_id}").json()
    assert summary["name"] == "Harbour View"
    assert [i["image_name"] for i in summary["images"]] == [Path(p).name for p in PHOTOS]


def test_each_progress_bar_counts_in_its_own_unit() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=False)
    progress = progress_bar(console, quiet=False)
    images = progress.add_task("processing", total=20, completed=3, unit=IMAGES)
    data = progress.add_task("download", total=4_500_000, completed=1_200_000, unit=BYTES)
    amount, speed = progress.columns[2], progress.columns[3]
    by_id = {task.id: task for task in progress.tasks}
    assert str(amount.render(by_id[images])) == "3/20 images"  # type: ignore[union-attr]
    assert str(speed.render(by_id[images])) == ""  # type: ignore[union-attr]
    shown = str(amount.render(by_id[data]))  # type: ignore[union-attr]
    assert shown == "1.2/4.5 MB"
    assert "1200000" not in shown
    assert "images" not in shown
    rate = str(speed.render(by_id[data]))  # type: ignore[union-attr]
    assert rate.endswith("B/s") or rate == "?"
