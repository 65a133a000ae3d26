"""Local state is private: the data directory 0700, SQLite files (and their WAL/SHM) 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from app.main import create_app
from testkit.jobs import FAST_JOBS
from tests.conftest import SettingsFactory, create_order
from tests.jobs.support import wait_state
from tests.support import UvicornThread

ADMIN_TOKEN = "admin-token-0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_service_keeps_its_state_private(
    make_settings: SettingsFactory, sandbox: httpx.Client, tmp_path: Path
) -> None:
    data = tmp_path / "fresh" / "data"
    old_umask = os.umask(0o022)  # the usual umask, which leaves new files world-readable
    try:
        settings = make_settings(**{**FAST_JOBS, "data_dir": data, "admin_token": ADMIN_TOKEN})
        order = create_order(sandbox, images=1)
        with (
            UvicornThread(create_app(settings)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            job = client.post(f"/orders/{order['order_id']}/jobs").json()
            assert wait_state(client, job["status_url"])["state"] == "complete"
            client.post("/api/admin/session", json={"token": ADMIN_TOKEN}).raise_for_status()
            databases = sorted(data.glob("*.sqlite3*"))
            assert {p.name: mode(p) for p in databases} == {p.name: 0o600 for p in databases}
            names = {p.name for p in databases}
            assert {"jobs.sqlite3", "errors.sqlite3", "sessions.sqlite3"} <= names
            assert "jobs.sqlite3-wal" in names  # WAL side files are covered too
    finally:
        os.umask(old_umask)
    assert mode(data) == 0o700
    assert mode(data.parent) == 0o700
    assert mode(data / "spool") == 0o700  # where images wait to be written, and builds


def test_databases_left_readable_by_an_earlier_version_are_tightened(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("jobs.sqlite3", "errors.sqlite3"):
        (data / name).touch()
        os.chmod(data / name, 0o644)
    with UvicornThread(create_app(make_settings(data_dir=data))):
        pass
    assert mode(data / "jobs.sqlite3") == 0o600
    assert mode(data / "errors.sqlite3") == 0o600
