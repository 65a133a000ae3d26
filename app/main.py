"""Application factory and lifespan.

`create_app(settings)` builds the FastAPI application; the lifespan owns every long-lived
resource — the upstream client and its HTTP clients, the fair limiter, the archive cache, the
archive store (`ARCHIVE_STORE`), the job service, the operations resources (rate limits,
readiness probe, stats), and in sandbox mode the embedded emulator — and closes them on
shutdown. Handlers read them from `request.state` (see `app.api.deps`).
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
from app.core.config import Settings
from app.core.files import private_dir
from app.core.keys import service_keys
from app.core.logging import configure_logging
from app.core.security import Signer, operator_credential
from app.core.sentry import init_sentry
from app.core.sessions import SessionStore, open_sessions
from app.deliveries.runtime import open_deliveries
from app.deliveries.service import DeliveryService
from app.imaging.decoding import DecodingPolicy
from app.imaging.pool import DecodePool
from app.imaging.presets import Preset, load_presets
from app.jobs.runtime import open_jobs
from app.jobs.service import JobService
from app.sandbox import DEMO_ORDER_ID
from app.services.downloads import Downloads
from app.services.fairness import FairLimiter
from app.services.rendering import Renderer
from app.storage import ArchiveStore, open_store
from app.upstream.client import AutoenhanceClient
from app.upstream.factory import build_upstream
from app.web.handlers import install_error_handlers
from app.web.middleware import install_middleware
from app.web.ops import Operations, operations

logger = logging.getLogger("app")

# Base URL under which the embedded sandbox answers inside the process.
EMBEDDED_SANDBOX_BASE = "http://sandbox.internal/v3"


class State(TypedDict):
    settings: Settings
    http: httpx.AsyncClient
    upstream: AutoenhanceClient
    limiter: FairLimiter
    store: ArchiveStore
    downloads: Downloads
    decoder: DecodePool  # every image decode (thumbnails, renders)
    signer: Signer  # signed links
    session_signer: Signer  # administrator sessions
    sessions: SessionStore
    spool_dir: Path
    jobs: JobService
    deliveries: DeliveryService
    ops: Operations


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
    private_dir(settings.data_dir)
    async with (
        _upstream_transport(settings) as (transport, base_url),
        contextlib.AsyncExitStack() as resources,
    ):
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
    """Build the state; whatever needs closing is pushed onto `resources`."""
    keys = service_keys(settings)
    upstream_clients = build_upstream(settings, base_url=base_url, transport=transport)
    http, upstream = upstream_clients.http, upstream_clients.client
    limiter = FairLimiter(settings.upstream_max_connections)
    spool_dir = private_dir(settings.data_dir / "spool")
    store = open_store(settings)
    resources.push_async_callback(store.aclose)
    for client in upstream_clients.http_clients:
        await resources.enter_async_context(client)
    decoder = DecodePool(
        workers=settings.decode_workers,
        queue=settings.decode_queue,
        policy=DecodingPolicy(
            max_scans=settings.decode_max_scans, deadline=settings.decode_deadline
        ),
    )
    resources.callback(decoder.close)
    renderer = Renderer(
        decoder, concurrency=settings.decode_workers, max_pixels=settings.render_max_pixels
    )
    job_service = await resources.enter_async_context(
        open_jobs(
            settings,
            upstream=upstream,
            limiter=limiter,
            keys=keys,
            spool_dir=spool_dir,
            archive_store=store,
            renderer=renderer,
            presets=presets,
        )
    )
    sessions = await resources.enter_async_context(open_sessions(settings))

    delivery_service = await resources.enter_async_context(open_deliveries(settings, keys=keys))
    ops_resources = await resources.enter_async_context(
        operations(
            settings,
            http=http,
            upstream_base=base_url,
            operator_key=operator_credential(settings).api_key,
            store=store,
            breaker=upstream.breaker,
        )
    )
    downloads = Downloads(
        settings=settings,
        upstream=upstream,
        limiter=limiter,
        spool_dir=spool_dir,
        store=store,
        renderer=renderer,
    )
    return State(
        settings=settings,
        http=http,
        upstream=upstream,
        limiter=limiter,
        store=store,
        downloads=downloads,
        decoder=decoder,
        signer=Signer(keys.links),
        session_signer=Signer(keys.sessions),
        sessions=sessions,
        spool_dir=spool_dir,
        jobs=job_service,
        deliveries=delivery_service,
        ops=ops_resources,
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
        version="1.0.0",
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
