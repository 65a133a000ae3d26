"""Fault injection: what can go wrong between a client and the Autoenhance API, on demand.

A fault is a JSON object with a `kind` and optional targeting fields:

- `scope`: which requests it applies to —
  `"order"`: every `/v3` route except image downloads (orders, image metadata, registration);
  `"enhanced"`: `/v3/images/{id}/enhanced` and `/v3/images/{id}/original`; body faults
  (bandwidth, mid-body stall, reset, short/long body) scoped here also follow a download's
  302 to its `/assets/...` URL, because that is where the image bytes travel;
  `"asset"`: only `/assets/<token>` (the redirect target);
  `"any"` (default): all of the above plus `/uploads/...`. `/_sandbox/*` is never affected.
- `image_ids`: only requests about these images (orders routes never match).
- `api_keys`: only requests whose `x-api-key` is one of these (a request without a key never
  matches): a fault that belongs to one caller's key, such as its own rate limit.
- `count`: how many requests (or images, for `stuck`) it affects before it retires; absent =
  until cleared.

Kinds and their parameters:

- `latency` (`ms`): wait before answering.
- `bandwidth` (`bytes_per_s`): send the response body at this rate.
- `status` (`status`: 401/429/500/502/503, `retry_after` seconds): answer with that error instead;
  429 and 503 carry a `Retry-After` header.
- `stall` (`seconds`, `phase`): hang; `"before"` = before the status line, `"mid_body"` = after
  the headers and half of the body.
- `reset` (`fraction`, default 0.5): send the headers with the full Content-Length, that fraction
  of the body, then abort the connection. In-process (ASGITransport) the client's transport
  raises `InjectedAbort` instead, as it does for any exception escaping an app.
- `short_body` (`missing_bytes`): end the response that many bytes short of its Content-Length.
  uvicorn notices, logs nothing for injected faults, and closes the connection, so a client sees
  a truncated body followed by EOF (in-process via ASGITransport the short body is delivered
  as if complete).
- `long_body` (`extra_bytes`): try to send more bytes than the Content-Length. uvicorn refuses to
  write past the declared length: the wire carries exactly Content-Length bytes, then the
  connection is closed instead of kept alive. In-process the extra bytes do reach the client.
- `redirect_loop`: 302 back to the same URL, forever.
- `bad_redirect` (`location`, default `file:///etc/passwd`): 302 to a non-http(s) URL.
- `down` (`retry_after`): refuse every matching request with 503. (Closing the connection
  without any answer is not possible from inside an ASGI app: uvicorn answers 500 for an app
  that fails before its first message.)
- `wrong_status` (`status`: 202/204/206/300/304): a successful answer goes out with that
  status instead of 200, as a misbehaving upstream or proxy might send it: 202 and 300 (with
  no `Location`) keep the image's bytes, 206 sends its first half with a `Content-Range`, 204
  and 304 no body at all. A client must not take any of them for the image.
- `html_page` (`content_type`, default `text/html; charset=utf-8`): a successful answer is
  replaced by a 200 carrying an HTML page (a login wall, a CDN error page); set
  `content_type` to `image/jpeg` for a page that even lies about its type.
- `stuck` (`status`: `"processing"` | `"error"`, `status_reason`): matching images stop at that
  status instead of becoming processed; listed images that are already processed switch to it
  at once. A `"processing"` hold ends (and the image completes) when the fault is cleared.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["order", "enhanced", "asset", "any"]
RouteKind = Literal["order", "enhanced", "asset", "upload"]


class _FaultBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope = "any"
    image_ids: list[str] | None = None
    api_keys: list[str] | None = None
    count: int | None = Field(default=None, ge=1)


class LatencyFault(_FaultBase):
    kind: Literal["latency"]
    ms: int = Field(ge=0, le=600_000)


class BandwidthFault(_FaultBase):
    kind: Literal["bandwidth"]
    bytes_per_s: int = Field(ge=1)


class StatusFault(_FaultBase):
    kind: Literal["status"]
    status: Literal[401, 429, 500, 502, 503] = 500
    retry_after: int = Field(default=1, ge=0, le=86_400)


class StallFault(_FaultBase):
    kind: Literal["stall"]
    seconds: float = Field(gt=0, le=3600)
    phase: Literal["before", "mid_body"] = "mid_body"


class ResetFault(_FaultBase):
    kind: Literal["reset"]
    fraction: float = Field(default=0.5, ge=0, lt=1)


class ShortBodyFault(_FaultBase):
    kind: Literal["short_body"]
    missing_bytes: int = Field(default=100, ge=1)


class LongBodyFault(_FaultBase):
    kind: Literal["long_body"]
    extra_bytes: int = Field(default=100, ge=1, le=1024 * 1024)


class RedirectLoopFault(_FaultBase):
    kind: Literal["redirect_loop"]


class BadRedirectFault(_FaultBase):
    kind: Literal["bad_redirect"]
    location: str = Field(default="file:///etc/passwd", min_length=1, max_length=2048)


class DownFault(_FaultBase):
    kind: Literal["down"]
    retry_after: int | None = Field(default=None, ge=0, le=86_400)


class WrongStatusFault(_FaultBase):
    kind: Literal["wrong_status"]
    status: Literal[202, 204, 206, 300, 304] = 202


class HtmlPageFault(_FaultBase):
    kind: Literal["html_page"]
    content_type: str = Field(default="text/html; charset=utf-8", min_length=1, max_length=200)


class StuckFault(_FaultBase):
    kind: Literal["stuck"]
    status: Literal["processing", "error"] = "processing"
    status_reason: str | None = Field(default=None, max_length=1000)


Fault = Annotated[
    LatencyFault
    | BandwidthFault
    | StatusFault
    | StallFault
    | ResetFault
    | ShortBodyFault
    | LongBodyFault
    | RedirectLoopFault
    | BadRedirectFault
    | DownFault
    | StuckFault
    | WrongStatusFault
    | HtmlPageFault,
    Field(discriminator="kind"),
]

# Faults that reshape a response body; everything else (except `stuck`) acts before the answer.
BodyFault = (
    BandwidthFault
    | StallFault
    | ResetFault
    | ShortBodyFault
    | LongBodyFault
    | WrongStatusFault
    | HtmlPageFault
)
_BODY_KINDS = frozenset(
    {"bandwidth", "reset", "short_body", "long_body", "wrong_status", "html_page"}
)


def is_body_fault(fault: Fault) -> bool:
    """True for faults applied while the body is sent (a mid-body stall is one)."""
    if isinstance(fault, StallFault):
        return fault.phase == "mid_body"
    return fault.kind in _BODY_KINDS


@dataclass
class ActiveFault:
    """A fault in force, with its id and how many more requests it may affect."""

    id: int
    fault: Fault
    remaining: int | None

    def describe(self) -> dict[str, object]:
        return {"id": self.id, "remaining": self.remaining, **self.fault.model_dump()}


def _scope_matches(fault: Fault, route: RouteKind, *, body: bool) -> bool:
    if fault.scope == "any":
        return True
    if fault.scope == route:
        return True
    # A download's bytes travel on the asset leg when redirects are on.
    return body and fault.scope == "enhanced" and route == "asset"


class FaultBook:
    """The faults in force. Not thread-safe: used from the event loop only.

    It also tracks the waits that faults inject (latency, stalls, throttling): clearing the
    faults ends them, so a request stalled for a caller that has moved on stops at once
    instead of running out its stall.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._active: list[ActiveFault] = []
        self._waits: set[asyncio.Future[None]] = set()

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds` for a fault; False when the faults were cleared meanwhile."""
        waker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waits.add(waker)
        try:
            await asyncio.wait_for(waker, seconds)
        except TimeoutError:
            return True
        finally:
            self._waits.discard(waker)
        return False

    def waiting(self) -> int:
        """How many injected waits are running now."""
        return len(self._waits)

    def add(self, fault: Fault) -> ActiveFault:
        """Put `fault` in force and return its record."""
        active = ActiveFault(id=next(self._ids), fault=fault, remaining=fault.count)
        self._active.append(active)
        return active

    def remove(self, fault_id: int) -> bool:
        """Retire one fault; False when no fault has that id."""
        before = len(self._active)
        self._active = [a for a in self._active if a.id != fault_id]
        return len(self._active) != before

    def clear(self) -> None:
        """Retire every fault and end the waits they injected."""
        self._active.clear()
        for waker in list(self._waits):
            waker.get_loop().call_soon_threadsafe(_wake, waker)

    def active(self) -> list[ActiveFault]:
        return list(self._active)

    def is_active(self, fault_id: int) -> bool:
        return any(a.id == fault_id for a in self._active)

    def take(
        self, route: RouteKind, image_id: str | None, *, body: bool, api_key: str | None = None
    ) -> list[Fault]:
        """Return, and charge one use of, the faults that apply to this request.

        `body=False` selects faults acting before the answer, `body=True` those reshaping a
        successful body. A fault whose `count` reaches zero retires.
        """
        taken: list[Fault] = []
        for active in list(self._active):
            fault = active.fault
            if fault.kind == "stuck" or is_body_fault(fault) != body:
                continue
            if not _scope_matches(fault, route, body=body):
                continue
            if fault.image_ids is not None and image_id not in fault.image_ids:
                continue
            if fault.api_keys is not None and api_key not in fault.api_keys:
                continue
            taken.append(fault)
            self._charge(active)
        return taken

    def take_stuck(self, image_id: str) -> tuple[int, StuckFault] | None:
        """The first `stuck` fault covering `image_id` (charged once), with its id."""
        for active in list(self._active):
            fault = active.fault
            if not isinstance(fault, StuckFault):
                continue
            if fault.image_ids is not None and image_id not in fault.image_ids:
                continue
            if active.remaining == 0:
                continue
            # A spent stuck fault stays in force: it still holds the images it caught.
            self._charge(active, retire=False)
            return active.id, fault
        return None

    def _charge(self, active: ActiveFault, *, retire: bool = True) -> None:
        if active.remaining is None:
            return
        active.remaining -= 1
        if retire and active.remaining <= 0:
            self._active = [a for a in self._active if a is not active]


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)
