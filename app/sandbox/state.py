"""Everything one sandbox instance holds, and how it goes back to its start state.

The state is built with the app rather than in the lifespan: in-process clients
(`httpx.ASGITransport`) never run the lifespan, yet must find a working sandbox.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from app.sandbox.config import SandboxConfig
from app.sandbox.faults import FaultBook
from app.sandbox.imaging import RenderCache
from app.sandbox.processing import Processor, WebhookSender
from app.sandbox.store import Store

logger = logging.getLogger("app.sandbox")

REQUEST_LOG_SIZE = 10_000


@dataclass
class RequestLog:
    """The most recent API requests, for tests to assert on. Never holds key values."""

    entries: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))

    def record(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()


class SandboxState:
    """Store, faults, processing, render cache and request log of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.faults = FaultBook()
        self.log = RequestLog()
        self.cache = RenderCache(config.render_cache_bytes)
        webhooks = (
            WebhookSender(config.webhook_url, config.webhook_auth) if config.webhook_url else None
        )
        self.store = self._new_store()
        self.processor = Processor(
            store=self.store, faults=self.faults, delay=config.processing_delay, webhooks=webhooks
        )
        self._seeded = False
        for fault in config.start_faults():
            self.faults.add(fault)

    def _new_store(self) -> Store:
        return Store(
            credits=self.config.credits,
            max_orders=self.config.max_orders,
            max_bytes=self.config.max_stored_bytes,
        )

    def ensure_seeded(self) -> None:
        """Create the demo order once (idempotent; called at start-up and on first request)."""
        if self._seeded:
            return
        self._seeded = True
        if not self.config.seed_demo:
            return
        order = self.store.seed_demo(self.config.sample_dir)
        if not order.image_ids:
            logger.warning("no JPEGs in %s; the demo order is empty", self.config.sample_dir)

    def reset(self) -> None:
        """Back to the start state: fresh account, start-up faults, empty log and cache."""
        self.processor.cancel_all()
        self.store = self._new_store()
        self.processor.store = self.store
        self.faults.clear()
        for fault in self.config.start_faults():
            self.faults.add(fault)
        self.log.clear()
        self.cache.clear()
        self._seeded = False
        self.ensure_seeded()
