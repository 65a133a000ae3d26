"""Callback receivers on loopback: a well-behaved one (an ASGI app, to run under uvicorn) and
hostile ones speaking raw HTTP/1.1 over a socket, so that an answer can be as large or as slow
as a misbehaving receiver makes it."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Mode = Literal["huge", "slow_headers", "slow_body"]
CHUNK = 64 * 1024


class HostileReceiver:
    """Answers every POST in one of three ways, counting what it managed to send.

    - `huge`: a 200 with a `size`-byte body, written as fast as the client takes it;
    - `slow_headers`: a 204 whose headers arrive one byte per `interval` (`size` bytes long);
    - `slow_body`: a 200 whose `size`-byte body arrives one byte per `interval`.

    Trickling stops early when `release` is set (the answer is then completed at once) or when
    the client hangs up (counted in `cut_off`).
    """

    def __init__(self, mode: Mode, *, size: int, interval: float = 0.05) -> None:
        self.mode = mode
        self.size = size
        self.interval = interval
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0
        self.answers_done = 0  # answers sent completely
        self.cut_off = 0  # answers the client hung up on
        self.bytes_sent = 0
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver._handle(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> HostileReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, attribute: str, value: int, *, timeout: float = 30.0) -> None:
        """Poll until `attribute` reaches `value`."""
        deadline = time.monotonic() + timeout
        while getattr(self, attribute) < value:
            if time.monotonic() > deadline:
                raise AssertionError(f"{attribute} stayed {getattr(self, attribute)} < {value}")
            time.sleep(0.02)

    def _count(self, attribute: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, attribute, getattr(self, attribute) + amount)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        if not _read_request(conn):
            return
        self._count("connections")
        try:
            if self.mode == "huge":
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.size}\r\n\r\n".encode())
                block = b"x" * CHUNK
                left = self.size
                while left > 0:
                    piece = block[: min(CHUNK, left)]
                    conn.sendall(piece)
                    self._count("bytes_sent", len(piece))
                    left -= len(piece)
            elif self.mode == "slow_headers":
                conn.sendall(b"HTTP/1.1 204 No Content\r\nX-Slow: ")
                self._trickle(conn)
                conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
            else:
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.size}\r\n\r\n".encode())
                sent = self._trickle(conn)
                conn.sendall(b"a" * (self.size - sent))
            self._count("answers_done")
        except OSError:
            self._count("cut_off")

    def _trickle(self, conn: socket.socket) -> int:
        sent = 0
        while sent < self.size and not self.release.wait(self.interval):
            conn.sendall(b"a")
            sent += 1
            self._count("bytes_sent")
        return sent


def _read_request(conn: socket.socket) -> bool:
    """Read one request (headers and a Content-Length body); False if the client left."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
    except OSError:
        return False
    return True


class Receiver:
    """A callback receiver on loopback that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.event = threading.Event()

        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            self.event.set()
            return Response(status_code=204)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
