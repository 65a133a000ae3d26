"""The Autoenhance API (or the sandbox) reached directly with the caller's key.

Orders are created and read through the same client and order-creation code the service
uses, so the files are registered and uploaded exactly as `POST /api/create-order` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from rich.progress import Progress

from app.cli.progress import IMAGES, Status, report_uploads, status_of_images
from app.cli.usage import (
    EXIT_FAILED,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    http_url,
)
from app.core.config import DEFAULT_API_BASE, DEFAULT_API_VERSION
from app.services.ordering import ImageOutcome, create_order_with_images, uploads_from_paths
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import (
    UpstreamError,
    UpstreamNotFound,
    UpstreamRetryable,
    UpstreamUnauthorized,
)
from app.upstream.factory import build_http_client

# Someone waits at the terminal: fewer and shorter retries than the service's defaults, and a
# longer connect timeout (a laptop's network is slower to connect than a server's).
RETRIES = 3
RETRY_MAX_WAIT = 5.0  # seconds
CONNECT_TIMEOUT = 10.0  # seconds
READ_TIMEOUT = 30.0  # seconds between bytes
MAX_CONNECTIONS = 8
MAX_REDIRECTS = 5
UPLOAD_CONCURRENCY = 4


def upstream_failure(exc: UpstreamError) -> CliError:
    """The exit code and message for a failure of the Autoenhance API."""
    if isinstance(exc, UpstreamNotFound):
        return CliError("order not found (or not visible to this key)", EXIT_NOT_FOUND)
    if isinstance(exc, UpstreamUnauthorized):
        return CliError("the Autoenhance API refused the key", EXIT_USAGE)
    if isinstance(exc, UpstreamRetryable):
        return CliError(f"network failure: {exc.message}", EXIT_NETWORK)
    return CliError(f"the Autoenhance API failed: {exc.message}", EXIT_FAILED)


class Direct:
    """Create and poll orders at the Autoenhance API (or the sandbox) with the caller's key."""

    def __init__(self, client: AutoenhanceClient, *, api_key: str) -> None:
        self.client = client
        self.api_key = api_key

    async def create(self, paths: Sequence[Path], *, name: str | None, progress: Progress) -> str:
        """Create an order holding the photos at `paths`; returns its id.

        Raises:
            CliError: when the API fails, or no image could be uploaded (EXIT_FAILED).
        """
        task = progress.add_task("upload", total=len(paths), unit=IMAGES)

        def advance(outcome: ImageOutcome) -> None:
            progress.advance(task)

        try:
            created = await create_order_with_images(
                self.client,
                uploads_from_paths(paths),
                api_key=self.api_key,
                name=name,
                concurrency=UPLOAD_CONCURRENCY,
                on_done=advance,
            )
        except UpstreamError as exc:
            raise upstream_failure(exc) from exc
        report_uploads(progress.console, created.images)
        if created.uploaded == 0:
            raise CliError(f"no image could be uploaded to order {created.order_id}", EXIT_FAILED)
        return created.order_id

    async def status(self, order_id: str) -> Status:
        try:
            order = await self.client.get_order(order_id, api_key=self.api_key)
        except UpstreamError as exc:
            raise upstream_failure(exc) from exc
        return status_of_images([image.status for image in order.images])


@asynccontextmanager
async def open_direct(env: Mapping[str, str]) -> AsyncIterator[Direct]:
    """The API at AUTOENHANCE_API_BASE with AUTOENHANCE_API_KEY; its connections close after.

    Raises:
        CliError: EXIT_USAGE when AUTOENHANCE_API_KEY is not set or the base is no http(s) URL.
    """
    api_key = env.get("AUTOENHANCE_API_KEY")
    if not api_key:
        raise CliError(
            "set AUTOENHANCE_API_KEY (or use --service-url to go through the service)",
            EXIT_USAGE,
        )
    base_url = env.get("AUTOENHANCE_API_BASE") or DEFAULT_API_BASE
    try:
        http_url(base_url)
    except ValueError as exc:
        raise CliError(f"AUTOENHANCE_API_BASE: {exc}", EXIT_USAGE) from exc
    async with build_http_client(
        max_connections=MAX_CONNECTIONS,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_redirects=MAX_REDIRECTS,
    ) as http:
        client = AutoenhanceClient(
            http,
            base_url=base_url,
            api_version=DEFAULT_API_VERSION,
            retries=RETRIES,
            retry_max_wait=RETRY_MAX_WAIT,
        )
        yield Direct(client, api_key=api_key)
