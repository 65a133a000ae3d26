"""Metric labels stay bounded whatever a client sends, on a real uvicorn server."""

from __future__ import annotations

import secrets
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.conftest import SettingsFactory
from tests.support import UvicornThread


def send_raw(port: int, request: bytes) -> bytes:
    """Send one raw HTTP/1.1 request and return the status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def method_labels(metrics_text: str) -> set[str]:
    labels: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        if family.name in {"http_requests", "http_request_duration_seconds"}:
            labels |= {sample.labels["method"] for sample in family.samples}
    return labels


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_unknown_methods_are_counted_as_other(make_settings: SettingsFactory, parser: str) -> None:
    made_up = [f"X{secrets.token_hex(6).upper()}" for _ in range(20)]
    with UvicornThread(create_app(make_settings()), http=parser) as server:
        statuses = [
            send_raw(
                server.port,
                f"{method} /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )
            for method in made_up
        ]
        assert httpx.get(f"{server.url}/health").status_code == 200
        text = httpx.get(f"{server.url}/metrics").text
    labels = method_labels(text)
    assert not labels & set(made_up), statuses
    assert "GET" in labels
    if parser == "h11":  # h11 hands any token to the app; httptools refuses them with 400
        assert "other" in labels
