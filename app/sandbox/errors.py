"""Errors the sandbox answers with, in the upstream API's two JSON shapes.

    SandboxError(status, message, detail)      -> {"message": ..., "detail": {...}}  (HTTPError)
    ├── Unauthorized          401
    ├── NotFound              404
    ├── Conflict              409
    ├── PaymentRequired       402
    ├── Forbidden             403
    └── InvalidInput          422 {"message": "Validation error",
                                   "detail": {<location>: {<field>: [msg, ...]}}}

Plain exceptions: the store and the imaging code raise them without knowing about HTTP
frameworks; `app.sandbox.app` turns them into responses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class SandboxError(Exception):
    """An error answered as `{"message": message, "detail": detail}` with `status`."""

    status = 500

    def __init__(
        self,
        message: str,
        *,
        detail: Mapping[str, Any] | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = dict(detail or {})
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "detail": self.detail}


class Unauthorized(SandboxError):
    status = 401


class PaymentRequired(SandboxError):
    status = 402


class Forbidden(SandboxError):
    status = 403


class NotFound(SandboxError):
    status = 404


class Conflict(SandboxError):
    status = 409


class InvalidInput(SandboxError):
    """422 in the APIFlask ValidationError layout: location -> field -> messages."""

    status = 422

    def __init__(self, errors: Iterable[tuple[str, str, str]]) -> None:
        detail: dict[str, dict[str, list[str]]] = {}
        for location, field, message in errors:
            detail.setdefault(location, {}).setdefault(field, []).append(message)
        super().__init__("Validation error", detail=detail)

    @classmethod
    def of(cls, location: str, field: str, message: str) -> InvalidInput:
        """One message about one field."""
        return cls([(location, field, message)])


# FastAPI names request parts differently from APIFlask, whose names the upstream errors use.
_LOCATIONS = {"body": "json", "query": "query", "path": "path", "header": "headers"}


def validation_triples(errors: Sequence[Any]) -> list[tuple[str, str, str]]:
    """Convert FastAPI/pydantic error dicts to `(location, field, message)` triples."""
    triples: list[tuple[str, str, str]] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = _LOCATIONS.get(loc[0], loc[0]) if loc else "json"
        field = ".".join(loc[1:]) or "_schema"
        triples.append((location, field, str(error.get("msg", "Invalid value."))))
    return triples
