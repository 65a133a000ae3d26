"""`callback_url` refusals over a real socket: the credential is checked first, and every
refusal of an address reads the same, so the answer tells nothing about the service's network;
a host name that does not resolve is said to be one (what any resolver answers)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from testkit.jobs import FAST_JOBS
from tests.conftest import SettingsFactory, create_order
from tests.support import UvicornThread

REFUSED = [
    "http://127.0.0.1:9/hook",  # loopback
    "http://localhost/hook",  # a name for loopback
    "http://10.0.0.1/hook",  # private
    "http://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "http://[2002:7f00:1::1]/hook",  # 6to4 wrapping 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 wrapping 169.254.169.254
    "ftp://example.com/hook",  # not http(s)
]
UNRESOLVED = "http://no-such-host.invalid/hook"  # .invalid never resolves (RFC 2606)


@pytest.fixture
def guarded(make_settings: SettingsFactory) -> Iterator[str]:
    """The service with the production callback guard (no private targets)."""
    settings = make_settings(**{**FAST_JOBS, "callback_allow_private": False})
    with UvicornThread(create_app(settings)) as server:
        yield server.url


def test_an_unproven_credential_learns_nothing_about_callback_targets(
    guarded: str, sandbox: httpx.Client
) -> None:
    order = create_order(sandbox, images=1, api_key="the-owners-own-key")
    stranger = {"X-Autoenhance-Key": "a-made-up-key-123"}
    with httpx.Client(base_url=guarded, timeout=30) as client:
        answers = {
            url: client.post(
                f"/orders/{order['order_id']}/jobs", params={"callback_url": url}, headers=stranger
            )
            for url in [*REFUSED, UNRESOLVED]
        }
    statuses = {url: (r.status_code, r.json()["error"]) for url, r in answers.items()}
    # The order cannot be read with that key: that is the answer, whatever the callback URL.
    assert set(statuses.values()) == {(404, "not_found")}, statuses


def test_every_refused_callback_url_gets_one_answer(guarded: str, sandbox: httpx.Client) -> None:
    order = create_order(sandbox, images=1)
    with httpx.Client(base_url=guarded, timeout=30) as client:
        answers = [
            client.post(f"/orders/{order['order_id']}/jobs", params={"callback_url": url})
            for url in REFUSED
        ]
    assert {r.status_code for r in answers} == {422}
    assert {r.json()["error"] for r in answers} == {"invalid_callback_url"}
    details = {r.json()["detail"] for r in answers}
    assert len(details) == 1, details
    assert "not an allowed callback URL" in details.pop()


def test_a_host_that_does_not_resolve_is_said_to_be_one(
    guarded: str, sandbox: httpx.Client
) -> None:
    order = create_order(sandbox, images=1)
    with httpx.Client(base_url=guarded, timeout=30) as client:
        answer = client.post(
            f"/orders/{order['order_id']}/jobs", params={"callback_url": UNRESOLVED}
        )
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_callback_url"
    detail = answer.json()["detail"]
    assert "no-such-host.invalid could not be resolved" in detail
    assert "not an allowed callback URL" not in detail
