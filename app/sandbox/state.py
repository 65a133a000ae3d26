"""Everything one sandbox instance holds, and how it goes back to its start state.

The state is built with the app rather than in the lifespan: in-process clients
(`httpx.ASGITransport`) never run the lifespan, yet must find a working sandbox.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from app.sandbox.config import SandboxConfig
from app.sandbox.faults import FaultBook
from app.sandbox.imaging import RenderCache
from app.sandbox.processing import Processor, WebhookSender
from app.sandbox.store import Store

logger = logging.getLogger("app.sandbox")

REQUEST_LOG_SIZE = 10_000


def key_tag(api_key: str | None) -> str | None:
    """A stand-in for an API key that the log may hold: a short SHA-256 digest, never the key."""
    if not api_key:
        return None
    return hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass
class RequestLog:
    """The most recent API requests, for tests to assert on. Never holds key values.

    Each entry is filed under a digest of the key it came with (`key_tag`), so a caller that
    uses its own key reads only its own requests: a request still in flight from someone else
    never shows up in its log. An `/assets/<token>` leg carries no key; it is filed under the
    key of the download whose redirect issued the token.
    """

    entries: deque[tuple[str | None, dict[str, Any]]] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE)
    )
    asset_tags: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def record(self, entry: dict[str, Any], *, tag: str | None = None) -> None:
        self.entries.append((tag, entry))

    def remember_asset(self, token: str, tag: str) -> None:
        """File the later `/assets/<token>` request under the key that was redirected there."""
        self.asset_tags[token] = tag
        while len(self.asset_tags) > REQUEST_LOG_SIZE:
            self.asset_tags.popitem(last=False)

    def asset_tag(self, token: str) -> str | None:
        return self.asset_tags.get(token)

    def list(self, api_key: str | None = None) -> list[dict[str, Any]]:
        """Entries oldest first; only those made with `api_key` when it is given."""
        if api_key is None:
            return [entry for _, entry in self.entries]
        wanted = key_tag(api_key)
        return [entry for tag, entry in self.entries if tag == wanted]

    def clear(self, api_key: str | None = None) -> None:
        """Forget every entry, or only those made with `api_key`."""
        if api_key is None:
            self.entries.clear()
            self.asset_tags.clear()
            return
        wanted = key_tag(api_key)
        kept = [(tag, entry) for tag, entry in self.entries if tag != wanted]
        self.entries = deque(kept, maxlen=REQUEST_LOG_SIZE)


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
