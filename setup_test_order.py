"""Create an Autoenhance order from photos, wait for it, and download it as one ZIP.

    python setup_test_order.py house1.jpg house2.jpg [--wait] [--download out.zip]

Two ways to reach Autoenhance:

- directly (default): the order is created with AUTOENHANCE_API_KEY at AUTOENHANCE_API_BASE
  (the real API, or `python -m app.sandbox`), through the same client the service uses;
- through a running service (`--service-url http://127.0.0.1:8000`): the order is created with
  the service's POST /api/create-order, polled with GET /orders/{id} and downloaded with
  GET /orders/{id}/images. Sent along when set: AUTOENHANCE_API_KEY as X-Autoenhance-Key (your
  own key), ADMIN_TOKEN as a Bearer token, SERVICE_API_KEY as X-API-Key.

`--download` needs `--service-url` (the ZIP is the service's). Everything that can be checked
before any work is checked first: the files, the folder the ZIP goes to, and that the URL is
the service (its `GET /health`). A broken transfer is retried and, once the service has answered
with an ETag (every archive answer of this service has one, the first streamed one too),
resumed with Range + If-Range: the partial file is `<out>.part` with its validator in
`<out>.part.json`, so running the same command again also resumes. An answer without an ETag
(an older service) makes a broken download start over; the messages say which of the two will
happen.
Keys are read from the environment only, never from the command line (where `ps` shows them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from app.services.ordering import ImageOutcome, create_order_with_images, uploads_from_paths
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamRetryable,
    UpstreamUnauthorized,
)
from app.upstream.factory import build_http_client
from app.upstream.models import Order

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_FILE = 3
EXIT_NETWORK = 4
EXIT_NOT_FOUND = 5
EXIT_TIMEOUT = 6

DEFAULT_API_BASE = "https://api.autoenhance.ai/v3"
API_VERSION = "2025-01-01"
# Image statuses after which nothing changes any more.
FINAL_STATUSES = frozenset({"processed", "error", "expired"})

EPILOG = """\
environment:
  AUTOENHANCE_API_KEY    your Autoenhance key (required unless --service-url is given)
  AUTOENHANCE_API_BASE   API base URL (default https://api.autoenhance.ai/v3; the sandbox:
                         http://127.0.0.1:8001/v3)
  SERVICE_API_KEY        sent as X-API-Key to the service, when it asks for one
  ADMIN_TOKEN            sent as a Bearer token to the service (creating orders on its key)

exit codes:
  0  done
  1  the API or service refused or failed (e.g. no image could be uploaded)
  2  usage error (also: --service-url is not the service), or a missing or refused key
  3  a file cannot be read or is not a supported image
  4  network failure (after retries)
  5  order not found
  6  timed out waiting for processing
"""


class CliError(Exception):
    """A failure with the exit code it ends the program with (and the service's error code)."""

    def __init__(self, message: str, code: int, *, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error = error


@dataclass(frozen=True, slots=True)
class Status:
    """How far processing has come: images in a final state out of all."""

    total: int
    done: int
    failed: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="setup_test_order.py",
        description="Create an Autoenhance order from photos, wait until it is processed and "
        "download every enhanced image as one ZIP (through the batch downloader service).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", type=Path, help="photos to upload")
    parser.add_argument("--name", help="name of the new order")
    parser.add_argument("--order-id", help="use this existing order instead of creating one")
    parser.add_argument("--wait", action="store_true", help="wait until processing finishes")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, help="seconds between checks (default 2)"
    )
    parser.add_argument("--download", type=Path, metavar="OUT.zip", help="save the ZIP here")
    parser.add_argument(
        "--service-url", help="the batch downloader service, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="download retries on a broken transfer (3)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not args.files and not args.order_id:
        parser.error("give at least one photo, or --order-id")
    if args.download and not args.service_url:
        parser.error("--download fetches the ZIP through the service: add --service-url")
    if args.timeout <= 0 or args.poll_interval <= 0 or args.retries < 0:
        parser.error("--timeout and --poll-interval must be positive, --retries not negative")
    return args


def check_destination(out: Path) -> None:
    """Fail before any work when the ZIP could not be saved at `out`."""
    folder = out.parent
    if out.is_dir():
        raise CliError(
            f"--download {out} is a folder; give a file name, e.g. {out / 'order.zip'}",
            EXIT_USAGE,
        )
    if not folder.is_dir():
        raise CliError(f"cannot save to {out}: the folder {folder} does not exist", EXIT_USAGE)
    if not os.access(folder, os.W_OK):
        raise CliError(f"cannot save to {out}: the folder {folder} is not writable", EXIT_USAGE)


def check_files(paths: Sequence[Path]) -> None:
    """Fail early, naming the file, on anything unreadable or not an image."""
    try:
        uploads_from_paths(paths)
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}", EXIT_BAD_FILE) from exc
    except ValueError as exc:
        raise CliError(str(exc), EXIT_BAD_FILE) from exc


# What a progress bar counts: its task's `unit` field.
BYTES = "bytes"
IMAGES = "images"


class AmountColumn(ProgressColumn):
    """`3/20 images` for a count of images, `1.2/4.5 MB` for bytes: each bar in its own unit."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == BYTES:
            return self._bytes.render(task)
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"{task.completed:.0f}/{total} images", style="progress.download")


class SpeedColumn(ProgressColumn):
    """Transfer speed, for byte counts only (images per second says nothing useful)."""

    def __init__(self) -> None:
        super().__init__()
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == BYTES:
            return self._speed.render(task)
        return Text("")


def progress_bar(console: Console, *, quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        AmountColumn(),
        SpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )


def upstream_failure(exc: UpstreamError) -> CliError:
    if isinstance(exc, UpstreamNotFound):
        return CliError("order not found (or not visible to this key)", EXIT_NOT_FOUND)
    if isinstance(exc, UpstreamUnauthorized):
        return CliError("the Autoenhance API refused the key", EXIT_USAGE)
    if isinstance(exc, UpstreamRetryable):
        return CliError(f"network failure: {exc.message}", EXIT_NETWORK)
    return CliError(f"the Autoenhance API failed: {exc.message}", EXIT_FAILED)


def service_failure(response: httpx.Response) -> CliError:
    try:
        payload = response.json()
        detail, error = payload.get("detail"), payload.get("error")
    except (ValueError, AttributeError):
        detail, error = None, None
    error = error if isinstance(error, str) else None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        message = detail["message"]
    else:
        message = detail if isinstance(detail, str) else json.dumps(detail) if detail else ""
    status = response.status_code
    text = f"the service answered {status}" + (f": {message}" if message else "")
    if status in (401, 403):
        return CliError(text, EXIT_USAGE, error=error)
    if status == 404:
        return CliError(text, EXIT_NOT_FOUND, error=error)
    if status in (502, 503, 504):
        return CliError(text, EXIT_NETWORK, error=error)
    if status in (413, 415):
        return CliError(text, EXIT_BAD_FILE, error=error)
    return CliError(text, EXIT_FAILED, error=error)


def status_of_images(statuses: Sequence[str | None]) -> Status:
    done = sum(1 for s in statuses if s in FINAL_STATUSES)
    failed = sum(1 for s in statuses if s in ("error", "expired"))
    return Status(total=len(statuses), done=done, failed=failed)


# --- directly against the API ------------------------------------------------------------------


class Direct:
    """Create and poll orders at the Autoenhance API (or the sandbox) with the caller's key."""

    def __init__(self, http: httpx.AsyncClient, *, api_key: str, base_url: str) -> None:
        self.api_key = api_key
        self.client = AutoenhanceClient(
            http, base_url=base_url, api_version=API_VERSION, retries=3, retry_max_wait=5.0
        )

    async def create(self, paths: Sequence[Path], *, name: str | None, progress: Progress) -> str:
        task = progress.add_task("upload", total=len(paths), unit=IMAGES)

        def advance(outcome: ImageOutcome) -> None:
            progress.advance(task)

        try:
            created = await create_order_with_images(
                self.client,
                uploads_from_paths(paths),
                api_key=self.api_key,
                name=name,
                concurrency=4,
                on_done=advance,
            )
        except UpstreamError as exc:
            raise upstream_failure(exc) from exc
        report_uploads(progress.console, [_outcome(i) for i in created.images])
        if created.uploaded == 0:
            raise CliError(f"no image could be uploaded to order {created.order_id}", EXIT_FAILED)
        return created.order_id

    async def status(self, order_id: str) -> Status:
        try:
            order: Order = await self.client.get_order(order_id, api_key=self.api_key)
        except UpstreamError as exc:
            raise upstream_failure(exc) from exc
        return status_of_images([image.status for image in order.images])


def _outcome(outcome: ImageOutcome) -> dict[str, Any]:
    return {"file": outcome.file, "uploaded": outcome.uploaded, "error": outcome.error}


def report_uploads(console: Console, images: Sequence[dict[str, Any]]) -> None:
    for image in images:
        if not image.get("uploaded"):
            console.print(f"[red]not uploaded[/red] {image.get('file')}: {image.get('error')}")


# --- through the service ------------------------------------------------------------------------


class _CountingReader:
    """A file handed to httpx's multipart encoder that reports the bytes it gives away."""

    def __init__(self, handle: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._handle = handle
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._on_read(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


class Service:
    """Create, poll and download orders through the batch downloader service."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(f"network failure: {type(exc).__name__}: {exc}", EXIT_NETWORK) from exc
        if response.status_code >= 400:
            raise service_failure(response)
        return response

    async def create(self, paths: Sequence[Path], *, name: str | None, progress: Progress) -> str:
        total = sum(path.stat().st_size for path in paths)
        task = progress.add_task("upload", total=total, unit=BYTES)
        with contextlib.ExitStack() as stack:
            files = [
                (
                    "files",
                    (
                        path.name,
                        _CountingReader(
                            stack.enter_context(path.open("rb")),
                            lambda n: progress.advance(task, n),
                        ),
                    ),
                )
                for path in paths
            ]
            data = {"name": name} if name else None
            response = await self._send("POST", "/api/create-order", files=files, data=data)
        progress.update(task, completed=total)
        body = response.json()
        report_uploads(progress.console, body.get("images", []))
        return str(body["order_id"])

    async def status(self, order_id: str) -> Status:
        body = (await self._send("GET", f"/orders/{order_id}")).json()
        return status_of_images([image.get("status") for image in body.get("images", [])])

    async def check(self, url: str) -> None:
        """Make sure the batch downloader answers at `url` before doing any work.

        Raises:
            CliError: EXIT_NETWORK when nothing answers, EXIT_USAGE when something else does.
        """
        try:
            response = await self.http.get("/health")
        except httpx.TransportError as exc:
            raise CliError(f"network failure: {type(exc).__name__}: {exc}", EXIT_NETWORK) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or "mode" not in body:
            raise CliError(
                f"{url} does not look like the batch downloader service (GET /health answered "
                f"{response.status_code}); check --service-url",
                EXIT_USAGE,
            )


# --- waiting and downloading --------------------------------------------------------------------


async def wait_processed(
    source: Direct | Service,
    order_id: str,
    *,
    timeout: float,
    interval: float,
    progress: Progress,
) -> Status:
    """Poll until every image is in a final state.

    Raises:
        CliError: EXIT_TIMEOUT after `timeout` seconds; others from the status calls.
    """
    task = progress.add_task("processing", total=None, unit=IMAGES)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await source.status(order_id)
        progress.update(task, total=status.total, completed=status.done)
        if status.total and status.done == status.total:
            return status
        if loop.time() + interval > deadline:
            raise CliError(
                f"order {order_id} not processed after {timeout:g} s "
                f"({status.done} of {status.total} images done)",
                EXIT_TIMEOUT,
            )
        await asyncio.sleep(interval)


@dataclass
class Partial:
    """A partly downloaded archive: `<out>.part` and its validator in `<out>.part.json`."""

    out: Path

    @property
    def path(self) -> Path:
        return self.out.with_name(self.out.name + ".part")

    @property
    def meta_path(self) -> Path:
        return self.out.with_name(self.out.name + ".part.json")

    def resumable(self, url: str) -> tuple[int, str] | None:
        """(bytes on disk, ETag) when the partial file can be continued for `url`."""
        try:
            meta = json.loads(self.meta_path.read_text())
            size = self.path.stat().st_size
        except (OSError, ValueError):
            return None
        if meta.get("url") != url or not meta.get("etag") or size == 0:
            return None
        return size, str(meta["etag"])

    def remember(self, url: str, etag: str | None) -> None:
        if etag:
            self.meta_path.write_text(json.dumps({"url": url, "etag": etag}))
        else:
            self.meta_path.unlink(missing_ok=True)

    def finish(self) -> None:
        self.path.replace(self.out)
        self.meta_path.unlink(missing_ok=True)


async def download(
    http: httpx.AsyncClient,
    order_id: str,
    out: Path,
    *,
    retries: int,
    progress: Progress,
    waited: bool = True,
) -> int:
    """Fetch the ZIP into `out`, resuming a partial file when the service allows it.

    Returns the archive's size. `waited` says whether processing was waited for; when it was
    not and no image is ready yet, the error suggests `--wait`.

    Raises:
        CliError: EXIT_NETWORK when every attempt broke; others from the service's answer.
    """
    url = f"/orders/{order_id}/images"
    partial = Partial(out)
    task = progress.add_task("download", total=None, unit=BYTES)
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(min(2.0**attempt / 4, 5.0))
        try:
            return await _download_once(http, url, partial, progress=progress, task=task)
        except httpx.TransportError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            progress.console.print(f"download broke ({last_error}); attempt {attempt + 1}")
        except CliError as exc:
            if exc.error == "nothing_to_deliver" and not waited:
                raise CliError(
                    f"{exc.message} Add --wait to wait until the order is processed, then "
                    "download.",
                    exc.code,
                    error=exc.error,
                ) from exc
            raise
    raise CliError(f"network failure downloading {url}: {last_error}", EXIT_NETWORK)


async def _download_once(
    http: httpx.AsyncClient, url: str, partial: Partial, *, progress: Progress, task: Any
) -> int:
    headers: dict[str, str] = {}
    resume = partial.resumable(url)
    if resume is not None:
        headers = {"Range": f"bytes={resume[0]}-", "If-Range": resume[1]}
    async with http.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and resume is not None:
            # The partial file is no prefix of what the service has now: start over.
            partial.path.unlink(missing_ok=True)
            partial.remember(url, None)
            return await _download_once(http, url, partial, progress=progress, task=task)
        if response.status_code >= 400:
            await response.aread()
            raise service_failure(response)
        appending = response.status_code == 206 and resume is not None
        start = resume[0] if appending and resume is not None else 0
        total = _total_size(response, start)
        partial.remember(url, response.headers.get("etag"))
        progress.update(task, total=total, completed=start)
        with partial.path.open("ab" if appending else "wb") as sink:
            async for chunk in response.aiter_raw():  # unbuffered: a break keeps every byte
                sink.write(chunk)
                progress.advance(task, len(chunk))
        size = partial.path.stat().st_size
    if total is not None and size != total:
        raise httpx.RemoteProtocolError(f"archive ended at {size} of {total} bytes")
    partial.finish()
    progress.update(task, total=size, completed=size)
    return size


def _total_size(response: httpx.Response, start: int) -> int | None:
    content_range = response.headers.get("content-range", "")
    if response.status_code == 206 and "/" in content_range:
        whole = content_range.rsplit("/", 1)[1]
        return int(whole) if whole.isdigit() else None
    length = response.headers.get("content-length")
    return start + int(length) if length and length.isdigit() else None


# --- main ---------------------------------------------------------------------------------------


def service_headers(env: dict[str, str]) -> dict[str, str]:
    headers = {}
    if env.get("AUTOENHANCE_API_KEY"):
        headers["X-Autoenhance-Key"] = env["AUTOENHANCE_API_KEY"]
    if env.get("ADMIN_TOKEN"):
        headers["Authorization"] = f"Bearer {env['ADMIN_TOKEN']}"
    if env.get("SERVICE_API_KEY"):
        headers["X-API-Key"] = env["SERVICE_API_KEY"]
    return headers


@dataclass
class RunState:
    """What a run has done so far, to say honestly what running again will do."""

    order_id: str | None = None
    created: bool = False  # the order was created by this run (running again makes another)


def again(args: argparse.Namespace, state: RunState) -> str:
    """What to run next after a failure or an interrupt, and what that will do."""
    if state.order_id is None:
        return "nothing was downloaded; run the same command again to start over"
    command = (
        f"run again with --order-id {state.order_id} instead of the photos (the order exists; "
        "the same command would create another)"
        if state.created
        else "run the same command again"
    )
    if not args.download:
        return command
    resume = Partial(args.download).resumable(f"/orders/{state.order_id}/images")
    if resume is not None:
        return f"{command} to resume the download from byte {resume[0]}"
    if Partial(args.download).path.exists():
        return (
            f"{command} to download it again from the start (the service streamed the archive "
            "as it was built, and such a transfer cannot be resumed)"
        )
    return command


async def run(
    args: argparse.Namespace, env: dict[str, str], console: Console, state: RunState
) -> int:
    if args.files:
        check_files(args.files)
    if args.download:
        check_destination(args.download)
    timeout = httpx.Timeout(30.0, connect=10.0)
    with progress_bar(console, quiet=args.quiet) as progress:
        if args.service_url:
            async with httpx.AsyncClient(
                base_url=args.service_url.rstrip("/"),
                headers=service_headers(env),
                timeout=timeout,
            ) as http:
                service = Service(http)
                await service.check(args.service_url)
                state.order_id = args.order_id
                if state.order_id is None:
                    state.order_id = await service.create(
                        args.files, name=args.name, progress=progress
                    )
                    state.created = True
                order_id = state.order_id
                console.print(f"order {order_id}")
                if args.wait:
                    await _wait(service, order_id, args, progress)
                if args.download:
                    size = await download(
                        http,
                        order_id,
                        args.download,
                        retries=args.retries,
                        progress=progress,
                        waited=args.wait,
                    )
                    console.print(f"saved {args.download} ({size} bytes)")
        else:
            api_key = env.get("AUTOENHANCE_API_KEY")
            if not api_key:
                raise CliError(
                    "set AUTOENHANCE_API_KEY (or use --service-url to go through the service)",
                    EXIT_USAGE,
                )
            base = env.get("AUTOENHANCE_API_BASE") or DEFAULT_API_BASE
            async with build_http_client(
                max_connections=8, connect_timeout=10.0, read_timeout=30.0, max_redirects=5
            ) as http:
                direct = Direct(http, api_key=api_key, base_url=base)
                state.order_id = args.order_id
                if state.order_id is None:
                    state.order_id = await direct.create(
                        args.files, name=args.name, progress=progress
                    )
                    state.created = True
                order_id = state.order_id
                console.print(f"order {order_id}")
                if args.wait:
                    await _wait(direct, order_id, args, progress)
    print(order_id)
    return EXIT_OK


async def _wait(
    source: Direct | Service, order_id: str, args: argparse.Namespace, progress: Progress
) -> None:
    status = await wait_processed(
        source, order_id, timeout=args.timeout, interval=args.poll_interval, progress=progress
    )
    message = f"processed: {status.done - status.failed} of {status.total} images"
    if status.failed:
        message += f" ({status.failed} failed upstream)"
    progress.console.print(message)


def main(argv: Sequence[str] | None = None, *, env: dict[str, str] | None = None) -> int:
    """Run the command line; returns the exit code (see `--help`)."""
    args = parse_args(argv)
    console = Console(stderr=True)
    state = RunState()
    try:
        return asyncio.run(run(args, dict(os.environ) if env is None else env, console, state))
    except KeyboardInterrupt:
        console.print(f"[red]interrupted:[/red] {again(args, state)}", highlight=False)
        return EXIT_NETWORK
    except CliError as exc:
        message = exc.message
        if exc.code in (EXIT_NETWORK, EXIT_TIMEOUT):
            message += f" — {again(args, state)}"
        console.print(f"[red]error:[/red] {message}", highlight=False)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
