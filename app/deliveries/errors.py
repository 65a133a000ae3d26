"""The errors of deliveries that the routes answer with (the one JSON error shape)."""

from __future__ import annotations

from app.core.errors import Gone, NotFound
from app.deliveries.models import DeliveryRecord


class DeliveryGone(Gone):
    """The link expired or was revoked."""

    code = "delivery_gone"


class UnknownDelivery(NotFound):
    code = "unknown_delivery"

    def __init__(self) -> None:
        super().__init__("No such delivery, or it belongs to another credential.")


class UnknownLink(NotFound):
    code = "unknown_link"

    def __init__(self) -> None:
        super().__init__("This delivery link does not exist.")


def gone(record: DeliveryRecord) -> None:
    """Raises:
    DeliveryGone: the delivery was revoked or has expired."""
    if record.revoked_at is not None:
        raise DeliveryGone("This delivery was withdrawn by the photographer.")
    if record.is_expired():
        raise DeliveryGone("This delivery link has expired; ask the photographer for a new one.")
