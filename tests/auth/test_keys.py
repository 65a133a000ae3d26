"""A callback receiver's key grants nothing else: not a download link, not a session.

Before keys were derived per purpose, callbacks were signed with `SIGNING_SECRET` itself, so
every receiver could sign a year-long link to full-quality images without any service key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.api.auth import SESSION_COOKIE
from app.core.security import Signer
from app.jobs.callbacks import job_callback_key
from app.main import create_app
from testkit.jobs import FAST_JOBS
from testkit.processes import ROOT
from tests.conftest import SettingsFactory, create_order
from tests.jobs.receivers import Receiver
from tests.jobs.support import wait_state
from tests.support import UvicornThread

SECRET = "root-signing-secret-0123456789"
SERVICE_KEY = "service-key-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
YEAR = 365 * 86400


@pytest.fixture
def locked(make_settings: SettingsFactory) -> Iterator[str]:
    settings = make_settings(
        **{
            **FAST_JOBS,
            "signing_secret": SECRET,
            "service_api_key": SERVICE_KEY,
            "admin_token": ADMIN_TOKEN,
        }
    )
    with UvicornThread(create_app(settings)) as server:
        yield server.url


def receivers_key(tmp_path: Path) -> bytes:
    """The key the operator hands to callback receivers (CALLBACK_SECRET is unset)."""
    env = {k: v for k, v in os.environ.items() if k not in {"CALLBACK_SECRET", "SIGNING_SECRET"}}
    env.update(SIGNING_SECRET=SECRET, DATA_DIR=str(tmp_path / "cli"), PYTHONPATH=str(ROOT))
    printed = subprocess.run(
        [sys.executable, "-m", "app.core.keys", "callback-secret"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return printed.stdout.strip()


def test_a_callback_receivers_key_signs_no_link_and_no_session(
    locked: str, sandbox: httpx.Client, tmp_path: Path
) -> None:
    order = create_order(sandbox, images=1)
    receiver = Receiver()
    operator = {"X-API-Key": SERVICE_KEY}
    with UvicornThread(receiver.app) as hook, httpx.Client(base_url=locked, timeout=30) as client:
        job = client.post(
            f"/orders/{order['order_id']}/jobs",
            params={"callback_url": f"{hook.url}/hook"},
            headers=operator,
        ).json()
        wait_state(client, job["status_url"], headers=operator)
        assert receiver.event.wait(20)
        headers, body = receiver.received[0]

        # The receiver holds its job's key, which the operator derives from the printed root.
        key = job["callback_secret"].encode()
        assert key == job_callback_key(receivers_key(tmp_path), job["job_id"])
        stamp, _, digest = headers["x-signature"].partition(",v1=")
        expected = hmac.new(key, stamp[2:].encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(digest, expected)  # this is the receiver's key
        assert client.get(json.loads(body)["download_url"]).status_code == 200

        images = f"/orders/{order['order_id']}/images"
        archive = f"/jobs/{job['job_id']}/download"
        # Neither the receiver's key nor the root secret (what receivers held before) signs links.
        for forger in (Signer(key), Signer(SECRET.encode())):
            link = forger.sign(images, {"preview": "false"}, ttl=YEAR).url
            assert client.get(link).status_code == 401
            assert client.get(forger.sign(archive, {}, ttl=YEAR).url).status_code == 403
            payload = f"v2.{2_000_000_000}.forged-nonce"
            tag = hashlib.sha256(b"admin-token:" + ADMIN_TOKEN.encode()).hexdigest()[:16]
            mac = forger.mac(f"admin-session|{tag}|{payload}".encode())
            client.cookies.set(SESSION_COOKIE, f"{payload}.{mac}")
            assert client.get("/api/admin/session").json()["admin"] is False
            client.cookies.clear()
