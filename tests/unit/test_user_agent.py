"""Every request the service makes says who sent it, in the same words: `USER_AGENT`."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

from app.core.identity import USER_AGENT
from app.core.sentry import SentryIssues
from app.jobs.context import callback_client
from app.services.ask import ask_service
from app.upstream.factory import build_http_client
from tests.support import settings_of

ROOT = Path(__file__).resolve().parents[2]


async def test_every_client_of_the_service_sends_the_one_user_agent(tmp_path: Path) -> None:
    upstream = build_http_client(
        max_connections=1, connect_timeout=1, read_timeout=1, max_redirects=0
    )
    sentry = SentryIssues(base_url="https://sentry.example", org=None, project=None, token=None)
    settings = settings_of(data_dir=tmp_path, chat_api_url="https://assistant.example/ask")
    async with contextlib.AsyncExitStack() as resources:
        ask = ask_service(settings, resources, root=ROOT)
        assert ask.assistant is not None
        clients: list[httpx.AsyncClient] = [
            upstream,
            callback_client(),
            sentry._http,
            ask.assistant._http,
        ]
        assert {client.headers["User-Agent"] for client in clients} == {USER_AGENT}
        for client in clients:
            await client.aclose()
