"""How a request on a delivery link reaches its delivery: the token's shape, the lookup that
answers `404`/`410` afresh on every request, and the PIN cookie. Shared by the link's routes
(`app.api.routes.delivery_links`, `delivery_previews`, `delivery_archive`)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Cookie, Depends

from app.api.schemas.deliveries import DeliveriesDep
from app.deliveries.errors import UnknownLink
from app.deliveries.models import DeliveryRecord

PIN_COOKIE = "ae_delivery_pin"
# What `secrets.token_urlsafe` writes; anything else is no token and answers 404 unlooked-up.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
NO_STORE = {"Cache-Control": "no-store"}


async def live_delivery(
    token: str, deliveries: DeliveriesDep, *, opening: bool = False
) -> DeliveryRecord:
    """Raises:
    UnknownLink: malformed or unknown token. DeliveryGone: expired or revoked."""
    if not TOKEN_PATTERN.fullmatch(token):
        raise UnknownLink()
    return await deliveries.for_token(token, opening=opening)


def _pin_cookie(
    cookie: Annotated[str | None, Cookie(alias=PIN_COOKIE, include_in_schema=False)] = None,
) -> str | None:
    return cookie


PinCookieDep = Annotated[str | None, Depends(_pin_cookie)]
