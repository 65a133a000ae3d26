"""Who is an administrator.

An administrator presents `ADMIN_TOKEN` as `Authorization: Bearer <token>` (scripts). With no
`ADMIN_TOKEN` configured nobody is an administrator.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import SettingsDep
from app.core.config import Settings
from app.core.errors import Forbidden, Unauthorized
from app.core.security import same_secret

bearer = HTTPBearer(auto_error=False, description="ADMIN_TOKEN, for administrators")


def is_admin(request: Request, settings: Settings) -> bool:
    """True when the request carries valid administrator credentials."""
    if settings.admin_token is None:
        return False
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return same_secret(token.strip(), settings.admin_token.get_secret_value())


async def require_admin(
    request: Request,
    settings: SettingsDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Allow administrators only.

    Raises:
        Unauthorized: no administrator credentials were presented.
        Forbidden: no ADMIN_TOKEN is configured, so administration is off.
    """
    if settings.admin_token is None:
        raise Forbidden("Administration is disabled: ADMIN_TOKEN is not set.")
    if not is_admin(request, settings):
        raise Unauthorized("Administrator credentials are required.")


AdminDep = Annotated[None, Depends(require_admin)]
