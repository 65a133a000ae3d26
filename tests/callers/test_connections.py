"""Connections that never finish a request are closed, in the start commands that ship.

The commands are taken from the Makefile (`make -n run`) and render.yaml and run as they are
(render.yaml's `--host 0.0.0.0` becomes loopback), in sandbox mode, so a flag dropped from
either file fails here.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from app.main import create_app
from app.web.server import with_header_timeout
from testkit.processes import ROOT, free_port, wait_until_listening
from tests.support import UvicornThread, settings_of

HEADER_TIMEOUT = 1.0
PROXY_ADDRESS = "127.0.0.2"
ADMIN_TOKEN = "admin-token-for-proxy-tests"
# Bound on waiting for the server to act; the old behaviour is never acting at all.
WITHIN = 20.0
REQUIRED_FLAGS = (
    "--http app.web.server:HeaderDeadlineProtocol",
    "--limit-concurrency",
    "--timeout-keep-alive",
    "--forwarded-allow-ips",
)


def make_command(port: int, env: dict[str, str] | None = None) -> str:
    """The commands `make run` would run (its echo lines left out), joined with `&&`."""
    printed = subprocess.run(
        ["make", "-n", "run", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = printed.replace("\\\n", " ").splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("rm -rf"))
    return " && ".join(line for line in lines[start:] if line.strip())


def render_command() -> str:
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    web = next(s for s in blueprint["services"] if s["type"] == "web")
    command: str = web["startCommand"]
    return command


def normalised(command: str) -> str:
    return re.sub(r"\s+", " ", command)


@pytest.mark.parametrize("source", ["make", "render"])
def test_shipped_start_commands_bound_connections(source: str) -> None:
    command = normalised(make_command(8000) if source == "make" else render_command())
    for flag in REQUIRED_FLAGS:
        assert flag in command, f"{source} start command lacks {flag}: {command}"


# Stalled requests opened at most to fill LIMIT_CONCURRENCY=8 (some may be refused).
MAX_HELD = 32


@pytest.fixture(params=["make", "render"])
def shipped_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """The service started by a shipped command, with short deadlines and 8 slots."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AUTOENHANCE_", "UVICORN_"))
    }
    env.update(
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PORT=str(port),
        DATA_DIR=str(tmp_path / "data"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        SHUTDOWN_GRACE_SECONDS="5",
        WEB_CONCURRENCY="1",
        LIMIT_CONCURRENCY="8",
        REQUEST_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        REQUEST_BODY_IDLE_TIMEOUT="60",
        # The "proxy" connects from 127.0.0.2, an address uvicorn does not trust by default.
        TRUSTED_PROXIES=PROXY_ADDRESS,
        ADMIN_TOKEN=ADMIN_TOKEN,
    )
    if request.param == "make":
        command = make_command(port, env)
    else:
        command = render_command().replace("--host 0.0.0.0", "--host 127.0.0.1")
    process = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_until_listening(f"http://127.0.0.1:{port}/health", process=process, timeout=60)
        yield port
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def wait_all_closed(sockets: list[socket.socket]) -> None:
    """Poll until the server has closed every socket (EOF or reset), within WITHIN seconds."""
    open_ = list(sockets)
    deadline = time.monotonic() + WITHIN
    while open_:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(open_)} of {len(sockets)} connections still open"
        readable, _, _ = select.select(open_, [], [], min(remaining, 0.5))
        for sock in readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                open_.remove(sock)


def test_connections_that_never_finish_their_headers_are_closed(shipped_server: int) -> None:
    sockets = [socket.create_connection(("127.0.0.1", shipped_server)) for _ in range(50)]
    try:
        for n, sock in enumerate(sockets):
            if n % 2:  # half send the start of a request, half nothing at all
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        wait_all_closed(sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(f"http://127.0.0.1:{shipped_server}/health", timeout=30).status_code == 200


def test_concurrency_is_limited(shipped_server: int) -> None:
    # Requests whose headers are complete but whose bodies stall hold their slots. uvicorn
    # counts a connection as soon as it opens, so a stalled request whose headers are read
    # while the others are still connecting is itself refused (and closed): open them one at
    # a time, probing in between, until the probe is refused.
    held: list[socket.socket] = []
    deadline = time.monotonic() + WITHIN
    try:
        while True:
            if len(held) < MAX_HELD:
                sock = socket.create_connection(("127.0.0.1", shipped_server))
                held.append(sock)
                sock.sendall(
                    b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
            status = httpx.get(f"http://127.0.0.1:{shipped_server}/health", timeout=30)
            if status.status_code == 503:
                break
            assert time.monotonic() < deadline, "never refused past LIMIT_CONCURRENCY"
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()


def test_behind_the_trusted_proxy_the_admin_cookie_is_secure(shipped_server: int) -> None:
    transport = httpx.HTTPTransport(local_address=PROXY_ADDRESS)
    with httpx.Client(transport=transport, timeout=30) as proxy:
        response = proxy.post(
            f"http://127.0.0.1:{shipped_server}/api/admin/session",
            json={"token": ADMIN_TOKEN},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"},
        )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"].lower()
    assert "; secure" in cookie, cookie


def test_a_kept_alive_connection_must_send_its_next_headers_in_time(tmp_path: Path) -> None:
    settings = settings_of(autoenhance_api_key=None, data_dir=tmp_path / "data")
    with UvicornThread(
        create_app(settings), http=with_header_timeout(HEADER_TIMEOUT), timeout_keep_alive=60
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(WITHIN)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            # Kept alive for 60 s; the next request starts, then stalls mid-headers.
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: ")
            wait_all_closed([sock])
