"""The exception handlers: every failure a request meets becomes the one JSON error shape.

`AppError` (any layer's, `app.core.errors`) answers its own status, code and headers; request
validation errors a 422 with only the location, message and type of each problem; Starlette's
HTTP errors (404 of an unknown path, 405) their status with a code from `_STATUS_CODES`; any
other exception a logged 500 that says nothing about its cause.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import AppError, ErrorBody

logger = logging.getLogger("app.errors")

# The code of a Starlette HTTP error's answer, by status ("error" for any other status).
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


def _where(request: Request) -> str:
    """The route template of the request (bounded, no ids), or its path when no route matched;
    never the query string (it may hold a signature)."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else request.url.path


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, _where(request))
    return error_response(
        request, 500, "internal_error", "An unexpected error occurred; it has been logged."
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure through the one JSON shape."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
