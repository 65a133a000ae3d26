"""Exceptions raised by the Autoenhance client.

UpstreamError
├── UpstreamNotFound          404: unknown order or image, or not visible to this key
├── UpstreamUnauthorized      401/403: missing or wrong API key
├── UpstreamRejected          any other 4xx (422 not ready / cannot encode, 402 no credits)
├── UpstreamProtocolError     redirect loop, redirect to a non-http scheme, body length lie
├── CircuitOpen               too many recent failures; calls fail fast for a cool-down
└── UpstreamRetryable         worth another try (retried by the client with backoff)
    ├── UpstreamRateLimited   429, with the Retry-After the upstream asked for
    ├── UpstreamServerError   5xx
    ├── UpstreamTimeout       connect/read/write/pool timeout
    └── UpstreamNetworkError  connection refused or reset, broken body
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Base class of every failure talking to the Autoenhance API."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class UpstreamNotFound(UpstreamError):
    pass


class UpstreamUnauthorized(UpstreamError):
    pass


class UpstreamRejected(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    pass


class CircuitOpen(UpstreamError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, status_code=503)
        self.retry_after = retry_after


class UpstreamRetryable(UpstreamError):
    pass


class UpstreamRateLimited(UpstreamRetryable):
    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message, status_code=429)
        self.retry_after = retry_after


class UpstreamServerError(UpstreamRetryable):
    pass


class UpstreamTimeout(UpstreamRetryable):
    pass


class UpstreamNetworkError(UpstreamRetryable):
    pass
