"""The interface both delivery stores implement, and the error they raise when down.

Deliveries live where jobs live: SQLite in `DATA_DIR` by default (`app.deliveries.sqlite`),
Redis when `REDIS_URL` is set (`app.deliveries.redis`), so every node sees the same
deliveries and a revocation takes effect on all of them at once. Every change goes through
`update`, an atomic read-modify-write (a SQLite write transaction; WATCH/MULTI on Redis):
counting downloads against `max_downloads` and merging served byte ranges are correct however
many nodes serve one delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from app.core.errors import ServiceUnavailable
from app.deliveries.models import DeliveryRecord

# Returns True when the record was changed and must be written back.
Mutation = Callable[[DeliveryRecord], bool]

# Seconds a caller is asked to wait after the store failed to answer.
STORE_RETRY_AFTER = 5


class DeliveriesUnavailable(ServiceUnavailable):
    """The delivery store cannot be reached (Redis down): 503, retry shortly."""

    code = "deliveries_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Deliveries are unreachable right now; try again shortly.",
            headers={"Retry-After": str(STORE_RETRY_AFTER)},
        )


class DeliveryStore(Protocol):
    """Delivery records by id, by token hash and by order.

    Every method raises `DeliveriesUnavailable` when the store cannot be reached.
    """

    name: str

    async def insert(self, record: DeliveryRecord) -> None:
        """Store a new record."""

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        """The record, or None when unknown."""

    async def by_token(self, token_hash: str) -> DeliveryRecord | None:
        """The record whose link token hashes to `token_hash`, or None."""

    async def update(self, delivery_id: str, mutate: Mutation) -> DeliveryRecord | None:
        """Apply `mutate` atomically; the record as stored after it, None if unknown."""

    async def of_order(self, owner: str, order_id: str) -> list[DeliveryRecord]:
        """The deliveries `owner` made of `order_id`, oldest first."""

    async def aclose(self) -> None:
        """Release connections."""
