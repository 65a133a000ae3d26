"""Stop waiting for work when the client has left.

Starlette runs a handler to the end whether or not its client is still there; only streamed
bodies notice a disconnect. A handler that awaits costly work (a decode) wraps it here: the
work is cancelled as soon as the client's connection closes, and the handler answers 499
(nginx's "client closed request"), which nobody receives but the access log records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from app.core.errors import AppError

T = TypeVar("T")


class ClientLeft(AppError):
    status_code = 499
    code = "client_closed_request"


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, unless the client disconnects first: then `work` is cancelled.

    The request's body is read (and kept, as `request.body()` does) before `work` starts.

    Raises:
        ClientLeft: the client disconnected before `work` finished.
        whatever `work` raises.
    """
    # The body is read first, so that the watcher waits only for the disconnect: a receive
    # that completes while it is cancelled (inside `asyncio.wait_for`, as the body deadline
    # middleware waits for body parts) would swallow the cancellation on Python 3.11.
    try:
        await request.body()
    except BaseException:
        work.close()
        raise
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    if task.cancelled() or not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientLeft("The client closed the connection before the answer was ready.")
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
