"""Stop waiting when the client leaves: `app.web.disconnect`, with a scripted ASGI receive."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from app.web.disconnect import (
    CLIENT_CLOSED_REQUEST,
    ClientLeft,
    unless_client_leaves,
    until_disconnected,
)

BODY: Message = {"type": "http.request", "body": b"", "more_body": False}
GONE: Message = {"type": "http.disconnect"}


def _request(messages: asyncio.Queue[Message]) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    return Request(scope, messages.get)


class Made:
    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


class Hanging:
    """Work that waits for ever, and says when it started and when it was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self) -> str:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "never"


async def test_work_that_finishes_first_is_returned() -> None:
    messages: asyncio.Queue[Message] = asyncio.Queue()
    messages.put_nowait(BODY)

    async def work() -> str:
        return "done"

    assert await unless_client_leaves(_request(messages), work()) == "done"


async def test_a_client_that_leaves_cancels_the_work_and_gets_499() -> None:
    messages: asyncio.Queue[Message] = asyncio.Queue()
    messages.put_nowait(BODY)
    work = Hanging()
    waiting = asyncio.ensure_future(unless_client_leaves(_request(messages), work()))
    await work.started.wait()
    messages.put_nowait(GONE)
    with pytest.raises(ClientLeft) as left:
        await waiting
    assert left.value.status_code == CLIENT_CLOSED_REQUEST == 499
    assert work.cancelled.is_set()


async def test_a_client_gone_before_its_body_is_read_gets_499_and_no_work_starts() -> None:
    messages: asyncio.Queue[Message] = asyncio.Queue()
    messages.put_nowait(GONE)
    ran = False

    async def work() -> str:
        nonlocal ran
        ran = True
        return "never"

    with pytest.raises(ClientLeft):
        await unless_client_leaves(_request(messages), work())
    assert await until_disconnected(_request(_gone()), _made()) is None
    assert not ran


def _gone() -> asyncio.Queue[Message]:
    messages: asyncio.Queue[Message] = asyncio.Queue()
    messages.put_nowait(GONE)
    return messages


async def _made() -> Made:
    return Made()


async def test_what_the_work_made_as_the_client_left_is_closed() -> None:
    messages: asyncio.Queue[Message] = asyncio.Queue()
    messages.put_nowait(BODY)
    made = Made()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> Made:
        # Finishes all the same when cancelled (as a build that was writing its last bytes).
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
        return made

    waiting = asyncio.ensure_future(until_disconnected(_request(messages), work()))
    await started.wait()
    messages.put_nowait(GONE)
    assert await waiting is None
    assert cancelled.is_set()
    assert made.closed


async def test_a_cancelled_request_cancels_its_work() -> None:
    messages: asyncio.Queue[Message] = asyncio.Queue()
    messages.put_nowait(BODY)
    work = Hanging()
    waiting = asyncio.ensure_future(unless_client_leaves(_request(messages), work()))
    await work.started.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert work.cancelled.is_set()
