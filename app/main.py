"""Application factory and lifespan.

`create_app(settings)` builds the FastAPI application; the lifespan opens, on one
`AsyncExitStack`, the process's runtime (`app.jobs.runtime.open_runtime`, which the arq worker
opens the same way: the upstream client and its HTTP clients, the fair limiter, the archive
store, the job backend and archives, the callback sender), then what only a web process serves
— deliveries, the job service (with its embedded worker when there is no Redis), sessions, the
operations resources (rate limits, readiness probe, stats), the downloads service, the decode
pool, the page's Ask service — and in sandbox mode the embedded emulator; it closes them all in
reverse order on shutdown. Handlers read them from `request.state` (see `app.api.deps`); no
router brings a lifespan of its own, so this `State` is all there is.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TypedDict

import httpx
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.api.routes import (
    admin,
    batch,
    create,
    deliveries,
    delivery_archive,
    delivery_links,
    delivery_previews,
    jobs,
    monitoring,
    orders,
    photos,
    presets,
    thumbnails,
    ui,
    webhooks,
)
from app.archive.downloads import Downloads
from app.archive.fairness import FairLimiter
from app.archive.rendering import Renderer
from app.archive.stream import ArchiveBuilder
from app.core.config import Settings
from app.core.identity import VERSION
from app.core.logging import configure_logging
from app.core.security import Signer, operator_credential
from app.core.sentry import init_sentry
from app.core.sessions import SessionStore, open_sessions
from app.deliveries.runtime import open_deliveries
from app.deliveries.service import DeliveryService
from app.imaging.pool import DecodePool
from app.imaging.presets import Preset, load_presets
from app.jobs.runtime import open_job_service, open_runtime
from app.jobs.service import JobService
from app.sandbox import DEMO_ORDER_ID
from app.services.ask import AskService, ask_service
from app.upstream.client import AutoenhanceClient
from app.web.handlers import install_error_handlers
from app.web.middleware import install_middleware
from app.web.ops import Operations, operations

logger = logging.getLogger("app")

# The repository, whose README.md and docs/*.md the page's Ask tab answers from.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Base URL under which the embedded sandbox answers inside the process.
EMBEDDED_SANDBOX_BASE = "http://sandbox.internal/v3"


class State(TypedDict):
    settings: Settings
    upstream: AutoenhanceClient
    limiter: FairLimiter
    downloads: Downloads
    decoder: DecodePool  # every image decode (thumbnails, renders)
    renderer: Renderer  # variants: of archives (through downloads) and of one photo
    signer: Signer  # signed links
    session_signer: Signer  # administrator sessions
    sessions: SessionStore
    spool_dir: Path
    jobs: JobService
    deliveries: DeliveryService
    ops: Operations
    ask: AskService  # questions asked on the page


@contextlib.asynccontextmanager
async def _upstream_transport(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncBaseTransport | None, str]]:
    """The transport and base URL of the upstream: the real API, or the embedded sandbox."""
    if not settings.sandbox_mode:
        yield None, settings.autoenhance_api_base
        return
    from app.sandbox import SandboxConfig, create_sandbox_app

    sandbox = create_sandbox_app(SandboxConfig(processing_delay=settings.sandbox_processing_delay))
    async with sandbox.router.lifespan_context(sandbox):
        logger.warning(
            "SANDBOX MODE: no AUTOENHANCE_API_KEY is set; answering from the built-in "
            "emulator of the Autoenhance API (nothing is charged, images are simulated)"
        )
        yield httpx.ASGITransport(app=sandbox), EMBEDDED_SANDBOX_BASE


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    """Open every long-lived resource of `app.state.settings`; close them all on shutdown."""
    settings: Settings = app.state.settings
    async with contextlib.AsyncExitStack() as resources:
        transport, base_url = await resources.enter_async_context(_upstream_transport(settings))
        yield await _open_state(
            settings,
            resources,
            transport=transport,
            base_url=base_url,
            presets=app.state.presets,
        )


async def _open_state(
    settings: Settings,
    resources: contextlib.AsyncExitStack,
    *,
    transport: httpx.AsyncBaseTransport | None,
    base_url: str,
    presets: Mapping[str, Preset],
) -> State:
    """The process's runtime (shared with the arq worker) and what only the web serves; all
    that needs closing is pushed onto `resources`."""
    runtime = await open_runtime(
        settings, resources, base_url=base_url, transport=transport, presets=presets
    )
    upstream = runtime.upstream.client
    # Before the job service: deliveries drain the shared callback sender as they close.
    delivery_service = await resources.enter_async_context(
        open_deliveries(settings, keys=runtime.keys, callbacks=runtime.jobs.callbacks)
    )
    job_service = await open_job_service(runtime, resources)
    sessions = await resources.enter_async_context(open_sessions(settings))
    ops_resources = await resources.enter_async_context(
        operations(
            settings,
            http=runtime.upstream.http,
            upstream_base=base_url,
            operator_key=operator_credential(settings).api_key,
            store=runtime.store,
            breaker=upstream.breaker,
        )
    )
    downloads = Downloads(
        settings=settings,
        builder=ArchiveBuilder(
            settings=settings,
            upstream=upstream,
            limiter=runtime.limiter,
            spool_dir=settings.spool_dir,
            renderer=runtime.renderer,
        ),
        store=runtime.store,
    )
    return State(
        settings=settings,
        upstream=upstream,
        limiter=runtime.limiter,
        downloads=downloads,
        decoder=runtime.decoder,
        renderer=runtime.renderer,
        signer=Signer(runtime.keys.links),
        session_signer=Signer(runtime.keys.sessions),
        sessions=sessions,
        spool_dir=settings.spool_dir,
        jobs=job_service,
        deliveries=delivery_service,
        ops=ops_resources,
        ask=ask_service(settings, resources, root=PROJECT_ROOT),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application. `settings` defaults to the environment."""
    settings = settings or Settings()
    # Read before anything starts: a bad PRESETS_FILE stops the service with its reason.
    offered_presets = load_presets(settings.presets_file)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    init_sentry(settings)
    # Swagger UI and ReDoc assets are served locally: /docs works offline.
    app = FastAPIOffline(
        title="Autoenhance batch downloader",
        summary="Every enhanced image of an Autoenhance.ai order as one streamed ZIP.",
        version=VERSION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.presets = offered_presets
    install_error_handlers(app)
    install_middleware(app, settings)
    app.include_router(batch.router)
    app.include_router(orders.router)
    app.include_router(thumbnails.router)
    app.include_router(presets.router)
    app.include_router(photos.router)
    app.include_router(monitoring.router)
    app.include_router(ui.router)
    app.include_router(create.router)
    app.include_router(admin.router)
    app.include_router(jobs.router)
    app.include_router(webhooks.router)
    app.include_router(deliveries.router)
    app.include_router(delivery_links.router)
    app.include_router(delivery_previews.router)
    app.include_router(delivery_archive.router)
    ui.refine_openapi(app, demo_order_id=DEMO_ORDER_ID if settings.sandbox_mode else None)
    return app
