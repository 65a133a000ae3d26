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

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error: str = Field(description="A stable machine-readable code to branch on")
    detail: Any = Field(
        default=None,
        description="For people. A string: one sentence saying what is wrong (most errors). "
        "An object: its `message` is that sentence, and the facts a program needs sit beside "
        "it (`failures`, `image_ids`, `state`, ...). For `validation_error` only: a list of "
        "the fields that failed, each `{loc, msg, type}`.",
    )
    request_id: str | None = Field(default=None, description="Quote it when reporting a problem")


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
        507: "The service's disk is full; see Retry-After",
    }
    # The schema is given inline under application/json: with `model=` FastAPI would file it
    # under the route's own media type, which is application/zip for archive routes.
    schema = ErrorBody.model_json_schema()
    return {
        code: {
            "description": descriptions.get(code, "Error"),
            "content": {
                "application/json": {"schema": schema, "examples": _ERROR_EXAMPLES.get(code, {})}
            },
        }
        for code in codes
    }


def _example(summary: str, error: str, detail: Any) -> dict[str, Any]:
    value = {"error": error, "detail": detail, "request_id": "4f9c0e6b2a1d4c3e8b7a6f5e4d3c2b1a"}
    return {"summary": summary, "value": value}


# One example of each shape `detail` takes (a sentence; an object with `message`; the list of
# a validation error), for the statuses the routes declare: what /docs shows an integrator.
_ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {
        "sentence": _example(
            "detail is a sentence",
            "invalid_order_id",
            "The order id must be a UUID such as 8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f.",
        )
    },
    401: {
        "sentence": _example(
            "detail is a sentence", "unauthorized", "This service needs a key: send X-API-Key."
        )
    },
    403: {
        "sentence": _example(
            "detail is a sentence", "admin_only", "Listing orders is for administrators."
        )
    },
    404: {
        "sentence": _example(
            "detail is a sentence", "not_found", "No order with this id is visible to this key."
        )
    },
    408: {
        "sentence": _example(
            "detail is a sentence", "request_timeout", "The upload stalled; send it again."
        )
    },
    409: {
        "object": _example(
            "detail is an object with a message",
            "image_not_ready",
            {
                "message": "This image has no preview yet: it is not enhanced.",
                "state": "processing",
            },
        )
    },
    410: {"sentence": _example("detail is a sentence", "gone", "This job's archive has expired.")},
    413: {
        "sentence": _example("detail is a sentence", "payload_too_large", "A file is too large.")
    },
    415: {
        "sentence": _example(
            "detail is a sentence", "not_an_image", "notes.txt is not an image this service takes."
        )
    },
    416: {
        "sentence": _example(
            "detail is a sentence", "range_not_satisfiable", "The range starts past the end."
        )
    },
    422: {
        "list": _example(
            "validation_error: detail is a list of fields",
            "validation_error",
            [
                {
                    "loc": ["query", "quality"],
                    "msg": "Input should be less than or equal to 90",
                    "type": "less_than_equal",
                }
            ],
        ),
        "object": _example(
            "detail is an object with a message",
            "nothing_to_deliver",
            {
                "message": "No image of this order could be delivered.",
                "failures": [
                    {
                        "image_id": "aa942c1f-…",
                        "image_name": "garden",
                        "reason": "not processed yet (processing)",
                    }
                ],
            },
        ),
    },
    429: {
        "sentence": _example(
            "detail is a sentence", "rate_limited", "Too many requests; try again in 3 s."
        )
    },
    500: {
        "sentence": _example(
            "detail is a sentence", "internal_error", "Something went wrong on our side."
        )
    },
    502: {
        "sentence": _example(
            "detail is a sentence", "upstream_error", "The Autoenhance API failed (HTTP 500)."
        )
    },
    503: {
        "sentence": _example(
            "detail is a sentence", "upstream_unavailable", "Autoenhance is busy; try again."
        )
    },
    507: {
        "sentence": _example(
            "detail is a sentence",
            "insufficient_storage",
            "The service has no disk space left to build this archive; try again later.",
        )
    },
}
