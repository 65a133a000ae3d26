"""One error hierarchy and one JSON error shape for every error the service returns.

Every error body is `{"error": <machine-readable code>, "detail": <human sentence or object>}`
(plus an optional `request_id`). Routes raise `AppError` subclasses; request validation errors,
Starlette HTTP errors and unexpected exceptions go through the same handlers, so a client never
sees a second shape, a stack trace or an internal detail.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("app.errors")


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


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(
    request: Request | None,
    status_code: int,
    code: str,
    detail: Any,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the one JSON error response shape."""
    request_id = None
    if request is not None:
        request_id = request.scope.get("state", {}).get("request_id")
    body = ErrorBody(error=code, detail=detail, request_id=request_id)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status_code, headers=headers
    )


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: the raw input may be large or hold a secret.
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(request, exc.status_code, exc.code, exc.detail, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, 422, "validation_error", _validation_detail(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    return error_response(request, exc.status_code, code, detail, dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.scope.get("route_path"))
    return error_response(
        request, 500, "internal_error", "An unexpected error occurred; it has been logged."
    )


async def _queue_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("job store unavailable: %s", type(exc).__name__)
    return error_response(
        request,
        503,
        "queue_unavailable",
        "The job queue is unreachable; try again shortly.",
        {"Retry-After": "5"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure through the one JSON shape."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    app.add_exception_handler(RedisConnectionError, _queue_unavailable)
    app.add_exception_handler(RedisTimeoutError, _queue_unavailable)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


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
