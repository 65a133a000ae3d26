"""Pure ASGI middleware: request id, access log, HTTP metrics and security headers; the order
of the whole stack, request-body limits and deadlines (`app.web.bodies`) included.

Everything here is plain ASGI (no `BaseHTTPMiddleware`, which buffers and runs the app in
another task): a streamed archive passes through chunk by chunk, and closing the connection
still reaches the body iterator.

Order, outermost first:

1. `EdgeMiddleware` — outside Starlette's `ServerErrorMiddleware`, so that the JSON 500 it
   sends for an unexpected error also carries `X-Request-ID` and the security headers, and
   is counted and logged like any other answer.
2. `ServerErrorMiddleware` (Starlette) — the one JSON 500.
3. `CORSMiddleware` (Starlette) — only when `ALLOWED_ORIGINS` lists origins.
4. `BodyDeadlineMiddleware` (`app.web.bodies`) — 408 for request bodies that stall or take too long.
5. `BodyLimitMiddleware` (`app.web.bodies`) — 413 for request bodies over the limit.

A client that never finishes its request headers is not seen here (the app only starts once
they are complete): `app.web.server` closes those connections.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics
from app.core.config import Settings
from app.core.logging import log_event, request_id_var
from app.web.bodies import BodyDeadlineMiddleware, BodyLimitMiddleware

access_logger = logging.getLogger("app.access")

# Accepted from a client as-is: short and harmless in a log line or a header.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNMATCHED_ROUTE = "unmatched"
# The `method` label of the HTTP metrics: uvicorn's h11 parser passes any token as a method,
# so anything outside the standard methods (RFC 9110, plus PATCH) is counted as `other`.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "other"

# Multipart framing and form fields around the files of an upload.
UPLOAD_OVERHEAD_BYTES = 1024 * 1024
UPLOAD_PATHS = ("/api/create-order",)

# Strict policy for everything the service serves, the page included: scripts and styles
# only from the service itself, no inline script, no framing, no plugins.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc start from an inline script (FastAPI's page template); their assets
# are served locally, so only inline script and style are added, on these paths alone.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Signed links carry their signature in the query: never leak it in a Referer.
    (b"referrer-policy", b"no-referrer"),
    (
        b"permissions-policy",
        b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
)

ErrorRecorder = Callable[[dict[str, Any]], None]


def request_id_from(scope: Scope) -> str:
    """The client's `X-Request-ID` when it is short and safe, else a new random one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def method_label(scope: Scope) -> str:
    """The request method as a metric label and log field: bounded to `KNOWN_METHODS`."""
    method = scope.get("method")
    return method if method in KNOWN_METHODS else OTHER_METHOD


def route_template(scope: Scope, plain: PlainRoutes | None = None, status: int = 200) -> str:
    """The matched route's path template (`/orders/{order_id}/images`), never the raw path.

    FastAPI's own routes leave themselves in the scope. The OpenAPI document and the static
    files are plain Starlette routes and mounts that do not, so their template is looked up in
    `plain` (a 404 stays `unmatched`: a missing static file matched nothing worth a label).
    """
    route = scope.get("route")
    path: object = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    if plain is not None and status != 404:
        return plain.template(scope.get("path", "")) or UNMATCHED_ROUTE
    return UNMATCHED_ROUTE


class PlainRoutes:
    """Templates of an application's non-FastAPI routes: exact paths, and mounts (`/static`)."""

    def __init__(self, app: FastAPI) -> None:
        self.exact: set[str] = set()
        self.mounts: list[str] = []
        self._collect(app.routes)

    def _collect(self, routes: Sequence[BaseRoute]) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # a router FastAPI included
            if included is not None:
                self._collect(included.routes)
            elif isinstance(route, Mount):
                self.mounts.append(route.path.rstrip("/"))
            elif isinstance(route, Route) and not isinstance(route, APIRoute):
                if "{" not in route.path:
                    self.exact.add(route.path)

    def template(self, path: str) -> str | None:
        if path in self.exact:
            return path
        for mount in self.mounts:
            if path.startswith(mount + "/"):
                return mount + "/{path}"
        return None


class EdgeMiddleware:
    """Request id, security headers, one access-log line and HTTP metrics per request.

    The request id goes into `scope["state"]["request_id"]` (error bodies read it there), a
    context variable (log lines), and the `X-Request-ID` response header. Latency is observed
    when the response starts; the log line and the request counter when it ends, so a
    streamed archive's line tells its full duration. Answers with status 500 or more are
    handed to the error ring of `scope["state"]["ops"]`, when there is one.
    """

    def __init__(self, app: ASGIApp, *, plain_routes: PlainRoutes | None = None) -> None:
        self.app = app
        self.plain_routes = plain_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        sent_bytes = 0
        csp = DOCS_CSP if scope["path"] in DOCS_PATHS else STRICT_CSP

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (
                    *SECURITY_HEADERS,
                    (b"content-security-policy", csp.encode()),
                    (b"x-request-id", request_id.encode()),
                ):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
                route = route_template(scope, self.plain_routes, status)
                metrics.HTTP_LATENCY.labels(method_label(scope), route).observe(
                    time.perf_counter() - started
                )
            elif message["type"] == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            await send(message)

        failure: BaseException | None = None
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._finish(scope, status, started, sent_bytes, failure)
            request_id_var.reset(token)

    def _finish(
        self,
        scope: Scope,
        status: int,
        started: float,
        sent_bytes: int,
        failure: BaseException | None,
    ) -> None:
        route = route_template(scope, self.plain_routes, status)
        method = method_label(scope)
        duration = time.perf_counter() - started
        metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
        outcome = "ok" if failure is None else type(failure).__name__
        log_event(
            access_logger,
            "request",
            "{method} {route} {status} {duration_ms:.1f}ms",
            method=method,
            route=route,
            status=status,
            duration_ms=round(duration * 1000, 1),
            bytes_sent=sent_bytes,
            outcome=outcome,
        )
        if status >= 500:
            ops = scope.get("state", {}).get("ops")
            if ops is not None:
                ops.error_log.record_event(
                    kind="http",
                    status=status,
                    route=f"{method} {route}",
                    request_id=scope["state"].get("request_id"),
                    message=outcome if failure is not None else f"answered {status}",
                )


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Add the service's middleware to `app` (see the module docstring for the order)."""
    upload_limit = settings.max_upload_files * settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_request_body_bytes,
        path_limits={path: upload_limit for path in UPLOAD_PATHS},
    )
    app.add_middleware(
        BodyDeadlineMiddleware,
        idle_timeout=settings.request_body_idle_timeout,
        total_timeout=settings.request_body_timeout,
    )
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Range",
                "If-Range",
                "X-API-Key",
                "X-Autoenhance-Key",
                "X-Request-ID",
            ],
            expose_headers=[
                "Content-Disposition",
                "Content-Length",
                "ETag",
                "Retry-After",
                "X-Downloaded",
                "X-Failed",
                "X-Ready-Images",
                "X-Request-ID",
                "X-Total-Images",
            ],
            max_age=600,
        )
    build_inner = app.build_middleware_stack

    def build_stack() -> ASGIApp:
        # Wrap the whole stack, ServerErrorMiddleware included (see the module docstring).
        return EdgeMiddleware(build_inner(), plain_routes=PlainRoutes(app))

    app.build_middleware_stack = build_stack  # type: ignore[method-assign]
