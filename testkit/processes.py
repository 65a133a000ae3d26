"""Real servers on loopback: sockets, launchers, waiting for them, stopping them, their RSS.

Every server gets its socket from the kernel (`bound_socket`: port 0) and is handed the socket
itself — uvicorn and the sandbox through `--fd` or `sockets=` — so no other process can take
the port between choosing it and binding it. redis-server is the exception: it cannot serve an
inherited TCP socket (`--port 0` turns TCP off), so `redis_server` retries on another port when
the one it picked was taken meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def bound_socket() -> socket.socket:
    """A listening TCP socket on a port of 127.0.0.1 that the kernel picked."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on which nothing listens, held for the block (bound, not listening: connecting
    is refused), so no other process can start listening on it meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield port_of(sock)


def free_port() -> int:
    """A port that was free a moment ago, for a command that must bind a port of its own (the
    shipped start commands read $PORT, nginx its configuration). Anything else started here
    gets a bound socket instead: another process could take this port before it is bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return port_of(sock)


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll `predicate` every `interval` seconds until it returns something truthy (and return
    that); fail after `timeout` seconds naming `what`. The way to wait for a condition: never a
    fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s")


def wait_until_listening(
    url: str, *, timeout: float = 20.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Poll `url` until it answers at all; fail early if `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early with code {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError as exc:
            last_error = exc
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last_error!r}")


def stop(process: subprocess.Popen[Any], *, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal a process (SIGTERM by default), then kill it if it has not exited in `timeout`."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL a process started in its own session, with its children."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop_group(process: subprocess.Popen[Any]) -> None:
    """SIGTERM a process started in its own session with its children; SIGKILL after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        kill_group(process)


def serve_on(
    command: list[str],
    *,
    env: dict[str, str],
    sock: socket.socket | None = None,
    output: IO[bytes] | int | None = None,
    new_session: bool = False,
) -> tuple[subprocess.Popen[Any], str]:
    """Start `command` (which takes `--fd N` last) on `sock` — a fresh bound socket by default
    — and return the process and its base URL. A caller that passes `sock` keeps it open,
    e.g. to restart a server on the same URL; a fresh one is closed here (the child has it)."""
    listener = sock or bound_socket()
    try:
        process = subprocess.Popen(
            [*command, "--fd", str(listener.fileno())],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=output,
            pass_fds=[listener.fileno()],
            start_new_session=new_session,
        )
        return process, f"http://127.0.0.1:{port_of(listener)}"
    finally:
        if sock is None:
            listener.close()


def start_web(
    env: dict[str, str],
    *args: str,
    sock: socket.socket | None = None,
    output: IO[bytes] | int | None = None,
) -> tuple[subprocess.Popen[Any], str]:
    """`python -m uvicorn app:app *args` in a session of its own, serving `sock` (see
    `serve_on`); returns the process and its base URL once `/health` answers. Stop it with
    `stop_group` (uvicorn's workers are its children)."""
    command = [sys.executable, "-m", "uvicorn", "app:app", *args]
    process, url = serve_on(command, env=env, sock=sock, output=output, new_session=True)
    try:
        wait_until_listening(f"{url}/health", process=process, timeout=60)
    except BaseException:
        stop_group(process)
        raise
    return process, url


@contextlib.contextmanager
def running(
    command: list[str],
    *,
    ready_url: str,
    env: dict[str, str] | None = None,
    output: IO[bytes] | int | None = subprocess.DEVNULL,
) -> Iterator[subprocess.Popen[Any]]:
    """Run a server that binds its own port (nginx) until the block ends; `ready_url` is
    polled until it answers."""
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=output, stderr=output
    )
    try:
        wait_until_listening(ready_url, process=process, timeout=30)
        yield process
    finally:
        stop(process, timeout=10)


@contextlib.contextmanager
def sandbox_process(
    *args: str, env: dict[str, str] | None = None, output: IO[bytes] | int | None = None
) -> Iterator[str]:
    """The standalone sandbox (`python -m app.sandbox`); yields its root URL (add `/v3` for
    AUTOENHANCE_API_BASE) and stops it on the way out."""
    command = [sys.executable, "-m", "app.sandbox", *args]
    process, url = serve_on(command, env={**os.environ, **(env or {})}, output=output)
    try:
        wait_until_listening(f"{url}/_sandbox/health", process=process, timeout=60)
        yield url
    finally:
        stop(process, timeout=10)


@contextlib.contextmanager
def redis_server(path: str, attempts: int = 5) -> Iterator[str]:
    """A throw-away redis-server (the program at `path`) on loopback without persistence;
    yields its URL (no database number)."""
    with RedisProcess(path, attempts=attempts) as server:
        yield server.url


class RedisProcess:
    """A throw-away redis-server on loopback without persistence, for fault tests: `pause()`
    (SIGSTOP: connections are accepted and never answered), `resume()` (SIGCONT), `kill()`
    (SIGKILL) and `restart()` (a new, empty server on the same port)."""

    def __init__(self, path: str, *, attempts: int = 5) -> None:
        self.path = path
        self.attempts = attempts
        self.port = 0
        self.process: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _start(self, port: int) -> bool:
        command = [self.path, "--save", "", "--appendonly", "no", "--port", str(port)]
        process = subprocess.Popen([*command, "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
        if _answers_ping(port, process):
            self.process, self.port = process, port
            return True
        stop(process, timeout=10)
        return False

    def __enter__(self) -> RedisProcess:
        for _ in range(self.attempts):
            with refused_port() as port:
                pass
            if self._start(port):
                return self
        raise RuntimeError(f"redis-server found no free port in {self.attempts} attempts")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.resume()
            stop(self.process, timeout=10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start an empty server on the same port (after `kill()`); retried while the port is
        still held by the dead one's sockets."""
        wait_for(lambda: self._start(self.port), timeout=30, interval=0.2)


def _answers_ping(port: int, process: subprocess.Popen[Any]) -> bool:
    """True once redis-server answers; False if it exited (its port was taken)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return True
            except redis.ConnectionError:
                if process.poll() is not None:
                    return False
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


class RssSampler:
    """Samples a process's resident set size in a background thread; keeps the peak."""

    def __init__(self, process: psutil.Process, interval: float = 0.005) -> None:
        self._process = process
        self._interval = interval
        self.baseline: int = process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return float(self.peak - self.baseline) / MB
