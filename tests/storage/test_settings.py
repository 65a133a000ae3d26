"""Store settings: a bad `ARCHIVE_STORE` stops the service at start-up, naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.main import create_app
from app.storage import LocalArchiveStore, open_store
from app.storage._s3 import S3ArchiveStore
from testkit.processes import ROOT
from testkit.s3 import S3Server
from tests.conftest import SettingsFactory
from tests.support import UvicornThread, settings_of


def settings(**values: object) -> Settings:
    return settings_of(**values)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gs://bucket/x", "must be a directory or s3://bucket/prefix"),
        ("https://example.com/bucket", "must be a directory or s3://bucket/prefix"),
        ("s3://Bad_Bucket/x", "invalid S3 bucket"),
        ("s3://ab", "invalid S3 bucket"),
        ("s3://bucket-name/a/../b", "invalid prefix"),
    ],
)
def test_a_bad_archive_store_is_refused(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(archive_store=value)


def test_redirects_need_object_storage() -> None:
    with pytest.raises(ValidationError, match="ARCHIVE_REDIRECT=true needs ARCHIVE_STORE=s3"):
        settings(archive_redirect=True)
    assert settings(archive_redirect=True, archive_store="s3://bucket-name").archive_redirect


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    local = open_store(settings(data_dir=tmp_path))
    assert isinstance(local, LocalArchiveStore)
    assert local.root == tmp_path / "archives"
    configured = settings(
        archive_store="s3://bucket-name/some/prefix/",
        s3_endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="id",
        aws_secret_access_key="secret",
        aws_region="eu-west-1",
    )
    assert configured.archive_store == "s3://bucket-name/some/prefix"
    remote = open_store(configured)
    assert isinstance(remote, S3ArchiveStore)
    assert remote.description == "s3://bucket-name/some/prefix"
    cache, jobs = remote.quotas
    assert cache.evictable
    assert cache.namespaces == ("cache", "manifests")
    assert not jobs.evictable
    assert jobs.max_bytes == configured.job_storage_max_bytes


def test_the_service_does_not_start_with_a_bad_archive_store(tmp_path: Path) -> None:
    env = {**os.environ, "ARCHIVE_STORE": "ftp://archives", "DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app:app", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert b"ARCHIVE_STORE must be a directory or s3://bucket/prefix" in result.stderr


def test_ready_names_an_unusable_bucket(
    make_settings: SettingsFactory, s3_server: S3Server
) -> None:
    good = make_settings(archive_store=f"s3://{s3_server.bucket()}/x", **s3_settings(s3_server))
    with UvicornThread(create_app(good)) as server:
        ready = httpx.get(f"{server.url}/ready", timeout=30)
    assert ready.json()["checks"]["archive_store"]["ok"], ready.text
    missing = make_settings(archive_store="s3://no-such-bucket/x", **s3_settings(s3_server))
    with UvicornThread(create_app(missing)) as server:
        ready = httpx.get(f"{server.url}/ready", timeout=30)
    assert ready.status_code == 503
    check = ready.json()["checks"]["archive_store"]
    assert not check["ok"]
    assert "s3://no-such-bucket/x is unusable" in check["detail"]
    assert S3Server.SECRET_KEY not in ready.text


def s3_settings(server: S3Server) -> dict[str, str]:
    return {
        "s3_endpoint_url": server.endpoint,
        "aws_access_key_id": server.ACCESS_KEY,
        "aws_secret_access_key": server.SECRET_KEY,
        "aws_region": server.REGION,
    }
