"""Helpers of the resume tests: break a first download at a chosen byte, find offsets."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest

from testkit.s3 import S3Server
from tests.conftest import SettingsFactory


def broken_download(url: str, offset: int, **kwargs: Any) -> bytes:
    """The first `offset` bytes of a streamed download, then the connection is dropped."""
    received = b""
    with httpx.stream("GET", url, timeout=60, **kwargs) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= offset:
                break
    return received[:offset]


def offsets(archive: bytes) -> dict[str, int]:
    """A byte inside the second entry's local header, one inside the third entry's data, and
    one inside the central directory."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        infos = zf.infolist()
        data_start = infos[2].header_offset + 30 + len(infos[2].filename.encode())
        return {
            "local_header": infos[1].header_offset + 11,
            "image_data": data_start + infos[2].file_size // 2,
            "central_directory": zf.start_dir + 40,
        }


def store_settings(
    kind: str, make_settings: SettingsFactory, request: pytest.FixtureRequest, **extra: Any
) -> Any:
    """Settings of a service whose archive store is a local directory or an S3 bucket."""
    if kind == "local":
        return make_settings(**extra)
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    return make_settings(
        archive_store=f"s3://{bucket}/archives", s3_endpoint_url=server.endpoint, **extra
    )
