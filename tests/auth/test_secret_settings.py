"""Every secret of the service is held to one rule: at least 16 characters, or refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from app.core.config import MIN_SECRET_CHARS, Settings
from testkit.processes import ROOT
from tests.support import settings_of

SECRETS = [
    "service_api_key",
    "admin_token",
    "signing_secret",
    "callback_secret",
    "webhook_auth_token",
    "metrics_token",
]


def settings(tmp_path: Path, **values: str) -> Settings:
    return settings_of(data_dir=tmp_path, **values)


@pytest.mark.parametrize("name", SECRETS)
def test_a_short_secret_is_refused_naming_the_setting(tmp_path: Path, name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=f"{name.upper()} must be at least 16"):
        settings(tmp_path, **{name: "x" * (MIN_SECRET_CHARS - 1)})
    assert getattr(settings(tmp_path, **{name: "x" * MIN_SECRET_CHARS}), name) is not None


def test_the_callback_secret_must_not_be_the_signing_secret(tmp_path: Path) -> None:
    secret = "one-secret-for-everything"
    with pytest.raises(pydantic.ValidationError, match="CALLBACK_SECRET must differ"):
        settings(tmp_path, signing_secret=secret, callback_secret=secret)


@pytest.mark.parametrize("name", ["WEBHOOK_AUTH_TOKEN", "METRICS_TOKEN", "CALLBACK_SECRET"])
def test_the_service_does_not_start_with_a_short_secret(tmp_path: Path, name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {s.upper() for s in SECRETS}}
    env.update({name: "short", "DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)})
    started = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app:app", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert f"{name} must be at least 16 characters long" in started.stderr.decode()
