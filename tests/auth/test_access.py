"""Who may do what, over a real socket: service key, signed links, admin token and session."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from app.api.auth import SESSION_COOKIE
from app.core.keys import ServiceKeys
from app.core.security import Signer
from app.main import create_app
from app.sandbox import DEMO_ORDER_ID
from tests.conftest import SettingsFactory
from tests.support import SandboxControl, UvicornThread, settings_of

SERVICE_KEY = "service-key-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
SECRET = "signing-secret-0123456789"
SUMMARY = f"/orders/{DEMO_ORDER_ID}"


@pytest.fixture
def locked(make_settings: SettingsFactory) -> Iterator[UvicornThread]:
    """A live-mode service with a service key and an admin token."""
    settings = make_settings(
        service_api_key=SERVICE_KEY, admin_token=ADMIN_TOKEN, signing_secret=SECRET
    )
    with UvicornThread(create_app(settings)) as server:
        yield server


def http(server: UvicornThread, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, **kwargs)  # type: ignore[arg-type]


def sign_in(client: httpx.Client, **headers: str) -> httpx.Response:
    return client.post("/api/admin/session", json={"token": ADMIN_TOKEN}, headers=headers)


# --- the operator's key -----------------------------------------------------------------------


def test_service_key_in_the_header_is_required_and_enough(locked: UvicornThread) -> None:
    with http(locked) as client:
        missing = client.get(SUMMARY)
        assert missing.status_code == 401
        assert missing.json()["error"] == "unauthorized"
        assert client.get(SUMMARY, headers={"X-API-Key": "wrong-key-0123456789"}).status_code == 401
        assert client.get(SUMMARY, headers={"X-API-Key": SERVICE_KEY}).status_code == 200


@pytest.mark.parametrize("name", ["api_key", "X-API-Key", "x-api-key", "apikey", "key"])
def test_a_key_in_the_query_string_is_ignored(locked: UvicornThread, name: str) -> None:
    with http(locked) as client:
        assert client.get(SUMMARY, params={name: SERVICE_KEY}).status_code == 401
        assert client.get(f"{SUMMARY}/images", params={name: SERVICE_KEY}).status_code == 401


def test_signed_links_open_their_own_path_until_they_expire(locked: UvicornThread) -> None:
    signer = Signer(ServiceKeys.derive(SECRET.encode()).links)
    path = f"/orders/{DEMO_ORDER_ID}/images"
    with http(locked) as client:
        good = client.get(signer.sign(path, {"format": "jpeg"}, ttl=60).url)
        assert good.status_code == 200
        assert good.headers["content-type"] == "application/zip"
        link = signer.sign(path, {"format": "jpeg"}, ttl=60).url
        assert client.get(link.replace("format=jpeg", "format=png")).status_code == 401
        assert client.get(link.replace(path, SUMMARY)).status_code == 401
        expired = signer.sign(path, {}, ttl=10, now=time.time() - 60).url
        assert client.get(expired).status_code == 401
        forged = Signer(b"another secret..").sign(path, {}, ttl=60).url
        assert client.get(forged).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "expires=9999999999&sig=%C3%A9",  # a signature that is not ASCII
        "expires=%C2%B2&sig=" + "0" * 64,  # "²" passes str.isdigit but not int()
        "expires=" + "9" * 5000 + "&sig=" + "0" * 64,  # past int()'s 4,300-digit limit
        "expires=-1&sig=" + "0" * 64,
        "expires=9999999999&sig=" + "0" * 63 + "%00",
    ],
)
def test_a_crafted_signed_link_is_refused_not_an_error(locked: UvicornThread, query: str) -> None:
    job = "/jobs/00000000-0000-4000-8000-000000000000/download"
    with http(locked) as client:
        for path, status in ((f"/orders/{DEMO_ORDER_ID}/images", 401), (job, 403)):
            response = client.get(f"{path}?{query}")
            assert response.status_code == status, (path, response.text)
            assert set(response.json()) == {"error", "detail", "request_id"}
        errors = client.get("/api/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert errors.json()["recent_errors"] == []


@pytest.mark.parametrize("key", [b"x" * 300, b"key with spaces", "ké".encode()])
def test_a_malformed_own_key_is_refused_before_any_upstream_call(
    locked: UvicornThread, sandbox: SandboxControl, key: bytes
) -> None:
    with http(locked) as client:
        response = client.get(SUMMARY, headers={b"X-Autoenhance-Key": key})
    assert response.status_code == 401
    assert response.json()["error"] == "malformed_key"
    # Neither the malformed key nor the operator's went upstream in its place.
    assert sandbox.log(key) == []
    assert sandbox.log() == []


# --- nothing handed out unasked -----------------------------------------------------------------


def test_the_home_page_sets_no_cookie_and_hands_out_no_token(locked: UvicornThread) -> None:
    with http(locked) as client:
        for path in ("/", "/docs", SUMMARY):
            response = client.get(path)
            assert "set-cookie" not in response.headers, path
            assert ADMIN_TOKEN not in response.text
            assert SERVICE_KEY not in response.text
        assert client.cookies.jar.__len__() == 0


def test_sandbox_mode_home_page_sets_no_cookie(tmp_path: object) -> None:

    settings = settings_of(admin_token=ADMIN_TOKEN, data_dir=tmp_path)
    with UvicornThread(create_app(settings)) as server, http(server) as client:
        response = client.get("/")
        assert "set-cookie" not in response.headers
        assert client.get("/api/admin/session").json()["admin"] is False


# --- administrators -------------------------------------------------------------------------


def test_bearer_token_makes_an_administrator(locked: UvicornThread) -> None:
    with http(locked) as client:
        assert client.get("/api/admin/session").json()["admin"] is False
        wrong = client.get("/api/admin/session", headers={"Authorization": "Bearer nope"})
        assert wrong.json()["admin"] is False
        me = client.get("/api/admin/session", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert me.json() == {"admin": True, "via": "bearer", "expires_at": None, "csrf_token": None}


def test_sign_in_sets_a_strict_httponly_cookie_with_an_expiry(locked: UvicornThread) -> None:
    with http(locked) as client:
        response = sign_in(client)
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert {"httponly", "samesite", "max-age", "path"} <= attributes
        assert "samesite=strict" in cookie.lower()
        assert "max-age=28800" in cookie.lower()
        assert "secure" not in attributes  # plain http on loopback
        assert ADMIN_TOKEN not in cookie
        assert response.headers["cache-control"] == "no-store"
        me = client.get("/api/admin/session").json()
        assert me["admin"] is True
        assert me["via"] == "cookie"
        assert me["csrf_token"]


def test_sign_in_refusals(locked: UvicornThread) -> None:
    with http(locked) as client:
        assert client.post("/api/admin/session", json={"token": "wrong"}).status_code == 401
        in_query = client.post("/api/admin/session", params={"token": ADMIN_TOKEN})
        assert in_query.status_code == 422
        assert "set-cookie" not in in_query.headers
        cross = sign_in(client, Origin="https://evil.example")
        assert cross.status_code == 403
        assert "set-cookie" not in cross.headers
        assert sign_in(client, Origin=locked.url).status_code == 200


def test_sign_in_is_off_without_an_admin_token(make_settings: SettingsFactory) -> None:
    with UvicornThread(create_app(make_settings())) as server, http(server) as client:
        assert sign_in(client).status_code == 403


@pytest.mark.parametrize(("proxy_ips", "secure"), [("127.0.0.1", True), ("10.9.8.7", False)])
def test_cookie_is_secure_when_a_trusted_proxy_says_https(
    make_settings: SettingsFactory, proxy_ips: str, secure: bool
) -> None:
    app = create_app(make_settings(admin_token=ADMIN_TOKEN))
    with UvicornThread(app, proxy_headers=True, forwarded_allow_ips=proxy_ips) as server:
        with http(server) as client:
            response = sign_in(client, **{"X-Forwarded-Proto": "https"})
    attributes = {p.strip().lower() for p in response.headers["set-cookie"].split(";")}
    assert ("secure" in attributes) is secure


def test_a_cookie_changes_things_only_with_same_origin_proof(locked: UvicornThread) -> None:
    """A forged cross-site POST carries the cookie but not a same-origin Origin or the token."""
    with http(locked) as client:
        csrf = sign_in(client).json()["csrf_token"]
        create = "/api/create-sample-order"
        no_origin = client.post(create)
        assert no_origin.status_code == 403
        assert no_origin.json()["error"] == "csrf_failed"
        assert client.post(create, headers={"Origin": "https://evil.example"}).status_code == 403
        assert client.post(create, headers={"Origin": "null"}).status_code == 403
        assert client.post(create, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
        assert client.post(create, headers={"Origin": locked.url}).status_code == 201
        assert client.post(create, headers={"X-CSRF-Token": csrf}).status_code == 201
        # GET needs no proof: reading is what SameSite=Strict already guards.
        assert client.get("/api/admin/session").json()["admin"] is True


def test_allowed_origins_extend_the_same_origin_check(make_settings: SettingsFactory) -> None:
    settings = make_settings(admin_token=ADMIN_TOKEN, allowed_origins="https://ui.example")
    with UvicornThread(create_app(settings)) as server, http(server) as client:
        sign_in(client)
        ok = client.post("/api/create-sample-order", headers={"Origin": "https://ui.example"})
        assert ok.status_code == 201


def test_sign_out_and_expired_or_forged_cookies(locked: UvicornThread) -> None:
    with http(locked) as client:
        sign_in(client)
        value = client.cookies[SESSION_COOKIE]
        out = client.delete("/api/admin/session", headers={"Origin": locked.url})
        assert out.status_code == 204
        assert "max-age=0" in out.headers["set-cookie"].lower()
        assert client.get("/api/admin/session").json()["admin"] is False
        version, expires, nonce, mac = value.split(".")
        forged = f"{version}.{int(expires) + 10**6}.{nonce}.{mac}"
        client.cookies.set(SESSION_COOKIE, forged)
        assert client.get("/api/admin/session").json()["admin"] is False


def test_signing_out_with_the_cookie_alone_needs_same_origin_proof(
    locked: UvicornThread,
) -> None:
    with http(locked) as client:
        csrf = sign_in(client).json()["csrf_token"]
        refused = client.delete("/api/admin/session")
        assert refused.status_code == 403
        assert refused.json()["error"] == "csrf_failed"
        assert client.get("/api/admin/session").json()["admin"] is True
        other = client.delete("/api/admin/session", headers={"Origin": "https://evil.example"})
        assert other.status_code == 403
        assert (
            client.delete("/api/admin/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        )
        assert client.get("/api/admin/session").json()["admin"] is False


# --- who may create orders -------------------------------------------------------------------


def test_creating_on_the_operators_key_is_for_administrators(locked: UvicornThread) -> None:
    with http(locked) as client:
        create = "/api/create-sample-order"
        assert client.post(create).status_code == 401
        assert client.post(create, headers={"X-API-Key": SERVICE_KEY}).status_code == 401
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post(create, headers=bearer).status_code == 201
        own = client.post(create, headers={"X-Autoenhance-Key": "caller-own-key"})
        assert own.status_code == 201


def test_without_an_admin_token_only_own_keys_create(make_settings: SettingsFactory) -> None:
    with UvicornThread(create_app(make_settings())) as server, http(server) as client:
        refused = client.post("/api/create-sample-order")
        assert refused.status_code == 403
        assert refused.json()["error"] == "admin_only"
        own = client.post("/api/create-sample-order", headers={"X-Autoenhance-Key": "mine-123"})
        assert own.status_code == 201


def test_sandbox_mode_creation_is_open(tmp_path: object) -> None:

    settings = settings_of(data_dir=tmp_path, sandbox_processing_delay=0)
    with UvicornThread(create_app(settings)) as server, http(server) as client:
        response = client.post("/api/create-sample-order")
        assert response.status_code == 201
        assert response.json()["uploaded"] == 3
