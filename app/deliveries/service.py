"""What the routes do with deliveries, whichever store holds them.

The photographer's side: `create`, `owned`, `of_order`, `change`, `revoke` — a delivery is
visible only to the owner of the credential that made it (`Credential.owner`), as jobs are.

The recipient's side: `for_token` finds the delivery of a link (404 unknown; 410 expired or
revoked, checked on every request so that a revocation on one node holds on all at once),
`check_pin` trades a PIN for a cookie value (`app.deliveries.pins`), `admit` decides whether
an archive answer may be sent (counting whole downloads against `max_downloads` atomically),
and `served` adds the byte ranges written to the recipient, which makes the delivery
`delivered` once they cover the archive (what both do to the record:
`app.deliveries.counting`). `delivery.opened` and
`delivery.completed` are sent once each, through the job callbacks' sender (signed, retried,
SSRF-guarded).

The token of a link never reaches this module's logs: records are named by `delivery_id`.
The errors the routes answer with are in `app.deliveries.errors`.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from app.core.config import Settings
from app.core.errors import TooManyRequests, Unauthorized
from app.core.logging import log_event
from app.core.security import Credential, Signer, operator_credential
from app.deliveries.counting import Admission, Verdict, add_served, admission, admitted
from app.deliveries.errors import DeliveryGone, UnknownDelivery, UnknownLink, gone
from app.deliveries.models import DeliveryRecord, new_token, pin_hash, token_hash
from app.deliveries.pins import PinAttempt, attempt
from app.deliveries.store import DeliveryStore
from app.jobs.callbacks import CallbackSender, iso
from app.jobs.keybox import KeyBox, KeyUnavailable

logger = logging.getLogger("app.deliveries")

CallbackEvent = Literal["delivery.opened", "delivery.completed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySpec:
    """What a photographer asks for; checked by the route (and the variants registry)."""

    recipient: str
    variants: list[str]
    images: list[str] | None = None
    expires_at: float | None = None
    pin: str | None = None
    max_downloads: int | None = None
    locked: bool = False
    message: str | None = None
    photographer: str | None = None
    callback_url: str | None = None


class DeliveryService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: DeliveryStore,
        keybox: KeyBox,
        signer: Signer,
        callbacks: CallbackSender,
    ) -> None:
        self.settings = settings
        self.store = store
        self._keybox = keybox
        self._signer = signer
        self._callbacks = callbacks

    # --- the photographer's side ----------------------------------------------------------

    def latest_expiry(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) + self.settings.delivery_max_ttl

    async def create(
        self,
        spec: DeliverySpec,
        *,
        owner: str,
        own_key: str | None,
        order_id: str,
        base_url: str,
    ) -> tuple[DeliveryRecord, str]:
        """Store a new delivery; returns it with its link token (never stored, never shown
        again). `own_key` is the creator's own Autoenhance key, stored sealed."""
        token = new_token()
        now = time.time()
        salt = secrets.token_hex(8) if spec.pin is not None else None
        record = DeliveryRecord(
            token_hash=token_hash(token),
            owner=owner,
            order_id=order_id,
            recipient=spec.recipient,
            photographer=spec.photographer,
            message=spec.message,
            variants=spec.variants,
            images=spec.images,
            created_at=now,
            expires_at=spec.expires_at or now + self.settings.delivery_default_ttl,
            pin_salt=salt,
            pin_hash=pin_hash(spec.pin, salt) if spec.pin is not None and salt else None,
            max_downloads=spec.max_downloads,
            locked=spec.locked,
            callback_url=spec.callback_url,
            sealed_key=self._keybox.seal(own_key) if own_key is not None else None,
            base_url=base_url,
        )
        await self.store.insert(record)
        log_event(
            logger,
            "delivery_created",
            "delivery {delivery_id} created for order {order_id}",
            delivery_id=record.delivery_id,
            order_id=order_id,
        )
        return record, token

    async def owned(self, delivery_id: str, *, owner: str) -> DeliveryRecord:
        """The delivery as its owner sees it.

        Raises:
            UnknownDelivery: no such delivery, or another owner's.
        """
        record = await self.store.get(delivery_id)
        if record is None or record.owner != owner:
            raise UnknownDelivery()
        return record

    async def of_order(self, order_id: str, *, owner: str) -> list[DeliveryRecord]:
        return await self.store.of_order(owner, order_id)

    async def change(
        self,
        delivery_id: str,
        *,
        owner: str,
        changes: dict[str, object],
    ) -> DeliveryRecord:
        """Apply `changes` (any of `expires_at`, `max_downloads`, `locked`, already checked).

        Raises:
            UnknownDelivery: no such delivery, or another owner's.
            DeliveryGone: it was revoked (a revoked link stays revoked).
        """
        await self.owned(delivery_id, owner=owner)

        def apply(record: DeliveryRecord) -> bool:
            if record.revoked_at is not None:
                return False
            for name, value in changes.items():
                setattr(record, name, value)
            record.event("changed", detail=", ".join(sorted(changes)))
            return True

        record = await self.store.update(delivery_id, apply)
        if record is None:
            raise UnknownDelivery()
        if record.revoked_at is not None:
            raise DeliveryGone("This delivery was revoked; it cannot be changed.")
        return record

    async def revoke(self, delivery_id: str, *, owner: str) -> DeliveryRecord:
        """Revoke the link: every node answers it with 410 from now on.

        Raises:
            UnknownDelivery: no such delivery, or another owner's.
        """
        await self.owned(delivery_id, owner=owner)

        def revoke(record: DeliveryRecord) -> bool:
            if record.revoked_at is not None:
                return False
            record.revoked_at = time.time()
            record.event("revoked")
            return True

        record = await self.store.update(delivery_id, revoke)
        if record is None:
            raise UnknownDelivery()
        return record

    # --- the recipient's side -------------------------------------------------------------

    async def for_token(self, token: str, *, opening: bool = True) -> DeliveryRecord:
        """The live delivery of a link; the first time it is opened is recorded (an event
        and the `delivery.opened` callback).

        Raises:
            UnknownLink: no delivery has this token.
            DeliveryGone: the delivery expired or was revoked.
        """
        record = await self.store.by_token(token_hash(token))
        if record is None:
            raise UnknownLink()
        gone(record)
        if opening and record.opened_at is None:
            first = False

            def open_(stored: DeliveryRecord) -> bool:
                nonlocal first
                first = stored.opened_at is None
                if first:
                    stored.opened_at = time.time()
                    stored.event("opened")
                return first

            record = await self.store.update(record.delivery_id, open_) or record
            if first:
                self._notify(record, "delivery.opened")
        return record

    def credential(self, record: DeliveryRecord) -> Credential:
        """The creator's credential, to fetch the order with.

        Raises:
            DeliveryGone: the sealed key can no longer be opened (the signing secret changed).
        """
        if record.sealed_key is None:
            return operator_credential(self.settings)
        try:
            return Credential.own_key(self._keybox.open(record.sealed_key))
        except KeyUnavailable:
            raise DeliveryGone(
                "This delivery can no longer be served; ask the photographer for a new link.",
                code="delivery_key_unavailable",
            ) from None

    def pin_cookie(self, record: DeliveryRecord) -> str:
        """The cookie value that proves the PIN was given (changes if the PIN would)."""
        return self._signer.mac(f"delivery-pin|{record.delivery_id}|{record.pin_hash}".encode())

    def pin_passed(self, record: DeliveryRecord, cookie: str | None) -> bool:
        """True when the delivery has no PIN or `cookie` proves it was given."""
        if record.pin_hash is None:
            return True
        return cookie is not None and hmac.compare_digest(cookie, self.pin_cookie(record))

    def require_pin(self, record: DeliveryRecord, cookie: str | None) -> None:
        """Raises:
        Unauthorized: the delivery has a PIN and this request has not proved it."""
        if not self.pin_passed(record, cookie):
            raise Unauthorized("This delivery is protected by a PIN.", code="pin_required")

    async def check_pin(self, record: DeliveryRecord, pin: str) -> str:
        """The cookie value for a right PIN. Failures are counted; past
        `DELIVERY_PIN_ATTEMPTS` in a row the link refuses every PIN for `DELIVERY_PIN_LOCKOUT`.

        Raises:
            TooManyRequests: the link is locked out (with Retry-After).
            Unauthorized: a wrong PIN.
        """
        settings = self.settings
        tried = PinAttempt("right")

        def try_pin(stored: DeliveryRecord) -> bool:
            nonlocal tried
            tried = attempt(
                stored,
                pin,
                attempts=settings.delivery_pin_attempts,
                lockout=settings.delivery_pin_lockout,
                now=time.time(),
            )
            return tried.changed

        stored = await self.store.update(record.delivery_id, try_pin) or record
        if tried.outcome == "locked":
            wait = max(1, int(tried.locked_until - time.time()) + 1)
            raise TooManyRequests(
                "Too many wrong PINs: this link refuses PINs for a while.",
                code="pin_locked",
                headers={"Retry-After": str(wait)},
            )
        if tried.outcome == "wrong":
            raise Unauthorized("That PIN is not right.", code="wrong_pin")
        return self.pin_cookie(stored)

    async def admit(
        self, record: DeliveryRecord, *, etag: str, variant: str, start: int | None
    ) -> Admission:
        """Whether an archive answer may be sent: `start` is the first byte of a partial
        answer (None: the whole archive). A partial answer of an archive this delivery has
        already served bytes of, and not yet in full, is a resume and never counts; any
        other answer is a new download, counted against `max_downloads` atomically
        (`app.deliveries.counting`).

        Raises:
            Forbidden: the limit of whole downloads is reached (`download_limit`).
            DeliveryGone: the delivery expired or was revoked meanwhile.
        """
        found: Verdict = "gone"

        def admit(stored: DeliveryRecord) -> bool:
            nonlocal found
            found = admitted(stored, etag=etag, variant=variant, start=start)
            return found != "gone"

        stored = await self.store.update(record.delivery_id, admit)
        return admission(stored or record, found if stored is not None else "gone")

    async def served(
        self,
        delivery_id: str,
        *,
        etag: str,
        variant: str,
        start: int,
        end: int,
        total: int | None,
    ) -> None:
        """Add `[start, end)` of archive `etag` (`total` bytes, when known) as written to the
        recipient; the first time an archive is covered, the delivery is `delivered`."""
        completed = False

        def add(stored: DeliveryRecord) -> bool:
            nonlocal completed
            completed = add_served(
                stored, etag=etag, variant=variant, start=start, end=end, total=total
            )
            return True

        record = await self.store.update(delivery_id, add)
        if record is not None and completed:
            log_event(
                logger,
                "delivery_completed",
                "delivery {delivery_id} delivered: {bytes} bytes of {variant}",
                delivery_id=delivery_id,
                bytes=record.completed.bytes if record.completed else 0,
                variant=variant,
            )
            self._notify(record, "delivery.completed")

    # --- callbacks --------------------------------------------------------------------------

    def callback_secret(self, record: DeliveryRecord) -> str:
        """The key `record`'s callbacks are signed with, for its creator to hand to the
        receiver (derived per delivery, as a job's is per job)."""
        return self._callbacks.key_for(record.delivery_id)

    def _notify(self, record: DeliveryRecord, event: CallbackEvent) -> None:
        if not record.callback_url:
            return
        self._callbacks.dispatch(
            record.callback_url,
            callback_payload(record, event),
            on_outcome=self._outcome_recorder(record.delivery_id, event),
        )

    def _outcome_recorder(
        self, delivery_id: str, event: CallbackEvent
    ) -> Callable[[str], Awaitable[None]]:
        async def record_outcome(outcome: str) -> None:
            def note(stored: DeliveryRecord) -> bool:
                stored.callback_outcome = f"{event}: {outcome}"
                return True

            await self.store.update(delivery_id, note)

        return record_outcome


def callback_payload(record: DeliveryRecord, event: CallbackEvent) -> dict[str, object]:
    """The JSON body of a delivery callback."""
    base = record.base_url.rstrip("/")
    completed = record.completed
    return {
        "event": event,
        "delivery_id": record.delivery_id,
        "order_id": record.order_id,
        "recipient": record.recipient,
        "status": record.status(),
        "opened_at": iso(record.opened_at),
        "delivered": None
        if completed is None
        else {
            "at": iso(completed.at),
            "variant": completed.variant,
            "bytes": completed.bytes,
            "etag": completed.etag,
        },
        "status_url": f"{base}/deliveries/{record.delivery_id}",
    }
