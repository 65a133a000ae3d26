"""Signed admin session values: expiry inside the signature, bound to ADMIN_TOKEN."""

from __future__ import annotations

from pathlib import Path

from app.api.auth import csrf_token, issue_session, read_session
from app.core.config import Settings
from app.core.security import Signer
from tests.support import settings_of

TOKEN = "admin-token-0123456789"


def settings(token: str | None = TOKEN, ttl: int = 3600) -> Settings:
    return settings_of(admin_token=token, admin_session_ttl=ttl, data_dir=Path("unused"))


SIGNER = Signer(b"s" * 32)


def test_a_fresh_session_reads_back_until_it_expires() -> None:
    session = issue_session(SIGNER, settings(ttl=600), now=1_000_000)
    assert session.expires == 1_000_600
    assert read_session(session.value, SIGNER, settings(), now=1_000_599) == session
    assert read_session(session.value, SIGNER, settings(), now=1_000_600) is None


def test_tampering_with_any_part_breaks_the_signature() -> None:
    session = issue_session(SIGNER, settings(), now=1_000_000)
    version, expires, nonce, mac = session.value.split(".")
    later = str(int(expires) + 10**6)
    for forged in (
        f"{version}.{later}.{nonce}.{mac}",
        f"{version}.{expires}.{nonce}x.{mac}",
        f"v1.{expires}.{nonce}.{mac}",
        f"{version}.{expires}.{nonce}.{'0' * len(mac)}",
        f"{version}.{expires}.{nonce}",
        "",
        "x" * 1000,
    ):
        assert read_session(forged, SIGNER, settings(), now=1_000_001) is None


def test_another_secret_or_a_changed_admin_token_ends_every_session() -> None:
    session = issue_session(SIGNER, settings(), now=1_000_000)
    assert read_session(session.value, Signer(b"t" * 32), settings(), now=1_000_001) is None
    assert read_session(session.value, SIGNER, settings("another-token-0123456"), now=1) is None
    assert read_session(session.value, SIGNER, settings(None), now=1_000_001) is None


def test_csrf_tokens_differ_per_session() -> None:
    first = issue_session(SIGNER, settings(), now=1_000_000)
    second = issue_session(SIGNER, settings(), now=1_000_000)
    assert first.value != second.value
    assert csrf_token(SIGNER, first) != csrf_token(SIGNER, second)
