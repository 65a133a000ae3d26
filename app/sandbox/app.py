"""Assembly of the sandbox ASGI app: routers, error handlers, middleware, lifespan."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.sandbox import control, downloads, routes_images, routes_orders
from app.sandbox.config import SandboxConfig
from app.sandbox.errors import InvalidInput, SandboxError, validation_triples
from app.sandbox.fault_middleware import InjectedAbort, QuietInjectedAborts, SandboxMiddleware
from app.sandbox.state import SandboxState

logger = logging.getLogger("app.sandbox")

_SERVER_LOGGERS = ("uvicorn.error",)


class SandboxJSONResponse(JSONResponse):
    """JSON as the real API may send it: text UTF-8 cannot carry (a lone surrogate in a name
    stored through `/_sandbox/orders`) goes out as `\\uXXXX` escapes, as JSON allows."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            return text.encode("ascii")


def _error_response(error: SandboxError) -> JSONResponse:
    return SandboxJSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _on_sandbox_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SandboxError)
    return _error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _error_response(InvalidInput(validation_triples(exc.errors())))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    return _error_response(SandboxError(str(exc.detail), status=exc.status_code, headers=headers))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Last resort: the upstream error shape, never a traceback in the body. Deliberate
    # aborts arrive here too (after their headers went out, so this answer is never sent).
    if not isinstance(exc, InjectedAbort):
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(SandboxError("Internal server error", status=500))


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build an Autoenhance v3 emulator.

    The app works with or without its lifespan being run: in-process clients
    (`httpx.ASGITransport(app=...)`) skip the lifespan, so the demo order is also seeded on
    the first request. When the lifespan runs it seeds at start-up, silences the server's log
    of deliberately aborted connections, and cancels background work on shutdown.
    """
    config = config or SandboxConfig()
    state = SandboxState(config)
    quiet = QuietInjectedAborts()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.ensure_seeded()
        for name in _SERVER_LOGGERS:
            logging.getLogger(name).addFilter(quiet)
        try:
            yield
        finally:
            for name in _SERVER_LOGGERS:
                logging.getLogger(name).removeFilter(quiet)
            await state.processor.aclose()

    app = FastAPI(
        title="Autoenhance sandbox",
        version="3",
        description="Offline emulator of the Autoenhance.ai v3 API, with fault injection.",
        lifespan=lifespan,
        redirect_slashes=False,
        default_response_class=SandboxJSONResponse,
    )
    app.state.sandbox = state
    app.include_router(routes_orders.router)
    app.include_router(routes_images.router)
    app.include_router(downloads.router)
    app.include_router(control.router)
    app.add_exception_handler(SandboxError, _on_sandbox_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(SandboxMiddleware, state=state)
    return app
