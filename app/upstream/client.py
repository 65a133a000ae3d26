"""The one module that talks to the Autoenhance API.

Every call goes through one shared `httpx.AsyncClient` (built by `app.upstream.factory`), follows
redirects through `app.upstream.redirects` and goes through `_with_retries`, which maps
failures into `app.upstream.errors` (`app.upstream.mapping`), retries what is worth
retrying with tenacity (exponential backoff with jitter; a 429's Retry-After honoured up to
`retry_max_wait`), never retries other 4xx, and feeds the circuit breakers: upstream-wide
failures (5xx, timeouts, connection errors) the shared one, failures of one key (429,
401/403) only that key's (`app.upstream.breaker`).

API keys travel only in the `x-api-key` header. They are never logged: log lines name the
endpoint, never the URL's query or headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import httpx
from isal import isal_zlib
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.core import metrics
from app.upstream import redirects
from app.upstream.answers import (
    ERROR_BODY_BYTES,
    not_the_image,
    parsed,
    path_segment,
    read_at_most,
    read_bounded,
)
from app.upstream.bodyreader import pooled_body
from app.upstream.breaker import CircuitBreaker, CredentialBreakers
from app.upstream.bytepool import BytePool, ImageBuffer, PooledImage
from app.upstream.errors import (
    UpstreamError,
    UpstreamNetworkError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRetryable,
    UpstreamUnauthorized,
)
from app.upstream.mapping import mapped, raise_for_status
from app.upstream.models import Order, OrderPage, RegisteredImage
from app.upstream.options import DownloadOptions
from app.upstream.sniff import DeliveredImage

logger = logging.getLogger("app.upstream")

T = TypeVar("T")


def api_headers(*, api_version: str, api_key: str | None) -> dict[str, str]:
    """The headers every call to the API carries: its version, and the key when there is one."""
    headers = {"x-api-version": api_version}
    if api_key:
        headers[redirects.API_KEY_HEADER] = api_key
    return headers


@dataclass(frozen=True, slots=True)
class Downloaded:
    """What `download_enhanced` wrote into its sink."""

    size: int
    crc32: int
    content_type: str | None
    pooled: PooledImage | None = None  # the bytes, when they went to a pooled buffer


class AutoenhanceClient:
    """Typed calls to the Autoenhance v3 API.

    Each call takes the key to use (`api_key`): the operator's key, or a caller's own key;
    `None` sends no key (the API allows that for reading an order or an image).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_version: str,
        retries: int = 3,
        retry_max_wait: float = 10.0,
        breaker: CircuitBreaker | None = None,
        credential_breakers: CredentialBreakers | None = None,
        download_pool: Sequence[httpx.AsyncClient] = (),
        max_json_bytes: int = 32 * 1024 * 1024,
        byte_pool: BytePool | None = None,
        image_deadline: float | None = None,
        max_image_bytes: int | None = None,
    ) -> None:
        self._http = http
        self._max_json_bytes = max_json_bytes
        # One attempt at one image, and its bytes: bounded whatever the upstream does.
        self._image_deadline = image_deadline
        self._max_image_bytes = max_image_bytes
        # Round-robin over the download clients spreads concurrent downloads evenly.
        self._download_clients = itertools.cycle(download_pool or [http])
        self._base = base_url.rstrip("/")
        self._api_version = api_version
        self._retries = retries
        self._retry_max_wait = retry_max_wait
        self.breaker = breaker or CircuitBreaker(failure_threshold=20, cooldown=15.0)
        self.credential_breakers = credential_breakers or CredentialBreakers(
            failure_threshold=self.breaker.failure_threshold, cooldown=self.breaker.cooldown
        )
        # Buffers that image bodies of a known length may be received into (see `sink`).
        self.byte_pool = byte_pool
        self._backoff = wait_exponential_jitter(multiplier=0.2, max=retry_max_wait, jitter=0.2)

    # --- orders -----------------------------------------------------------------------------

    async def get_order(self, order_id: str, *, api_key: str | None) -> Order:
        """Fetch an order with its images. Of every JSON answer at most `max_json_bytes` are
        read (an `UpstreamProtocolError` past it).

        Raises:
            UpstreamNotFound, UpstreamUnauthorized, UpstreamRateLimited, UpstreamServerError,
            UpstreamTimeout, UpstreamNetworkError, UpstreamProtocolError, CircuitOpen.
        """
        path = f"/orders/{path_segment(order_id)}"
        response = await self._call("get_order", "GET", path, api_key=api_key)
        return parsed(response, Order)

    async def list_orders(
        self, *, api_key: str | None, per_page: int = 20, offset: str | None = None
    ) -> OrderPage:
        params: dict[str, str] = {"per_page": str(per_page)}
        if offset:
            params["offset"] = offset
        response = await self._call(
            "list_orders", "GET", "/orders/", api_key=api_key, params=params
        )
        try:
            return OrderPage.from_api(response.json())
        except (ValueError, RecursionError, TypeError, AttributeError, ValidationError) as exc:
            raise UpstreamProtocolError(
                "upstream answered with something not a page of orders"
            ) from exc

    async def create_order(self, *, api_key: str | None, name: str | None = None) -> Order:
        body = {"name": name} if name else {}
        response = await self._call("create_order", "POST", "/orders/", api_key=api_key, json=body)
        return parsed(response, Order)

    async def delete_order(self, order_id: str, *, api_key: str | None) -> None:
        path = f"/orders/{path_segment(order_id)}"
        await self._call("delete_order", "DELETE", path, api_key=api_key)

    # --- images -------------------------------------------------------------------------------

    async def register_image(
        self, *, api_key: str | None, order_id: str, image_name: str, content_type: str
    ) -> RegisteredImage:
        """Register an image in an order; the answer carries the URL to upload its bytes to.

        Both spellings of the content type are sent, because API versions differ in which
        one they read.
        """
        body = {
            "order_id": order_id,
            "image_name": image_name,
            "contentType": content_type,
            "content_type": content_type,
        }
        response = await self._call(
            "register_image", "POST", "/images/", api_key=api_key, json=body
        )
        return parsed(response, RegisteredImage)

    async def upload_image(self, upload_url: str, content: bytes, *, content_type: str) -> None:
        """PUT the bytes to the pre-signed upload URL (no API key: the URL is the credential)."""

        async def attempt() -> None:
            response = await redirects.send(
                self._http,
                "PUT",
                upload_url,
                headers={"Content-Type": content_type},
                content=content,
            )
            raise_for_status(response)

        # The pre-signed URL is the credential: its 403s count against it alone.
        await self._with_retries("upload_image", attempt, credential=upload_url)

    async def download_enhanced(
        self,
        image_id: str,
        sink: IO[bytes],
        *,
        options: DownloadOptions,
        api_key: str | None,
        buffers: ImageBuffer | None = None,
    ) -> Downloaded:
        """Download one enhanced image into `sink`, computing its CRC-32 as it goes.

        With `buffers`, a final answer with a Content-Length that `buffers` grants a pooled
        buffer for is received into that buffer instead (`Downloaded.pooled`; `sink` stays
        empty); everything said below holds for it alike.

        A failed attempt (also one that breaks mid-body) truncates the sink and starts over,
        so `sink` holds exactly one complete image when this returns. Only a 200 is taken
        (after redirects); its byte count must match Content-Length when one is given, and
        its bytes must be a whole image of `options.format` (`DeliveredImage`: signature
        and the format's own end), whatever Content-Type it claims. A body that ends early
        is retried like a broken connection; any other answer below 400 (202, 204, 206, a
        3xx without Location) or a body of another kind is an `UpstreamProtocolError`,
        not retried. Of an error answer only `ERROR_BODY_BYTES` are read. One attempt may
        take at most `image_deadline` seconds and an image may have at most
        `max_image_bytes` (announced or arrived): past either it is an
        `UpstreamProtocolError`, not retried.

        Raises:
            UpstreamNotFound, UpstreamUnauthorized, UpstreamRejected (e.g. not processed yet,
            format not available, no credits), UpstreamProtocolError (also for an id of
            `.` or `..`, before any request), and after the last retry
            UpstreamRateLimited, UpstreamServerError, UpstreamTimeout, UpstreamNetworkError;
            CircuitOpen when the upstream is known to be failing.
        """
        headers = api_headers(api_version=self._api_version, api_key=api_key)
        if options.dev_mode:
            headers["x-dev-mode"] = "true"
        url = f"{self._base}/images/{path_segment(image_id)}/enhanced"
        params = options.upstream_params()

        async def attempt() -> Downloaded:
            deadline = asyncio.timeout(self._image_deadline)
            try:
                async with deadline:
                    return await self._download_once(
                        url,
                        sink,
                        params=params,
                        headers=headers,
                        image_format=options.format,
                        buffers=buffers,
                    )
            except TimeoutError:
                if not deadline.expired():
                    raise  # a timeout of its own (a read), mapped and retried as before
                # Not retried: an upstream this slow for one image would be as slow again.
                raise UpstreamProtocolError(
                    f"the image took longer than {self._image_deadline:g} s to arrive"
                ) from None

        return await self._with_retries("download_enhanced", attempt, credential=api_key)

    # --- plumbing -----------------------------------------------------------------------------

    async def _download_once(
        self,
        url: str,
        sink: IO[bytes],
        *,
        params: dict[str, str],
        headers: dict[str, str],
        image_format: str,
        buffers: ImageBuffer | None = None,
    ) -> Downloaded:
        """One attempt of `download_enhanced`: `sink` emptied, then filled from one answer."""
        sink.seek(0)
        sink.truncate()
        crc = 0
        check = DeliveredImage(image_format)
        response = await redirects.send(
            next(self._download_clients),
            "GET",
            url,
            params=params,
            headers=headers,
            stream=True,
        )
        async with contextlib.aclosing(response):
            if response.status_code != 200:
                body = await read_at_most(response, ERROR_BODY_BYTES)
                raise_for_status(response, body=body)
                raise UpstreamProtocolError(not_the_image(response))
            # A length is only comparable with what arrives when nothing decoded it.
            encoded = response.headers.get("content-encoding", "identity") != "identity"
            expected = None if encoded else response.headers.get("content-length")
            limit = self._max_image_bytes
            if (
                limit is not None
                and expected is not None
                and expected.isascii()
                and expected.isdigit()
                and int(expected) > limit
            ):
                raise UpstreamProtocolError(_too_large(limit))
            pooled = None
            receiver = pooled_body(response)
            if buffers is not None:
                if receiver is not None and receiver.length and not encoded:
                    pooled = await buffers.take(receiver.length)
                else:
                    buffers.settle()
            if pooled is not None:
                assert receiver is not None
                crc = await receiver.read_into(pooled.view, observe=check.feed)
            else:
                async for chunk in response.aiter_bytes():
                    if limit is not None and check.size + len(chunk) > limit:
                        raise UpstreamProtocolError(_too_large(limit))
                    sink.write(chunk)
                    # ISA-L's CRC-32 (the ZIP polynomial, like zlib's) is ~8x faster
                    # than zlib's: at zlib's speed it was 9% of the service's CPU.
                    crc = isal_zlib.crc32(chunk, crc)
                    check.feed(chunk)
            content_type = response.headers.get("content-type")
        size = check.size
        if expected is not None and expected.isascii() and expected.isdigit():
            if int(expected) != size:
                raise UpstreamNetworkError(
                    f"image body was {size} bytes, Content-Length said {expected}"
                )
        problem = check.problem()
        if problem is not None:
            # A body cut short is worth another try; anything else will not improve.
            if problem.cut_short:
                raise UpstreamNetworkError(problem.reason)
            raise UpstreamProtocolError(problem.reason)
        sink.flush()
        metrics.IMAGE_BODIES.labels("spool" if pooled is None else "pool").inc()
        return Downloaded(size=size, crc32=crc, content_type=content_type, pooled=pooled)

    async def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        api_key: str | None,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        url = f"{self._base}{path}"

        async def attempt() -> httpx.Response:
            headers = api_headers(api_version=self._api_version, api_key=api_key)
            response = await redirects.send(
                self._http, method, url, params=params, json=json, headers=headers, stream=True
            )
            async with contextlib.aclosing(response):
                if response.status_code >= 400:
                    raise_for_status(response, body=await read_at_most(response, ERROR_BODY_BYTES))
                # A lying upstream must not make the service hold an unbounded answer.
                return await read_bounded(response, self._max_json_bytes, what="an answer")

        return await self._with_retries(endpoint, attempt, credential=api_key)

    async def _with_retries(
        self, endpoint: str, attempt: Callable[[], Awaitable[T]], *, credential: str | None
    ) -> T:
        self.breaker.check()
        self.credential_breakers.check(credential)

        def before_sleep(state: RetryCallState) -> None:
            metrics.UPSTREAM_RETRIES.labels(endpoint).inc()
            exc = state.outcome.exception() if state.outcome else None
            logger.info(
                "retrying %s after %s (attempt %d)",
                endpoint,
                type(exc).__name__,
                state.attempt_number,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(UpstreamRetryable),
            stop=stop_after_attempt(self._retries + 1),
            wait=self._wait,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for state in retrying:
                with state:
                    result = await mapped(attempt)
        except UpstreamError as exc:
            metrics.UPSTREAM_REQUESTS.labels(endpoint, type(exc).__name__).inc()
            if isinstance(exc, UpstreamRateLimited | UpstreamUnauthorized):
                self.credential_breakers.record_failure(credential, exc)
            elif isinstance(exc, UpstreamRetryable):
                self.breaker.record_failure()
            raise
        metrics.UPSTREAM_REQUESTS.labels(endpoint, "ok").inc()
        self.breaker.record_success()
        self.credential_breakers.record_success(credential)
        return result

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, UpstreamRateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self._retry_max_wait)
        return float(self._backoff(state))


def _too_large(limit: int) -> str:
    return f"the image is larger than {limit} bytes (UPSTREAM_IMAGE_MAX_BYTES)"
