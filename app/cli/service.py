"""The batch downloader service reached over HTTP: check it, create and poll orders.

The order is created with the service's `POST /api/create-order` and polled with
`GET /orders/{id}`; the archive download is `app.cli.download`'s. Sent along when set:
AUTOENHANCE_API_KEY as X-Autoenhance-Key (the caller's own key), ADMIN_TOKEN as a Bearer
token, SERVICE_API_KEY as X-API-Key.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from rich.progress import Progress

from app.cli.progress import BYTES, Status, report_uploads, status_of_images
from app.cli.usage import (
    EXIT_BAD_FILE,
    EXIT_FAILED,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
)

# The service's request headers (its OpenAPI schema names them: /docs, "Authorize"). They are
# declared with FastAPI's security schemes in the web layer, which this client does not import.
OWN_KEY_HEADER = "X-Autoenhance-Key"
SERVICE_KEY_HEADER = "X-API-Key"
CONNECT_TIMEOUT = 10.0  # seconds
READ_TIMEOUT = 30.0  # seconds between bytes


_Model = TypeVar("_Model", bound=BaseModel)


class _Upload(BaseModel):
    file: str | None = None
    uploaded: bool = False
    error: str | None = None


class _Created(BaseModel):
    """What this client reads of `POST /api/create-order`'s answer."""

    order_id: str
    images: list[_Upload] = []


class _Image(BaseModel):
    status: str | None = None


class _Summary(BaseModel):
    """What this client reads of `GET /orders/{id}`'s answer."""

    images: list[_Image] = []


def _read(response: httpx.Response, model: type[_Model]) -> _Model:
    """The answer as `model`; an answer of another shape fails the run, naming the URL.

    Raises:
        CliError: EXIT_FAILED when the body is not the JSON this client expects.
    """
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise CliError(
            f"the service answered {response.request.url.path} with an unexpected body "
            f"({exc.error_count()} problem(s), e.g. {exc.errors()[0]['msg']})",
            EXIT_FAILED,
        ) from exc


def service_headers(env: Mapping[str, str]) -> dict[str, str]:
    """The credentials found in `env`, as the service's request headers."""
    headers = {}
    if env.get("AUTOENHANCE_API_KEY"):
        headers[OWN_KEY_HEADER] = env["AUTOENHANCE_API_KEY"]
    if env.get("ADMIN_TOKEN"):
        headers["Authorization"] = f"Bearer {env['ADMIN_TOKEN']}"
    if env.get("SERVICE_API_KEY"):
        headers[SERVICE_KEY_HEADER] = env["SERVICE_API_KEY"]
    return headers


def service_client(url: str, env: Mapping[str, str]) -> httpx.AsyncClient:
    """A client for the service at `url`, sending the credentials found in `env`."""
    return httpx.AsyncClient(
        base_url=url.rstrip("/"),
        headers=service_headers(env),
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
    )


def service_failure(response: httpx.Response) -> CliError:
    """The exit code and message for an error answer of the service (its one JSON shape).

    The message is the answer's `detail` (or `detail.message`), never the raw body; the
    answer's `error` code is kept on the `CliError` for callers that act on it.
    """
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


def network_failure(exc: httpx.TransportError) -> CliError:
    return CliError(f"network failure: {type(exc).__name__}: {exc}", EXIT_NETWORK)


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
    """Create and poll orders through the batch downloader service."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise network_failure(exc) from exc
        if response.status_code >= 400:
            raise service_failure(response)
        return response

    async def create(self, paths: Sequence[Path], *, name: str | None, progress: Progress) -> str:
        """Upload the photos at `paths` into a new order; returns its id.

        Raises:
            CliError: from the service's answer, or EXIT_NETWORK.
        """
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
        created = _read(response, _Created)
        report_uploads(progress.console, created.images)
        return created.order_id

    async def status(self, order_id: str) -> Status:
        summary = _read(await self._send("GET", f"/orders/{order_id}"), _Summary)
        return status_of_images([image.status for image in summary.images])

    async def check(self, url: str) -> str:
        """Make sure the batch downloader answers at `url` before doing any work; returns its
        mode (``sandbox`` or ``live``).

        Raises:
            CliError: EXIT_NETWORK when nothing answers, EXIT_USAGE when something else does.
        """
        try:
            response = await self.http.get("/health")
        except httpx.TransportError as exc:
            raise network_failure(exc) from exc
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
        return str(body["mode"])
