"""`/api/create-order` checks a caller's key before reading the upload, and no body may stall.

The clients here are raw sockets: they send part of a body and then stop, as an attacker or
a broken uplink would, which no HTTP client library does on purpose.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.support import UvicornThread

SAMPLE = Path(__file__).resolve().parents[2] / "sample_images" / "garden.jpg"
BOUNDARY = "----callers-test-boundary"
# Declared but never sent in full: the server would wait for all of it.
DECLARED_BYTES = 50_000_000
# Bound on waiting for the server's answer; failing to answer at all is the old behaviour.
ANSWER_WITHIN = 20.0


def upload_head(*, key: str | None, declared: int = DECLARED_BYTES) -> bytes:
    part = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="files"; filename="garden.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + SAMPLE.read_bytes()[:4096]
    headers = [
        "POST /api/create-order HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {declared}",
    ]
    if key:
        headers.append(f"X-Autoenhance-Key: {key}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + part


def read_answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """Status and JSON body of the server's answer (the connection is then closed)."""
    sock.settimeout(ANSWER_WITHIN)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body[:length])


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(ANSWER_WITHIN)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


@pytest.fixture
def spool_dir(make_settings: SettingsFactory) -> Path:
    return make_settings().data_dir / "spool"


@pytest.fixture
def service(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    settings = make_settings(request_body_idle_timeout=1.0, request_body_timeout=3.0)
    with UvicornThread(create_app(settings)) as server:
        yield server


def test_a_refused_key_is_answered_before_the_upload_is_read(
    service: UvicornThread, sandbox: httpx.Client
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    sandbox.post(
        "/_sandbox/faults", json={"kind": "status", "status": 401, "api_keys": [wrong]}
    ).raise_for_status()
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(upload_head(key=wrong))
        # The body is far from complete (and would stall): only the key check can answer.
        status, body = read_answer(sock)
    assert status == 401
    assert body["error"] == "upstream_unauthorized"


def test_a_stalled_upload_gets_408_and_its_spool_is_freed(
    service: UvicornThread, spool_dir: Path
) -> None:
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(upload_head(key=f"good-{uuid.uuid4().hex}"))
        status, body = read_answer(sock)
        assert status == 408
        assert body["error"] == "request_timeout"
        assert closed_by_server(sock)
    assert_spool_empties(spool_dir)


def test_a_trickling_upload_is_cut_off_at_the_total_deadline(
    service: UvicornThread, spool_dir: Path
) -> None:
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(upload_head(key=f"good-{uuid.uuid4().hex}"))
        sock.setblocking(False)
        answer = b""
        # A byte every 0.2 s never trips the 1 s idle timeout; only the 3 s total can end it.
        for _ in range(int(ANSWER_WITHIN / 0.2)):
            try:
                sock.send(b"x")
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if b"\r\n\r\n" in answer:
                break
            time.sleep(0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert_spool_empties(spool_dir)


def assert_spool_empties(spool_dir: Path) -> None:
    deadline = time.monotonic() + ANSWER_WITHIN
    while spool_dir.exists() and any(spool_dir.iterdir()):
        assert time.monotonic() < deadline, list(spool_dir.iterdir())
        time.sleep(0.05)


def test_a_good_key_still_uploads(service: UvicornThread) -> None:
    response = httpx.post(
        f"{service.url}/api/create-order",
        headers={"X-Autoenhance-Key": f"mine-{uuid.uuid4().hex}"},
        files=[("files", ("garden.jpg", SAMPLE.read_bytes(), "image/jpeg"))],
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["uploaded"] == 1
