"""Request dependencies shared by the sandbox routes: state, API key, dev mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader

from app.sandbox.errors import Unauthorized
from app.sandbox.state import SandboxState

_key_header = APIKeyHeader(name="x-api-key", auto_error=False)
_TRUTHY = {"1", "true", "yes", "on"}


def get_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


State = Annotated[SandboxState, Depends(get_state)]


def _check(key: str, state: SandboxState) -> str:
    allowed = state.config.api_keys
    if allowed and key not in allowed:
        raise Unauthorized("Invalid API key")
    return key


def require_key(state: State, key: Annotated[str | None, Depends(_key_header)]) -> str:
    """The caller's API key.

    Raises:
        Unauthorized: no key, or a key outside the configured list.
    """
    if not key:
        raise Unauthorized("Missing API key: send it in the x-api-key header")
    return _check(key, state)


def optional_key(state: State, key: Annotated[str | None, Depends(_key_header)]) -> str | None:
    """The caller's API key when one is sent (routes the real API serves without a key).

    Raises:
        Unauthorized: a key was sent but is not accepted.
    """
    return _check(key, state) if key else None


def dev_mode(request: Request) -> bool:
    """True when the request carries `x-dev-mode: true` (no credits spent, watermarked)."""
    return request.headers.get("x-dev-mode", "").strip().lower() in _TRUTHY


ApiKey = Annotated[str, Depends(require_key)]
OptionalKey = Annotated[str | None, Depends(optional_key)]
DevMode = Annotated[bool, Depends(dev_mode)]


def collection_route(
    router: APIRouter, path: str, method: str, **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an endpoint at `path` and `path/`, without slash-normalising redirects.

    Clients use both spellings and a redirect would turn a POST into a second round trip
    (or a GET, for some clients).
    """

    def decorate(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=[method], **kwargs)
        router.add_api_route(
            path + "/", endpoint, methods=[method], include_in_schema=False, **kwargs
        )
        return endpoint

    return decorate
