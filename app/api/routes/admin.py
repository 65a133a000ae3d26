"""Administrator sign-in: `/api/admin/session` (sign in, who am I, sign out).

The session cookie and what it proves are described in `app.api.auth`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, SecretStr

from app.api.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    AdminVia,
    SessionsUnavailable,
    admin_via,
    cookie_session,
    csrf_token,
    issue_session,
    origin_allowed,
    session_of,
)
from app.api.deps import SessionsDep, SessionSignerDep, SettingsDep
from app.core.config import Settings
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.core.security import Signer, same_secret
from app.core.sessions import SessionStoreError

router = APIRouter(tags=["admin"])


class SignIn(BaseModel):
    token: SecretStr = Field(max_length=1024, description="ADMIN_TOKEN")


class AdminSessionOut(BaseModel):
    admin: bool
    via: Literal["bearer", "cookie"] | None = None
    expires_at: datetime | None = None
    csrf_token: str | None = Field(
        default=None, description="Send as X-CSRF-Token on changes authorised by the cookie"
    )


async def _whoami(request: Request, settings: Settings, signer: Signer) -> AdminSessionOut:
    via = await admin_via(request, settings)
    if via is AdminVia.BEARER:
        return AdminSessionOut(admin=True, via="bearer")
    session = await session_of(request, settings)
    if via is AdminVia.COOKIE and session is not None:
        return AdminSessionOut(
            admin=True,
            via="cookie",
            expires_at=datetime.fromtimestamp(session.expires, tz=UTC),
            csrf_token=csrf_token(signer, session),
        )
    return AdminSessionOut(admin=False)


@router.post(
    "/api/admin/session",
    response_model=AdminSessionOut,
    responses=error_responses(401, 403, 422, 503),
    summary="Sign in: exchange ADMIN_TOKEN for a session cookie",
)
async def sign_in(
    body: SignIn,
    request: Request,
    response: Response,
    settings: SettingsDep,
    signer: SessionSignerDep,
    sessions: SessionsDep,
) -> AdminSessionOut:
    """Check the token (JSON body, never the query), list a new session, set its cookie."""
    if settings.admin_token is None:
        raise Forbidden("Administration is disabled: ADMIN_TOKEN is not set.")
    if "origin" in request.headers and not origin_allowed(request, settings):
        raise Forbidden("Sign in from this service's own page.", code="csrf_failed")
    if not same_secret(body.token.get_secret_value(), settings.admin_token.get_secret_value()):
        raise Unauthorized("That is not the administrator token.")
    session = issue_session(signer, settings)
    try:
        await sessions.add(session.session_id, expires=session.expires)
    except SessionStoreError as exc:
        raise SessionsUnavailable(
            "Signing in is unavailable: the session store cannot be reached; try again shortly."
        ) from exc
    response.set_cookie(
        SESSION_COOKIE,
        session.value,
        max_age=settings.admin_session_ttl,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return AdminSessionOut(
        admin=True,
        via="cookie",
        expires_at=datetime.fromtimestamp(session.expires, tz=UTC),
        csrf_token=csrf_token(signer, session),
    )


@router.get(
    "/api/admin/session",
    response_model=AdminSessionOut,
    responses=error_responses(503),
    summary="Who am I: administrator or not, and the CSRF token of the session",
)
async def whoami(
    request: Request, response: Response, settings: SettingsDep, signer: SessionSignerDep
) -> AdminSessionOut:
    """Whether this request is an administrator's, and how."""
    response.headers["Cache-Control"] = "no-store"
    return await _whoami(request, settings, signer)


@router.delete(
    "/api/admin/session",
    status_code=204,
    responses=error_responses(403, 503),
    summary="Sign out: end the session on the server and drop its cookie",
)
async def sign_out(
    request: Request, settings: SettingsDep, signer: SessionSignerDep, sessions: SessionsDep
) -> Response:
    """End the cookie's session in the session store, so that a copy of the cookie stops
    working too, and expire the cookie. Like every change a cookie authorises, it needs a
    same-origin `Origin` or the session's `X-CSRF-Token` (403 `csrf_failed` otherwise)."""
    session = cookie_session(request, settings)
    if session is not None:
        if not origin_allowed(request, settings) and not same_secret(
            request.headers.get(CSRF_HEADER), csrf_token(signer, session)
        ):
            raise Forbidden(
                f"Signing out needs a same-origin Origin header or the {CSRF_HEADER} header "
                "from GET /api/admin/session.",
                code="csrf_failed",
            )
        try:
            await sessions.revoke(session.session_id)
        except SessionStoreError as exc:
            raise SessionsUnavailable(
                "Signing out failed: the session store cannot be reached; try again."
            ) from exc
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
