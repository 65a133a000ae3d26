"""The archive download through the service, and its resume protocol.

A broken transfer is retried (tenacity: `retry_policy`) and, once the service has answered with
an ETag (every archive answer of this service has one, the first streamed one too), resumed
with Range + If-Range on the version-pinned URL the answer named in `Content-Location`: the
partial file is `<out>.part` with its validator and pinned URL in `<out>.part.json`, so running
the same command again also resumes. When the order changed since, the pinned URL answers
410 and the download starts over on the current archive. An answer without an ETag (an older
service) makes a broken download start over; `rerun_note` says which of the two running again
will do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx
from rich.progress import Progress, TaskID
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from app.cli.progress import BYTES
from app.cli.service import service_failure
from app.cli.usage import EXIT_NETWORK, CliError

# Waits between attempts: 0.5 s, 1 s, 2 s, 4 s, then 5 s — long enough for a proxy or the
# service to come back, short enough for someone watching the terminal.
FIRST_WAIT = 0.5  # seconds
MAX_WAIT = 5.0  # seconds


def archive_path(order_id: str, *, full_quality: bool = False) -> str:
    """The service's archive URL of an order (relative to the service's URL): free previews,
    or with `full_quality` the photos at their own size (`preview=false`)."""
    path = f"/orders/{order_id}/images"
    return path + "?preview=false" if full_quality else path


async def download_target(http: httpx.AsyncClient, url: str, folder: Path) -> Path:
    """Where in `folder` the ZIP of `url` is saved: under the name the service gives it (its
    `Content-Disposition`, asked with `HEAD`; only the last component of that name is used).

    Raises:
        CliError: from the service's answer (e.g. nothing ready to download yet), or
            EXIT_NETWORK.
    """
    try:
        response = await http.head(url)
    except httpx.TransportError as exc:
        raise CliError(f"network failure asking {url}: {describe(exc)}", EXIT_NETWORK) from exc
    if response.status_code >= 400:
        raise service_failure(response)
    name = Path(_disposition_name(response.headers.get("content-disposition", ""))).name
    if not name or name.startswith("."):
        name = "order.zip"
    return folder / name


def _disposition_name(header: str) -> str:
    """The file name of a Content-Disposition: its UTF-8 `filename*`, else `filename`."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename*" and value.lower().startswith("utf-8''"):
            return unquote(value[len("utf-8''") :])
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename":
            return value.strip('"')
    return ""


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

    def resumable(self, url: str) -> tuple[int, str, str] | None:
        """(bytes on disk, ETag, the URL to continue from: the pinned one the service named,
        else `url`) when the partial file can be continued for `url`."""
        try:
            meta = json.loads(self.meta_path.read_text())
            size = self.path.stat().st_size
        except (OSError, ValueError):
            return None
        if meta.get("url") != url or not meta.get("etag") or size == 0:
            return None
        location = meta.get("location")
        return size, str(meta["etag"]), location if isinstance(location, str) else url

    def remember(self, url: str, etag: str | None, location: str | None = None) -> None:
        if etag:
            meta = {"url": url, "etag": etag, "location": location}
            self.meta_path.write_text(json.dumps(meta))
        else:
            self.meta_path.unlink(missing_ok=True)

    def finish(self) -> None:
        self.path.replace(self.out)
        self.meta_path.unlink(missing_ok=True)


def rerun_note(out: Path, url: str) -> str:
    """What running again does to the download of `url` into `out`: resume it, start it over,
    or ``""``."""
    partial = Partial(out)
    resume = partial.resumable(url)
    if resume is not None:
        return f" to resume the download from byte {resume[0]}"
    if partial.path.exists():
        return (
            " to download it again from the start (the service answered without an ETag, "
            "and such a transfer cannot be resumed)"
        )
    return ""


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def retry_policy(
    retries: int,
    *,
    on_retry: Callable[[BaseException, int], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncRetrying:
    """Up to `retries` more attempts after a broken transfer (`httpx.TransportError`).

    `on_retry(error, attempt)` is called after each broken attempt, the last one too; after
    the last, its error is raised as it was. Any other error is raised at once.
    """

    def broke(state: RetryCallState) -> None:
        if state.outcome is not None and (exc := state.outcome.exception()) is not None:
            on_retry(exc, state.attempt_number)

    return AsyncRetrying(
        retry=retry_if_exception_type(httpx.TransportError),
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=FIRST_WAIT, max=MAX_WAIT),
        after=broke,
        sleep=sleep,
        reraise=True,
    )


async def download(
    http: httpx.AsyncClient,
    url: str,
    out: Path,
    *,
    retries: int,
    progress: Progress,
) -> int:
    """Fetch the ZIP at `url` (see `archive_path`) into the file `out`, resuming a partial
    file when the service allows it. Returns the archive's size.

    Raises:
        CliError: EXIT_NETWORK when every attempt broke; others from the service's answer.
    """
    partial = Partial(out)
    task = progress.add_task("download", total=None, unit=BYTES)

    def broke(exc: BaseException, attempt: int) -> None:
        progress.console.print(f"download broke ({describe(exc)}); attempt {attempt}")

    try:
        return await retry_policy(retries, on_retry=broke)(
            _download_once, http, url, partial, progress=progress, task=task
        )
    except httpx.TransportError as exc:
        raise CliError(f"network failure downloading {url}: {describe(exc)}", EXIT_NETWORK) from exc


async def _download_once(
    http: httpx.AsyncClient, url: str, partial: Partial, *, progress: Progress, task: TaskID
) -> int:
    headers: dict[str, str] = {}
    target = url
    resume = partial.resumable(url)
    if resume is not None:
        headers = {"Range": f"bytes={resume[0]}-", "If-Range": resume[1]}
        target = resume[2]
    async with http.stream("GET", target, headers=headers) as response:
        if response.status_code in (410, 416) and resume is not None:
            # The partial file is no prefix of what the service has now (410: the version it
            # belongs to is gone): start over.
            partial.path.unlink(missing_ok=True)
            partial.remember(url, None)
            return await _download_once(http, url, partial, progress=progress, task=task)
        if response.status_code >= 400:
            await response.aread()
            raise service_failure(response)
        appending = response.status_code == 206 and resume is not None
        if appending and resume is not None and _range_start(response) != resume[0]:
            # Not the continuation asked for: appending it would corrupt the file.
            partial.path.unlink(missing_ok=True)
            partial.remember(url, None)
            return await _download_once(http, url, partial, progress=progress, task=task)
        start = resume[0] if appending and resume is not None else 0
        total = _total_size(response, start)
        partial.remember(
            url, response.headers.get("etag"), response.headers.get("content-location")
        )
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


def _range_start(response: httpx.Response) -> int | None:
    """The first byte of a `Content-Range: bytes START-END/TOTAL`, if that is what it says."""
    unit, _, spec = response.headers.get("content-range", "").partition(" ")
    first = spec.partition("-")[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def _total_size(response: httpx.Response, start: int) -> int | None:
    content_range = response.headers.get("content-range", "")
    if response.status_code == 206 and "/" in content_range:
        whole = content_range.rsplit("/", 1)[1]
        return int(whole) if whole.isdigit() else None
    length = response.headers.get("content-length")
    return start + int(length) if length and length.isdigit() else None
