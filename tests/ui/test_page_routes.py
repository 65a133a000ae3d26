"""The page, its static files and POST /api/ask over a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support import UvicornThread
from tests.ui.conftest import ServiceFactory


def test_page_and_static_files_are_served(sandbox_service: ServiceFactory) -> None:
    with sandbox_service() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            response = client.get(asset)
            assert response.status_code == 200, asset
        script = client.get("/static/app.js")
        assert "javascript" in script.headers["content-type"]
        assert client.get("/static/../main.py").status_code == 404


def test_page_has_nothing_a_strict_csp_would_block(sandbox_service: ServiceFactory) -> None:
    with sandbox_service() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        html = client.get("/").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\sstyle\s*=", html), "inline style attribute"
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert "http://" not in html.replace("http://127.0.0.1", "")  # nothing from elsewhere
    assert "https://" not in html


def test_ask_answers_from_the_docs(sandbox_service: ServiceFactory) -> None:
    with sandbox_service() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/api/ask", json={"question": "How do I resume a download?"})
        assert response.status_code == 200
        body = response.json()
        assert body["mode"] == "docs"
        assert "curl -C -" in body["answer"]
        assert body["sources"][0]["source"] == "docs/faq.md"


@pytest.mark.parametrize(
    "payload", [{"question": ""}, {"question": "x" * 501}, {}, {"question": 3}], ids=str
)
def test_ask_rejects_bad_questions(sandbox_service: ServiceFactory, payload: object) -> None:
    with sandbox_service() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/api/ask", json=payload)
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"


def test_ask_is_rate_limited(sandbox_service: ServiceFactory) -> None:
    with (
        sandbox_service(ask_rate_limit="2/minute") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        statuses = [client.post("/api/ask", json={"question": "jobs"}) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[2].json()["error"] == "rate_limited"
        assert 1 <= int(statuses[2].headers["retry-after"]) <= 61


@pytest.fixture
def assistant() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A stand-in assistant endpoint on loopback that records what it was sent."""
    received: list[dict[str, object]] = []

    async def answer(request: Request) -> JSONResponse:
        received.append(
            {"body": await request.json(), "auth": request.headers.get("authorization")}
        )
        return JSONResponse({"answer": "From the assistant."})

    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"error": "down"}, status_code=500)

    app = Starlette(
        routes=[Route("/ask", answer, methods=["POST"]), Route("/broken", broken, methods=["POST"])]
    )
    with UvicornThread(app) as server:
        yield server.url, received


def test_ask_forwards_to_the_assistant_server_side(
    sandbox_service: ServiceFactory, assistant: tuple[str, list[dict[str, object]]]
) -> None:
    url, received = assistant
    with (
        sandbox_service(chat_api_url=f"{url}/ask", chat_api_key="chat-key-0123456789") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        body = client.post("/api/ask", json={"question": "how do I resume?"}).json()
    assert body["mode"] == "assistant"
    assert body["answer"] == "From the assistant."
    assert received[0]["auth"] == "Bearer chat-key-0123456789"
    sent = received[0]["body"]
    assert isinstance(sent, dict)
    assert sent["question"] == "how do I resume?"


def test_ask_falls_back_when_the_assistant_fails(
    sandbox_service: ServiceFactory, assistant: tuple[str, list[dict[str, object]]]
) -> None:
    url, _ = assistant
    with (
        sandbox_service(chat_api_url=f"{url}/broken") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        body = client.post("/api/ask", json={"question": "how do I resume a download?"}).json()
    assert body["mode"] == "docs"
    assert body["notice"]
    assert "curl -C -" in body["answer"]
