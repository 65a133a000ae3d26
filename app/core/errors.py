"""One error hierarchy and one JSON error shape for every error the service returns.

Every error body is `{"error": <machine-readable code>, "detail": <human sentence or object>}`
(plus an optional `request_id`). Any layer raises `AppError` subclasses; the handlers in
`app.web.handlers` turn them, request validation errors, Starlette HTTP errors and unexpected
exceptions into that one shape, so a client never sees a second shape, a stack trace or an
internal detail. This module knows no web framework, so services and jobs can raise these.

A dependency that is unreachable (the job queue, say) is a `ServiceUnavailable` subclass of
the layer that owns the dependency (`app.jobs.backend.QueueUnavailable`): core stays at the
bottom, and the one `AppError` handler answers it like any other error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error: str
    detail: Any = None
    request_id: str | None = None


class AppError(Exception):
    """Base class of every error the API reports to its caller."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        detail: Any = None,
        *,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Gone(AppError):
    status_code = 410
    code = "gone"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class Unprocessable(AppError):
    status_code = 422
    code = "unprocessable"


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"


class BadGateway(AppError):
    status_code = 502
    code = "upstream_error"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the error shape for the given status codes."""
    descriptions = {
        400: "Malformed order id or request",
        401: "Missing or wrong credentials",
        403: "Not allowed",
        404: "Unknown order or nothing to download",
        408: "The request body did not arrive in time",
        409: "Not ready yet",
        410: "Expired",
        413: "Too large",
        415: "Not an image",
        422: "Invalid parameters, or no image could be delivered",
        429: "Rate limited; see Retry-After",
        502: "Upstream failed",
        503: "Upstream unavailable or circuit open; see Retry-After",
    }
    # The schema is given inline under application/json: with `model=` FastAPI would file it
    # under the route's own media type, which is application/zip for archive routes.
    content = {"application/json": {"schema": ErrorBody.model_json_schema()}}
    return {
        code: {"description": descriptions.get(code, "Error"), "content": content} for code in codes
    }
