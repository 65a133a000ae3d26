"""Job-end notifications: a signed JSON POST to the caller's `callback_url`, guarded and retried.

Signature: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with the
job's own callback key: HKDF-SHA256 of the callback root (`CALLBACK_SECRET`, or the callback key
derived from `SIGNING_SECRET`) with the label `JOB_KEY_LABEL + <job id>`, as hex text (see
`job_callback_key`). The key is handed to the job's creator in the `202` answer
(`callback_secret`), to pass on to its receiver: a receiver can check the callbacks of its own
jobs and forge none of another's. A receiver recomputes the signature over the raw body and
rejects old timestamps, which stops replays.

The URL is user input pointing into our network, so before every hop (the first request and
each redirect, followed by hand) the host is resolved and every address it resolves to must be
public: loopback, private, link-local, reserved, multicast and unspecified addresses are
refused unless `CALLBACK_ALLOW_PRIVATE` is set. The connection is then pinned to the checked
address (the URL's host becomes that IP; `Host` and TLS SNI keep the name, so certificates are
still verified against it), which closes the DNS-rebinding window between check and connect.
No library does this pinning with httpx, hence the few lines here.

Addresses that carry an IPv4 address inside an IPv6 one (IPv4-mapped `::ffff:0:0/96`, 6to4
`2002::/16`, Teredo `2001::/32`, NAT64 `64:ff9b::/96`) are judged by the IPv4 address they
lead to as well.

Each attempt has one deadline, `CALLBACK_TIMEOUT`, for everything: resolving, connecting,
every redirect hop and the answer's headers. A receiver that trickles its answer a byte at a
time is cut off there, not after a read timeout per byte. Only the status is used, so the
answer is streamed and at most `MAX_ANSWER_BYTES` of its body are read (enough to let a short
body finish so the connection can be reused); the rest is never fetched.

Delivery is retried three times with exponential backoff (tenacity) on connection errors,
timeouts, 429 and 5xx; never on a refused target or another 4xx. It never raises: the outcome
is a short text stored on the job. `dispatch` delivers in the background, at most
`CALLBACK_CONNECTIONS` at once per process, so that a slow receiver holds no job slot; what is
still pending when the process stops gets `aclose`'s grace period, then is dropped (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from app.core.keys import derive
from app.core.logging import log_event
from app.core.security import SignedLink, Signer
from app.jobs.backend import JobBackend
from app.jobs.models import JobRecord

logger = logging.getLogger("app.jobs.callbacks")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2048
# Body bytes of a receiver's answer read at most (only its status is used).
MAX_ANSWER_BYTES = 4 * 1024
# Deliveries running at once per process, and waiting beyond those before new ones are dropped.
CALLBACK_CONNECTIONS = 10
MAX_PENDING = 1000
# Prefixes that embed an IPv4 address in an IPv6 one (RFC 3056, RFC 4380, RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The one answer to a refused `callback_url`: which check failed would tell a caller what
# exists inside our network (whether a host name resolves, what kind of address it has).
NOT_ALLOWED = "not an allowed callback URL"


class CallbackRefused(Exception):
    """The target is not an allowed http(s) URL or resolves to a refused address."""


class HostNotResolved(CallbackRefused):
    """The target's host name could not be resolved (here, now): said as such to the caller,
    since "not allowed" sends them looking for a wrong URL when DNS is what failed. Whether a
    name resolves is what any resolver answers; the kind of address a name resolves to stays
    behind the one generic refusal."""


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


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (mapped, 6to4, Teredo server and client)."""
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _refused_reason(address: Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(address):
            reason = _address_reason(inner)
            if reason is not None:
                return reason
        if address.ipv4_mapped is not None:
            return None
    return _address_reason(address)


def _address_reason(address: Address) -> str | None:
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
        HostNotResolved: the host name does not resolve.
        CallbackRefused: bad scheme, or any address refused.
    """
    if url.scheme not in ("http", "https") or not url.host:
        raise CallbackRefused("only absolute http:// and https:// URLs are allowed")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            url.host, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise HostNotResolved(f"cannot resolve {url.host}: {exc.strerror or exc}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise CallbackRefused(f"{url.host} resolves to no address")
    for address in addresses:
        reason = _refused_reason(address)
        always_refused = reason in ("unspecified", "multicast")
        if reason is not None and (always_refused or not allow_private):
            raise CallbackRefused(f"{url.host} resolves to a {reason} address")
    return str(addresses[0])


# HKDF label of a job's callback key; the job id follows it.
JOB_KEY_LABEL = b"autoenhance-batch-downloader:job-callback:v1:"


def job_callback_key(root: bytes, job_id: str) -> bytes:
    """The key the callbacks of `job_id` are signed with: 32 bytes derived from the callback
    root, as 64 hex characters (used as text, like `CALLBACK_SECRET`)."""
    return derive(root, JOB_KEY_LABEL + job_id.encode()).hex().encode()


def _subject(payload: dict[str, Any]) -> str:
    """Whose callback key signs `payload`: its job's, or its delivery's (the ids never meet:
    a delivery id starts `dlv_`, a job id is a UUID)."""
    subject = payload.get("job_id") or payload.get("delivery_id")
    if not isinstance(subject, str):
        raise ValueError("a callback payload names its job_id or delivery_id")
    return subject


def signature_header(body: bytes, *, secret: bytes, timestamp: int) -> str:
    """The `X-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


Outcome = Callable[[str], Awaitable[None]]


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
        concurrency: int = CALLBACK_CONNECTIONS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._client = client
        self._secret = secret
        self._allow_private = allow_private
        self._deadline = timeout
        self._timeout = httpx.Timeout(timeout)
        self._attempts = attempts
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._slots = asyncio.Semaphore(concurrency)
        self._max_pending = max_pending
        self._pending: set[asyncio.Task[None]] = set()
        self._closed = False

    def key_for(self, job_id: str) -> str:
        """The callback key of `job_id`, for its creator to hand to its receiver."""
        return job_callback_key(self._secret, job_id).decode()

    async def send(self, url: str, payload: dict[str, Any]) -> str:
        """POST `payload` (a job or delivery summary: its `job_id` or `delivery_id` picks the
        signing key) to `url`;
        returns "delivered (<status>)" or "failed: <why>"."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        key = job_callback_key(self._secret, _subject(payload))
        host = httpx.URL(url).host
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._backoff, max=self._backoff_max),
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            ):
                with attempt:
                    status = await self._attempt(httpx.URL(url), body, key)
        except CallbackRefused as exc:
            # The job's owner sees the outcome: the detail (what a host resolves to) is logged.
            log_event(
                logger,
                "job_callback",
                "callback to {host} refused: {reason}",
                host=host,
                reason=str(exc),
            )
            outcome = f"failed: {NOT_ALLOWED}"
        except _Retryable as exc:
            outcome = f"failed after {self._attempts} attempts: {exc}"
        else:
            outcome = f"delivered ({status})" if status < 400 else f"failed: answered {status}"
        log_event(
            logger, "job_callback", "callback to {host} {outcome}", host=host, outcome=outcome
        )
        return outcome

    def dispatch(self, url: str, payload: dict[str, Any], *, on_outcome: Outcome) -> None:
        """Deliver in the background and hand the outcome to `on_outcome`; returns at once.

        Beyond `max_pending` deliveries not yet finished, or once closing, the callback is not
        sent and the outcome says so.
        """
        if self._closed or len(self._pending) >= self._max_pending:
            why = "the service is stopping" if self._closed else "too many callbacks pending"
            self._spawn(on_outcome(f"failed: not sent, {why}"))
            return
        self._spawn(self._deliver(url, payload, on_outcome))

    def job_ended(
        self, record: JobRecord, *, backend: JobBackend, signer: Signer | None, link_ttl: int
    ) -> None:
        """`dispatch` the summary of a job that ended, if it has a `callback_url`, and store the
        outcome on the job. `signer` signs the link to a complete archive (None: no link)."""
        if not record.callback_url:
            return
        payload = summary_payload(record, signer=signer, link_ttl=link_ttl)
        self.dispatch(
            record.callback_url, payload, on_outcome=outcome_recorder(backend, record.job_id)
        )

    async def aclose(self, *, grace: float) -> None:
        """Stop accepting callbacks; give pending ones `grace` seconds, then cancel them."""
        self._closed = True
        if not self._pending:
            return
        _, late = await asyncio.wait(set(self._pending), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            logger.warning("%d job callback(s) dropped: the process is stopping", len(late))
            await asyncio.wait(late)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, payload: dict[str, Any], on_outcome: Outcome) -> None:
        async with self._slots:
            outcome = await self.send(url, payload)
        try:
            await on_outcome(outcome)
        except Exception as exc:  # the job record is gone or storage failed: nothing to undo
            logger.warning("callback outcome not recorded: %r", exc)

    async def _attempt(self, url: httpx.URL, body: bytes, key: bytes) -> int:
        """One attempt within the deadline, every hop included; the final answer's status."""
        deadline = asyncio.get_running_loop().time() + self._deadline
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._final_response(url, body, key)
        except TimeoutError:
            raise _Retryable(f"no answer within {self._deadline:g} s") from None
        try:
            # The status is known: a body that stalls past the deadline changes nothing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await _drain(response)
        finally:
            await response.aclose()
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"answered {response.status_code}")
        return response.status_code

    async def _final_response(self, url: httpx.URL, body: bytes, key: bytes) -> httpx.Response:
        """POST, following redirects by hand; the last answer, its body not yet read."""
        for _ in range(MAX_REDIRECTS + 1):
            address = await resolve_allowed(url, allow_private=self._allow_private)
            request = self._client.build_request(
                "POST",
                url.copy_with(host=address),
                content=body,
                headers={
                    "Host": url.netloc.decode("ascii"),
                    "Content-Type": "application/json",
                    "X-Signature": signature_header(body, secret=key, timestamp=int(time.time())),
                },
                timeout=self._timeout,
                extensions={"sni_hostname": url.host},
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise _Retryable(type(exc).__name__) from None
            if response.status_code not in REDIRECT_STATUSES or "location" not in response.headers:
                return response
            try:
                await _drain(response)
            finally:
                await response.aclose()
            url = url.join(response.headers["location"])
        raise CallbackRefused(f"more than {MAX_REDIRECTS} redirects")


async def _drain(response: httpx.Response) -> None:
    """Read up to `MAX_ANSWER_BYTES` of the body, ignoring a body that fails midway."""
    received = 0
    with contextlib.suppress(httpx.HTTPError, httpx.StreamError):
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received >= MAX_ANSWER_BYTES:
                return


def outcome_recorder(backend: JobBackend, job_id: str) -> Callable[[str], Awaitable[None]]:
    """Stores a callback's outcome on its job."""

    async def record_outcome(outcome: str) -> None:
        def note(stored: JobRecord) -> bool:
            stored.callback_outcome = outcome
            return True

        await backend.update(job_id, note)

    return record_outcome


def iso(timestamp: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC (`...Z`)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def job_link(signer: Signer, record: JobRecord, *, link_ttl: int) -> SignedLink:
    """A signed link to the job's archive: `link_ttl` seconds, never past the job's expiry."""
    remaining = (record.expires_at or 0) - time.time()
    ttl = max(1, int(min(link_ttl, remaining)))
    return signer.sign(f"/jobs/{record.job_id}/download", {}, ttl=ttl)


def summary_payload(
    record: JobRecord, *, signer: Signer | None, link_ttl: int
) -> dict[str, object]:
    """The JSON body of a callback: the job's outcome and a signed link to its archive."""
    base = record.base_url.rstrip("/")
    download_url = None
    if signer is not None and record.state == "complete" and record.expires_at is not None:
        download_url = base + job_link(signer, record, link_ttl=link_ttl).url
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
