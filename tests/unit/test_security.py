"""Unit tests of `app.core.security`: credentials and signed links."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr

from app.core.config import Settings
from app.core.security import (
    OPERATOR,
    SANDBOX_OPERATOR_KEY,
    Credential,
    Signer,
    key_fingerprint,
    operator_credential,
)
from tests.support import settings_of


def _settings(**values: Any) -> Settings:
    return settings_of(data_dir=Path("var/unused"), **values)


def test_a_callers_own_key_is_filed_under_its_fingerprint() -> None:
    own = Credential.own_key("my-key")
    assert own.is_own_key
    assert own.api_key == "my-key"
    assert own.owner.endswith(key_fingerprint("my-key"))
    assert "my-key" not in own.owner
    assert "my-key" not in repr(own)


def test_the_operators_credential_is_the_configured_key() -> None:
    credential = operator_credential(_settings(autoenhance_api_key=SecretStr("live-key-123")))
    assert credential == Credential(api_key="live-key-123", owner=OPERATOR)
    assert not credential.is_own_key


def test_in_sandbox_mode_the_operator_sends_the_placeholder_key() -> None:
    credential = operator_credential(_settings(autoenhance_api_key=None))
    assert credential.api_key == SANDBOX_OPERATOR_KEY
    assert not credential.is_own_key


def test_a_signed_link_names_its_own_expiry_and_verifies() -> None:
    signer = Signer(b"k" * 32)
    link = signer.sign("/jobs/j1/download", {"format": "png"}, ttl=60, now=1_000_000.0)
    assert link.expires == 1_000_060
    parts = urlsplit(link.url)
    params = dict(parse_qsl(parts.query))
    assert parts.path == "/jobs/j1/download"
    assert params["expires"] == "1000060"
    assert params["format"] == "png"
    assert signer.verify(parts.path, params, now=1_000_059.0)
    assert not signer.verify(parts.path, params, now=1_000_061.0)
    assert not signer.verify("/jobs/j2/download", params, now=1_000_000.0)
