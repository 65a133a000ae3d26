"""Stop waiting for work when the client has left.

Starlette runs a handler to the end whether or not its client is still there; only streamed
bodies notice a disconnect. A handler that awaits costly work before it can answer (a decode,
an archive built whole, the rest of an archive a resume needs) wraps it here: the work is
cancelled as soon as the client's connection closes, and the request ends with 499 (nginx's
"client closed request"), which nobody receives but the access log and metrics record. A
client that leaves is not an error: nothing is logged but the access line.

`unless_client_leaves` raises `ClientLeft` (answered 499 by the error handler);
`until_disconnected` returns None instead, for a handler that answers the 499 itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from starlette.requests import ClientDisconnect, Request

from app.core.errors import AppError

# What the access log and metrics show for a request whose client left before any answer.
CLIENT_CLOSED_REQUEST = 499

LEFT = "The client closed the connection before the answer was ready."

T = TypeVar("T")


class Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=Closable)


class ClientLeft(AppError):
    status_code = CLIENT_CLOSED_REQUEST
    code = "client_closed_request"


async def unless_client_leaves(
    request: Request,
    work: Awaitable[T],
    *,
    discard: Callable[[T], Awaitable[object]] | None = None,
) -> T:
    """The result of `work`, unless the client disconnects first: then `work` is cancelled
    and waited for, and whatever it made all the same (it finished as the client left) is
    handed to `discard`. If this request is cancelled (the server stops), so is `work`.

    The request's body is read (and kept, as `request.body()` does) before `work` starts.

    Raises:
        ClientLeft: the client disconnected before `work` finished.
        whatever `work` raises while the client is there.
    """
    # The body is read first, so that the watcher waits only for the disconnect: a receive
    # that completes while it is cancelled (inside `asyncio.wait_for`, as the body deadline
    # middleware waits for body parts) would swallow the cancellation on Python 3.11.
    try:
        await request.body()
    except ClientDisconnect:
        _abandon(work)
        raise ClientLeft(LEFT) from None
    except BaseException:
        _abandon(work)
        raise
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnected(request), name="client-disconnect-watch")
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watcher.cancel()
        await asyncio.wait({task, watcher})
        raise
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    if task in done:
        return task.result()
    task.cancel()
    # A cancelled task has no result until it has unwound: wait for that, then drop whatever
    # it made as the client left (nobody receives it).
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is None and discard is not None:
        await discard(task.result())
    raise ClientLeft(LEFT)


async def until_disconnected(request: Request, work: Awaitable[C]) -> C | None:
    """The result of `work`, or None if the client disconnects first (see
    `unless_client_leaves`); what `work` made as the client left is closed."""
    try:
        return await unless_client_leaves(request, work, discard=_close)
    except ClientLeft:
        return None


def _abandon(work: Awaitable[object]) -> None:
    if asyncio.iscoroutine(work):
        work.close()
    elif isinstance(work, asyncio.Future):
        work.cancel()


async def _close(made: Closable) -> None:
    await made.aclose()


async def _disconnected(request: Request) -> None:
    task = asyncio.current_task()
    while (await request.receive())["type"] != "http.disconnect":
        # asyncio.wait_for (which a receive wrapper may use) can swallow a cancellation that
        # meets a message arriving: stop anyway once cancelled, or this waits for ever.
        if task is not None and task.cancelling():
            return
