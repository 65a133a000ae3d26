"""Job-end notifications: a signed JSON POST to the caller's `callback_url`, guarded and retried.

Signature: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with
`CALLBACK_SECRET` (the signing secret when unset). A receiver recomputes it over the raw body
and rejects old timestamps, which stops replays.

The URL is user input pointing into our network, so before every hop (the first request and
each redirect, followed by hand) the host is resolved and every address it resolves to must be
public: loopback, private, link-local, reserved, multicast and unspecified addresses are
refused unless `CALLBACK_ALLOW_PRIVATE` is set. The connection is then pinned to the checked
address (the URL's host becomes that IP; `Host` and TLS SNI keep the name, so certificates are
still verified against it), which closes the DNS-rebinding window between check and connect.
No library does this pinning with httpx, hence the few lines here.

Delivery is retried three times with exponential backoff (tenacity) on connection errors,
timeouts, 429 and 5xx; never on a refused target or another 4xx. It never raises: the outcome
is a short text stored on the job.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from app.core.security import Signer
from app.jobs.models import JobRecord

logger = logging.getLogger("app.jobs.callbacks")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2048


class CallbackRefused(Exception):
    """The target is not an allowed http(s) URL or resolves to a refused address."""


class _Retryable(Exception):
    """A failure worth another attempt (network error, timeout, 429, 5xx)."""


def check_callback_url(url: str) -> str:
    """Syntax check done when a job is created (the address check happens at delivery too).

    Raises:
        CallbackRefused: not an absolute http/https URL with a host, or too long.
    """
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise CallbackRefused(f"callback_url is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise CallbackRefused("callback_url must be an absolute http:// or https:// URL")
    if parsed.userinfo:
        raise CallbackRefused("callback_url must not carry a user name or password")
    return url


def _refused_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for label, flag in (
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    ):
        if flag:
            return label
    return None


async def resolve_allowed(url: httpx.URL, *, allow_private: bool) -> str:
    """Resolve the URL's host and return the address to connect to.

    Raises:
        CallbackRefused: bad scheme, unresolvable host, or any address refused.
    """
    if url.scheme not in ("http", "https") or not url.host:
        raise CallbackRefused("only absolute http:// and https:// URLs are allowed")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            url.host, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise CallbackRefused(f"cannot resolve {url.host}: {exc.strerror or exc}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise CallbackRefused(f"{url.host} resolves to no address")
    for address in addresses:
        reason = _refused_reason(address)
        always_refused = reason in ("unspecified", "multicast")
        if reason is not None and (always_refused or not allow_private):
            raise CallbackRefused(f"{url.host} resolves to a {reason} address")
    return str(addresses[0])


def signature_header(body: bytes, *, secret: bytes, timestamp: int) -> str:
    """The `X-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class CallbackSender:
    """Delivers job summaries; one instance (and HTTP client) per process."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secret: bytes,
        allow_private: bool,
        timeout: float,
        attempts: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 5.0,
    ) -> None:
        self._client = client
        self._secret = secret
        self._allow_private = allow_private
        self._timeout = httpx.Timeout(timeout)
        self._attempts = attempts
        self._backoff = backoff
        self._backoff_max = backoff_max

    async def send(self, url: str, payload: dict[str, Any]) -> str:
        """POST `payload` to `url`; returns "delivered (<status>)" or "failed: <why>"."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        host = httpx.URL(url).host
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._backoff, max=self._backoff_max),
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            ):
                with attempt:
                    status = await self._post(httpx.URL(url), body)
        except CallbackRefused as exc:
            outcome = f"failed: refused target ({exc})"
        except _Retryable as exc:
            outcome = f"failed after {self._attempts} attempts: {exc}"
        else:
            outcome = f"delivered ({status})" if status < 400 else f"failed: answered {status}"
        logger.info("callback to %s %s", host, outcome, extra={"event": "job_callback"})
        return outcome

    async def _post(self, url: httpx.URL, body: bytes) -> int:
        for _ in range(MAX_REDIRECTS + 1):
            address = await resolve_allowed(url, allow_private=self._allow_private)
            request = self._client.build_request(
                "POST",
                url.copy_with(host=address),
                content=body,
                headers={
                    "Host": url.netloc.decode("ascii"),
                    "Content-Type": "application/json",
                    "X-Signature": signature_header(
                        body, secret=self._secret, timestamp=int(time.time())
                    ),
                },
                timeout=self._timeout,
                extensions={"sni_hostname": url.host},
            )
            try:
                response = await self._client.send(request)
                await response.aclose()
            except httpx.TransportError as exc:
                raise _Retryable(type(exc).__name__) from None
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                url = url.join(response.headers["location"])
                continue
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(f"answered {response.status_code}")
            return response.status_code
        raise CallbackRefused(f"more than {MAX_REDIRECTS} redirects")


def iso(timestamp: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC (`...Z`)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def summary_payload(
    record: JobRecord, *, signer: Signer | None, link_ttl: int
) -> dict[str, object]:
    """The JSON body of a callback: the job's outcome and a signed link to its archive."""
    base = record.base_url.rstrip("/")
    download_url = None
    if signer is not None and record.state == "complete" and record.expires_at is not None:
        ttl = max(1, int(min(link_ttl, record.expires_at - time.time())))
        download_url = base + signer.sign(f"/jobs/{record.job_id}/download", {}, ttl=ttl)
    return {
        "event": "job_ended",
        "job_id": record.job_id,
        "order_id": record.order_id,
        "state": record.state,
        "reason": record.reason,
        "images_total": record.images_total,
        "images_done": record.images_done,
        "images_failed": len(record.failures),
        "bytes_written": record.bytes_written,
        "expires_at": iso(record.expires_at),
        "status_url": f"{base}/jobs/{record.job_id}",
        "download_url": download_url,
    }
