"""A hostile fake of the Autoenhance API on loopback: it answers exactly the bytes a test scripts.

Unlike the sandbox it speaks raw HTTP/1.1 over a socket, so it can do what no ASGI server
lets an app do: end a body without Content-Length by closing the connection, answer a status
with any body, or put arbitrary JSON (lone surrogates included) in an order. Every request's
raw target is recorded, so a test sees exactly which path and query reached the upstream.

One instance per test: nothing is shared between tests.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from PIL import Image

MAX_REQUEST_HEAD = 64 * 1024


@dataclass
class Answer:
    """One scripted HTTP answer. `length=False` omits Content-Length: the body then ends
    when the connection closes (HTTP/1.1 close-delimited)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: bool = True
    reason: str = "Scripted"


def jpeg(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def image_answer(body: bytes, **extra: Any) -> Answer:
    return Answer(body=body, headers={"Content-Type": "image/jpeg"}, **extra)


def json_answer(status: int, payload: Any) -> Answer:
    # ensure_ascii: a lone surrogate travels as a \udc80 escape, as JSON allows.
    body = json.dumps(payload, ensure_ascii=True).encode("ascii")
    return Answer(status=status, body=body, headers={"Content-Type": "application/json"})


class HostileUpstream:
    """`orders[order_id]` is the OrderOut JSON served for that order (or an `Answer` sent
    as it is); `images[image_id]` the answer (or list of answers, one per request, the last
    repeating) to its `/enhanced`."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any] | Answer] = {}
        self.images: dict[str, Answer | list[Answer]] = {}
        self._requests: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def requests(self) -> list[str]:
        """Raw request targets (path and query, as sent on the wire), oldest first."""
        with self._lock:
            return list(self._requests)

    def __enter__(self) -> HostileUpstream:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _answer_for(self, target: str) -> Answer:
        path = target.split("?", 1)[0]
        parts = path.split("/")
        # ["", "v3", "orders", <id>] or ["", "v3", "images", <id>, "enhanced"]
        if len(parts) == 4 and parts[1:3] == ["v3", "orders"]:
            order = self.orders.get(unquote(parts[3]))
            if isinstance(order, Answer):
                return order
            if order is not None:
                return json_answer(200, order)
        if len(parts) == 5 and parts[1:3] == ["v3", "images"] and parts[4] == "enhanced":
            with self._lock:
                scripted = self.images.get(unquote(parts[3]))
                if isinstance(scripted, list):
                    return scripted.pop(0) if len(scripted) > 1 else scripted[0]
                if scripted is not None:
                    return scripted
        return json_answer(404, {"message": "Not found", "detail": {}})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request_line = head[:MAX_REQUEST_HEAD].split(b"\r\n", 1)[0].decode("latin-1")
        target = request_line.split(" ")[1] if request_line.count(" ") >= 2 else ""
        with self._lock:
            self._requests.append(target)
        answer = self._answer_for(target)
        lines = [f"HTTP/1.1 {answer.status} {answer.reason}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in answer.headers.items()]
        if answer.length:
            lines.append(f"Content-Length: {len(answer.body)}")
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
