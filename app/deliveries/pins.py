"""What one PIN given for a delivery does to its record: right, wrong (counted, an event), or
refused while the link is locked out after `attempts` wrong PINs in a row. Run inside the
store's atomic `update`, so that guesses on several nodes are all counted."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from app.deliveries.models import DeliveryRecord, pin_hash

PinOutcome = Literal["right", "wrong", "locked"]


@dataclass(frozen=True, slots=True)
class PinAttempt:
    outcome: PinOutcome
    changed: bool = False  # whether the record must be written
    locked_until: float = 0.0  # with `locked`: when PINs are taken again


def attempt(
    record: DeliveryRecord, pin: str, *, attempts: int, lockout: float, now: float
) -> PinAttempt:
    """Try `pin` on `record` at time `now`; a wrong one counts, and the `attempts`-th in a
    row locks PINs out for `lockout` seconds. A delivery without a PIN takes any."""
    if record.pin_hash is None or record.pin_salt is None:
        return PinAttempt("right")
    if record.pin_locked_until is not None and record.pin_locked_until > now:
        return PinAttempt("locked", locked_until=record.pin_locked_until)
    if hmac.compare_digest(pin_hash(pin, record.pin_salt), record.pin_hash):
        if record.pin_failures == 0:
            return PinAttempt("right")
        record.pin_failures = 0
        return PinAttempt("right", changed=True)
    record.pin_failures += 1
    record.event("pin_failed")
    if record.pin_failures < attempts:
        return PinAttempt("wrong", changed=True)
    record.pin_failures = 0
    record.pin_locked_until = now + lockout
    record.event("pin_locked")
    return PinAttempt("locked", changed=True, locked_until=record.pin_locked_until)
