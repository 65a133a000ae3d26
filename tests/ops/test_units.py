"""Unit tests of the operations modules: one module each, no server."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from limits import parse_many
from starlette.requests import Request

from app.core.errors import TooManyRequests
from app.core.logging import JsonFormatter, configure_logging, redact, request_id_var
from app.core.security import key_fingerprint
from app.core.sentry import SentryApiError, SentryIssues, scrub_event
from app.core.stats import ErrorLog
from app.web.ratelimit import RateLimits, client_address, client_keys
from tests.support import settings_of


def make_request(peer: str, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": raw,
            "client": (peer, 1234),
            "query_string": b"",
        }
    )


# --- logging ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /orders/x/images?expires=1&sig=abcdef0123", "abcdef0123"),
        ("headers x-api-key: supersecretvalue", "supersecretvalue"),
        ("Authorization: Bearer tok3n-value", "tok3n-value"),
        ("https://s3/x.jpg?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA1", "deadbeef"),
        ("cookie=session-abc123", "session-abc123"),
    ],
)
def test_redact_masks_credentials(line: str, secret: str) -> None:
    assert secret not in redact(line)
    assert "[redacted]" in redact(line)


def test_json_lines_carry_request_id_and_extras_but_not_credentials() -> None:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="json", stream=stream)
    try:
        token = request_id_var.set("req-123")
        try:
            logging.getLogger("app.batch").info(
                "batch done sig=zzz", extra={"order_id": "o1", "bytes": 42, "api_key": "k"}
            )
        finally:
            request_id_var.reset(token)
    finally:
        logging.getLogger().removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] == "req-123"
    assert line["order_id"] == "o1"
    assert line["bytes"] == 42
    assert line["api_key"] == "[redacted]"
    assert "zzz" not in line["message"]
    assert line["level"] == "INFO"


def test_json_formatter_includes_the_exception_text() -> None:
    try:
        raise ValueError("boom token=hidden")
    except ValueError:
        record = logging.LogRecord("app", logging.ERROR, "f", 1, "failed", None, None)
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError" in line["exception"]
    assert "hidden" not in line["exception"]


# --- rate limits -----------------------------------------------------------------------------


def test_client_address_ignores_forwarded_for_from_untrusted_peers() -> None:
    request = make_request("203.0.113.9", {"X-Forwarded-For": "1.2.3.4"})
    assert client_address(request, ()) == "203.0.113.9"


def test_client_address_walks_back_through_trusted_proxies_only() -> None:
    limits = RateLimits(rules={}, storage=_memory(), trusted_proxies=["10.0.0.0/8"])
    request = make_request("10.0.0.2", {"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.9"})
    # 6.6.6.6 was written by the client itself: only the first untrusted hop is believed.
    assert client_address(request, limits.trusted_proxies) == "198.51.100.7"
    garbled = make_request("10.0.0.2", {"X-Forwarded-For": "not-an-ip"})
    assert client_address(garbled, limits.trusted_proxies) == "10.0.0.2"


def test_client_keys_are_the_address_and_the_hash_of_an_own_key() -> None:
    request = make_request("203.0.113.9", {"X-Autoenhance-Key": "my-key"})
    keys = client_keys(request, ())
    assert keys == ("ip:203.0.113.9", "byok:" + key_fingerprint("my-key"))
    assert "my-key" not in "".join(keys)
    assert client_keys(make_request("203.0.113.9", {}), ()) == ("ip:203.0.113.9",)


def _memory() -> Any:
    from limits.aio.storage import MemoryStorage

    return MemoryStorage()


async def test_rate_limit_refuses_with_retry_after() -> None:
    limits = RateLimits(rules={"downloads": parse_many("2/minute")}, storage=_memory())
    await limits.hit("downloads", "ip:a")
    await limits.hit("downloads", "ip:a")
    await limits.hit("downloads", "ip:b")  # another client has its own budget
    with pytest.raises(TooManyRequests) as caught:
        await limits.hit("downloads", "ip:a")
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 60
    await limits.hit("jobs", "ip:a")  # a rule with no limit never refuses


def test_rate_limit_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="rate_limit_jobs"):
        settings_of(rate_limit_jobs="often")
    with pytest.raises(ValueError, match="trusted_proxies"):
        settings_of(trusted_proxies="example.com")


# --- error ring ------------------------------------------------------------------------------


def test_error_ring_is_bounded_newest_first_and_redacted(tmp_path: Path) -> None:
    ring = ErrorLog(tmp_path / "errors.sqlite3", capacity=5)
    for index in range(8):
        ring.record_event(kind="http", status=502, message=f"failure {index} sig=abc")
    events = ErrorLog(tmp_path / "errors.sqlite3", capacity=5).recent()
    assert [e.message.split()[1] for e in events] == ["7", "6", "5", "4", "3"]
    assert all("abc" not in e.message for e in events)


# --- Sentry ----------------------------------------------------------------------------------


def test_scrub_event_masks_headers_cookies_and_signatures() -> None:
    event = {
        "request": {
            "headers": {"X-Autoenhance-Key": "k1", "Authorization": "Bearer t", "Accept": "*/*"},
            "cookies": {"session": "s"},
            "query_string": "format=png&sig=abc&expires=1",
            "url": "http://h/orders/x/images?sig=abc",
        },
        "breadcrumbs": {"values": [{"data": {"url": "http://u/x?token=abc&a=1"}}]},
    }
    scrubbed = scrub_event(event)
    text = json.dumps(scrubbed)
    assert "k1" not in text
    assert "Bearer t" not in text
    assert "abc" not in text
    assert scrubbed["request"]["headers"]["Accept"] == "*/*"
    assert "format=png" in scrubbed["request"]["query_string"]


def test_scrub_event_masks_a_delivery_links_token() -> None:
    token = "Zq3xV9m2Lr7TtY0pW4cE8aBnK1sDfGh6"
    event = {
        "request": {"url": f"http://h/d/{token}/archive?variant=print", "query_string": ""},
        "breadcrumbs": {"values": [{"data": {"url": f"http://h/d/{token}"}}]},
    }
    scrubbed = scrub_event(event)
    assert token not in json.dumps(scrubbed)
    assert scrubbed["request"]["url"] == "http://h/d/[Filtered]/archive?variant=print"


def sentry_client(handler: Any) -> SentryIssues:
    return SentryIssues(
        base_url="https://sentry.example",
        org="acme",
        project="downloader",
        token="sntrys_token",
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )


async def test_sentry_issues_are_read_with_the_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json=[
                {
                    "id": "1",
                    "shortId": "DL-1",
                    "title": "ValueError",
                    "count": "7",
                    "userCount": 2,
                    "lastSeen": "2026-01-01T00:00:00Z",
                    "level": "error",
                }
            ],
        )

    client = sentry_client(handler)
    issues = await client.recent()
    await client.aclose()
    assert issues[0].short_id == "DL-1"
    assert issues[0].count == 7
    assert seen[0].url.path == "/api/0/projects/acme/downloader/issues/"
    assert seen[0].headers["authorization"] == "Bearer sntrys_token"
    assert seen[0].url.params["query"] == "is:unresolved"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(401, json={"detail": "bad"}), "refused the auth token"),
        (httpx.Response(404), "no such organisation"),
        (httpx.Response(500), "answered 500"),
        (httpx.Response(200, json={"not": "a list"}), "unexpected"),
    ],
)
async def test_sentry_api_failures_are_explained(response: httpx.Response, message: str) -> None:
    client = sentry_client(lambda request: response)
    with pytest.raises(SentryApiError, match=message) as caught:
        await client.recent()
    await client.aclose()
    assert "sntrys_token" not in str(caught.value)


async def test_sentry_api_timeout_is_explained() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = sentry_client(handler)
    with pytest.raises(SentryApiError, match="in time"):
        await client.recent()
    await client.aclose()


async def test_sentry_unconfigured_names_the_missing_settings() -> None:
    client = SentryIssues(base_url="https://sentry.example", org="acme", project=None, token=None)
    assert client.missing_settings == ["SENTRY_AUTH_TOKEN", "SENTRY_PROJECT"]
    with pytest.raises(SentryApiError, match="not configured"):
        await client.recent()
    await client.aclose()
