"""Who is an administrator, and who may create orders.

An administrator presents `ADMIN_TOKEN` either as `Authorization: Bearer <token>` (scripts) or
as the session cookie handed out by `POST /api/admin/session` in exchange for the token (the
page). The cookie is `v2.<expires>.<nonce>.<mac>`: the expiry is inside the signed value, and
the MAC (keyed with the sessions key, `app.core.keys`) also covers a fingerprint of
`ADMIN_TOKEN`, so changing the token ends every session. A valid MAC is not enough: the
session must also still be listed in the session store (`app.core.sessions`), which signing
out removes it from, so a copied cookie stops working when its owner signs out. It is
httponly, SameSite=Strict, and Secure when the request came in over https. The scheme is
uvicorn's view of the request: behind a TLS-terminating proxy run uvicorn with
`--proxy-headers --forwarded-allow-ips=<proxy>` so that only that proxy's X-Forwarded-Proto
is believed; this module never reads forwarding headers itself.

A cookie alone is what a browser sends on a forged cross-site request, so on state-changing
methods (POST, PUT, PATCH, DELETE) the cookie counts only with a same-origin `Origin` header
(the request's own origin or one of `ALLOWED_ORIGINS`) or a valid `X-CSRF-Token` (handed out
by `GET /api/admin/session` to the cookie's holder). A Bearer token needs neither: browsers
never attach it on their own. With no `ADMIN_TOKEN` configured nobody is an administrator.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import (
    SERVICE_KEY_NEEDED,
    OwnKeyDep,
    ServiceKeyDep,
    SettingsDep,
    own_key_credential,
    service_key_accepted,
)
from app.core.config import Settings
from app.core.errors import Forbidden, ServiceUnavailable, Unauthorized
from app.core.security import Credential, Signer, operator_credential, same_secret
from app.core.sessions import RETRY_AFTER, SessionStore, SessionStoreError, session_id

logger = logging.getLogger("app.auth")

bearer = HTTPBearer(auto_error=False, description="ADMIN_TOKEN, for administrators")

SESSION_COOKIE = "ae_admin_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# v1 cookies were keyed with the signing secret itself; they are no longer accepted.
_SESSION_VERSION = "v2"
_EXPIRES = re.compile(r"[0-9]{1,12}")


class AdminVia(enum.Enum):
    """How a request proved (or failed to prove) it comes from an administrator."""

    NONE = "none"
    BEARER = "bearer"
    COOKIE = "cookie"
    COOKIE_CROSS_SITE = "cookie_cross_site"  # a valid cookie on an unchecked unsafe request


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A verified session cookie."""

    value: str
    expires: int

    @property
    def session_id(self) -> str:
        """The key of this session in the session store."""
        return session_id(self.value.split(".")[2])


def _token_tag(settings: Settings) -> str:
    assert settings.admin_token is not None
    token = settings.admin_token.get_secret_value().encode()
    return hashlib.sha256(b"admin-token:" + token).hexdigest()[:16]


def issue_session(signer: Signer, settings: Settings, *, now: float | None = None) -> AdminSession:
    """A new signed session value expiring `ADMIN_SESSION_TTL` seconds from now."""
    expires = int((now if now is not None else time.time()) + settings.admin_session_ttl)
    payload = f"{_SESSION_VERSION}.{expires}.{secrets.token_urlsafe(16)}"
    mac = signer.mac(f"admin-session|{_token_tag(settings)}|{payload}".encode())
    return AdminSession(value=f"{payload}.{mac}", expires=expires)


def read_session(
    value: str | None, signer: Signer, settings: Settings, *, now: float | None = None
) -> AdminSession | None:
    """The session `value` carries if it is well-formed, correctly signed and unexpired."""
    if not value or settings.admin_token is None or len(value) > 256:
        return None
    payload, _, mac = value.rpartition(".")
    version, _, rest = payload.partition(".")
    expires_text, _, nonce = rest.partition(".")
    if version != _SESSION_VERSION or not _EXPIRES.fullmatch(expires_text) or not nonce:
        return None
    expected = signer.mac(f"admin-session|{_token_tag(settings)}|{payload}".encode())
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    expires = int(expires_text)
    if expires <= (now if now is not None else time.time()):
        return None
    return AdminSession(value=value, expires=expires)


def csrf_token(signer: Signer, session: AdminSession) -> str:
    """The CSRF token bound to one session (only its holder can learn it)."""
    return signer.mac(b"admin-csrf|" + session.value.encode())


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def origin_allowed(request: Request, settings: Settings) -> bool:
    """True when the request's `Origin` is this service's own or one of `ALLOWED_ORIGINS`."""
    origin = request.headers.get("origin", "").strip().lower().rstrip("/")
    if not origin or origin == "null":
        return False
    allowed = {own_origin(request), *(o.lower().rstrip("/") for o in settings.allowed_origins)}
    return origin in allowed


class SessionsUnavailable(ServiceUnavailable):
    """The session store cannot be reached, so a signed-in cookie can be neither confirmed nor
    refused: a 503 the page and scripts retry, rather than a 401 that would read as signed out."""

    code = "session_store_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": str(RETRY_AFTER)})


def _signer(request: Request) -> Signer | None:
    signer: Signer | None = getattr(request.state, "session_signer", None)
    return signer


def cookie_session(request: Request, settings: Settings) -> AdminSession | None:
    """The session the request's cookie carries, if its signature and expiry are valid (it may
    have been revoked: see `session_of`)."""
    signer = _signer(request)
    if signer is None:
        return None
    return read_session(request.cookies.get(SESSION_COOKIE), signer, settings)


async def session_of(request: Request, settings: Settings) -> AdminSession | None:
    """The request's live admin session: validly signed, unexpired, not signed out.

    Raises:
        SessionsUnavailable: the cookie is validly signed but the session store cannot say
            whether it was signed out (its owner is not told they were signed out).
    """
    session = cookie_session(request, settings)
    if session is None:
        return None
    store: SessionStore = request.state.sessions
    try:
        live = await store.active(session.session_id)
    except SessionStoreError as exc:
        logger.warning("admin session not checked: %s", exc)
        raise SessionsUnavailable(
            "Your sign-in cannot be checked right now: the session store cannot be reached; "
            "try again shortly."
        ) from exc
    return session if live else None


async def admin_via(request: Request, settings: Settings) -> AdminVia:
    """How the request is authorised as an administrator (see the module docstring)."""
    if settings.admin_token is None:
        return AdminVia.NONE
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and same_secret(
        token.strip(), settings.admin_token.get_secret_value()
    ):
        return AdminVia.BEARER
    session = await session_of(request, settings)
    if session is None:
        return AdminVia.NONE
    if request.method not in UNSAFE_METHODS or origin_allowed(request, settings):
        return AdminVia.COOKIE
    signer = _signer(request)
    assert signer is not None
    if same_secret(request.headers.get(CSRF_HEADER), csrf_token(signer, session)):
        return AdminVia.COOKIE
    return AdminVia.COOKIE_CROSS_SITE


async def is_admin(request: Request, settings: Settings) -> bool:
    """True when the request carries valid administrator credentials (for extras an answer
    adds for administrators: a cookie that cannot be checked gets the answer without them)."""
    try:
        via = await admin_via(request, settings)
    except SessionsUnavailable:
        return False
    return via in (AdminVia.BEARER, AdminVia.COOKIE)


def _refuse(via: AdminVia) -> Unauthorized | Forbidden:
    if via is AdminVia.COOKIE_CROSS_SITE:
        return Forbidden(
            f"A signed-in request that changes something needs a same-origin Origin header or "
            f"the {CSRF_HEADER} header from GET /api/admin/session.",
            code="csrf_failed",
        )
    return Unauthorized("Administrator credentials are required.")


async def require_admin(
    request: Request,
    settings: SettingsDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Allow administrators only.

    Raises:
        Unauthorized: no administrator credentials were presented.
        Forbidden: no ADMIN_TOKEN is configured, or a session cookie came without the
            same-origin proof an unsafe method needs.
        SessionsUnavailable: a signed-in cookie that the session store cannot confirm now.
    """
    if settings.admin_token is None:
        raise Forbidden("Administration is disabled: ADMIN_TOKEN is not set.")
    via = await admin_via(request, settings)
    if via not in (AdminVia.BEARER, AdminVia.COOKIE):
        raise _refuse(via)


AdminDep = Annotated[None, Depends(require_admin)]


def operator_or_own_key(action: str) -> Callable[..., Awaitable[Credential]]:
    """A dependency deciding whose key `action` (e.g. "Creating orders on", "Listing the orders
    of") this service's key is done with, if this caller may do it at all.

    A caller's own key (`X-Autoenhance-Key`) may always be used for itself. The operator's key
    is for administrators; in sandbox mode nothing is charged or private, so anyone who may use
    the service at all (the `SERVICE_API_KEY` holder, when one is set) may use it.

    The dependency raises:
        Unauthorized: no acceptable credential was presented (or a malformed own key).
        Forbidden: a signed-in cookie without same-origin proof, or no way to use the
            operator's key because ADMIN_TOKEN is not set (outside sandbox mode).
    """

    async def credential(
        request: Request,
        settings: SettingsDep,
        service_key: ServiceKeyDep,
        own_key: OwnKeyDep,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Credential:
        own = own_key_credential(own_key)
        if own is not None:
            return own
        unchecked: SessionsUnavailable | None = None
        try:
            via = await admin_via(request, settings)
        except SessionsUnavailable as exc:
            via, unchecked = AdminVia.NONE, exc
        if via in (AdminVia.BEARER, AdminVia.COOKIE):
            return operator_credential(settings)
        if settings.sandbox_mode and service_key_accepted(settings, service_key):
            return operator_credential(settings)
        if unchecked is not None:
            raise unchecked
        if via is AdminVia.COOKIE_CROSS_SITE:
            raise _refuse(via)
        if settings.sandbox_mode:
            raise Unauthorized(SERVICE_KEY_NEEDED)
        if settings.admin_token is None:
            raise Forbidden(
                f"{action} this service's Autoenhance key is switched off (no ADMIN_TOKEN is "
                "set); send your own key in X-Autoenhance-Key instead.",
                code="admin_only",
            )
        raise Unauthorized(
            f"{action} this service's Autoenhance key is for administrators (Authorization: "
            "Bearer <ADMIN_TOKEN>, or sign in); or send your own key in X-Autoenhance-Key."
        )

    return credential


CreatorDep = Annotated[Credential, Depends(operator_or_own_key("Creating orders on"))]
ListerDep = Annotated[Credential, Depends(operator_or_own_key("Listing the orders of"))]
