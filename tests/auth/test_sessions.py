"""Signing out ends the session on the server: a copied cookie stops working everywhere.

Two service instances share one session store, as the workers of one machine share
`DATA_DIR` (SQLite) or every node shares Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from app.api.auth import SESSION_COOKIE
from app.main import create_app
from testkit.processes import redis_server
from tests.conftest import SettingsFactory
from tests.support import UvicornThread, require_tool

ADMIN_TOKEN = "admin-token-0123456789"
SECRET = "sessions-signing-secret-0123"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server(require_tool("redis-server")) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def two_nodes(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    shared: dict[str, object] = {"admin_token": ADMIN_TOKEN, "signing_secret": SECRET}
    if request.param == "redis":
        shared["redis_url"] = request.getfixturevalue("redis_url")
        dirs = [tmp_path / "node-a", tmp_path / "node-b"]
    else:
        dirs = [tmp_path / "data", tmp_path / "data"]  # one machine, two workers
    with ExitStack() as stack:
        urls = [
            stack.enter_context(UvicornThread(create_app(make_settings(data_dir=d, **shared)))).url
            for d in dirs
        ]
        yield urls[0], urls[1]


def admin(url: str, cookie: str) -> bool:
    with httpx.Client(base_url=url, timeout=30, cookies={SESSION_COOKIE: cookie}) as client:
        me = client.get("/api/admin/session").json()
        stats = client.get("/api/stats").json()
    assert ("recent_errors" in stats) is me["admin"]
    return bool(me["admin"])


def test_a_copied_cookie_stops_working_when_its_owner_signs_out(
    two_nodes: tuple[str, str],
) -> None:
    first, second = two_nodes
    with httpx.Client(base_url=first, timeout=30) as browser:
        assert browser.post("/api/admin/session", json={"token": ADMIN_TOKEN}).status_code == 200
        copied = browser.cookies[SESSION_COOKIE]
        other = httpx.post(f"{second}/api/admin/session", json={"token": ADMIN_TOKEN})
        assert admin(first, copied)
        assert admin(second, copied)

        signed_out = browser.delete("/api/admin/session", headers={"Origin": first})
        assert signed_out.status_code == 204

    assert not admin(first, copied)
    assert not admin(second, copied)
    # Another session (another sign-in) is not affected.
    assert admin(first, other.cookies[SESSION_COOKIE])
