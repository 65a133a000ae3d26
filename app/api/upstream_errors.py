"""Upstream failures as this service's HTTP errors (one mapping for all routes); order ids."""

from __future__ import annotations

import math
import uuid

from app.core.errors import (
    AppError,
    BadGateway,
    BadRequest,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from app.core.security import Credential
from app.upstream.client import AutoenhanceClient
from app.upstream.errors import (
    CircuitOpen,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnauthorized,
)
from app.upstream.models import Order
from app.upstream.options import IMAGE_ID_PATTERN


def checked_image_id(image_id: str) -> str:
    """The image id, checked to be one.

    Raises:
        BadRequest: it is not (checked before any upstream call).
    """
    if not IMAGE_ID_PATTERN.fullmatch(image_id):
        raise BadRequest("That is not an image id.", code="invalid_image_id")
    return image_id


def checked_order_id(order_id: str) -> str:
    """The order id in canonical form.

    Raises:
        BadRequest: the id is not a UUID (checked before any upstream call).
    """
    try:
        return str(uuid.UUID(order_id))
    except ValueError:
        raise BadRequest(
            "An order id is a UUID such as 8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f.",
            code="invalid_order_id",
        ) from None


def to_app_error(exc: UpstreamError, *, what: str = "order") -> AppError:
    """Map an upstream failure on the order itself to the status the caller should see."""
    if isinstance(exc, UpstreamNotFound):
        return NotFound(f"No such {what}, or it is not visible to this API key.")
    if isinstance(exc, UpstreamUnauthorized):
        return Unauthorized(
            "The Autoenhance API refused the API key.", code="upstream_unauthorized"
        )
    if isinstance(exc, CircuitOpen | UpstreamRateLimited):
        retry_after = getattr(exc, "retry_after", None) or 5.0
        return ServiceUnavailable(
            "The Autoenhance API is busy or failing; try again shortly.",
            code="upstream_unavailable",
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        )
    if isinstance(exc, UpstreamRejected):
        return BadGateway(f"The Autoenhance API rejected the request ({exc.status_code}).")
    return BadGateway("The Autoenhance API could not be reached or failed; try again shortly.")


async def fetch_order(upstream: AutoenhanceClient, order_id: str, credential: Credential) -> Order:
    """Read an order with the caller's credential (so access is always re-checked).

    Raises:
        AppError: 404, 401, 502 or 503 as mapped by `to_app_error`.
    """
    try:
        return await upstream.get_order(order_id, api_key=credential.api_key)
    except UpstreamError as exc:
        raise to_app_error(exc) from exc
