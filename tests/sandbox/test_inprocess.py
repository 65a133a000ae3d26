"""The sandbox mounted in-process (httpx.ASGITransport), its configuration and webhooks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sandbox import DEMO_ORDER_ID, SandboxConfig, create_sandbox_app
from app.sandbox.faults import StatusFault
from testkit.processes import ROOT, sandbox_process
from tests.sandbox.helpers import InProcess, assert_http_error, jpeg_bytes, open_image
from tests.support import UvicornThread


async def test_full_flow_in_process_follows_the_redirect(inprocess: InProcess) -> None:
    async with inprocess() as client:
        # No lifespan runs under ASGITransport; the demo order must exist anyway.
        demo = await client.get(f"/orders/{DEMO_ORDER_ID}")
        assert demo.status_code == 200
        assert demo.json()["total_images"] >= 3

        order = (await client.post("/orders", json={"name": "In-process"})).json()
        image = (
            await client.post("/images", json={"image_name": "a", "order_id": order["order_id"]})
        ).json()
        assert image["upload_url"].startswith("http://sandbox.internal/uploads/")
        put = await client.put(image["upload_url"], content=jpeg_bytes())
        assert put.status_code == 200

        current = (await client.get(f"/orders/{order['order_id']}")).json()
        assert current["status"] == "processed"  # processing_delay=0 settles during the PUT

        response = await client.get(
            f"/images/{image['image_id']}/enhanced",
            params={"format": "png"},
            follow_redirects=True,
        )
        assert response.status_code == 200
        assert response.url.host == "sandbox.internal"
        assert response.url.path.startswith("/assets/")
        assert response.history[0].status_code == 302
        assert open_image(response.content).format == "PNG"


async def test_redirect_works_when_mounted_under_a_prefix() -> None:
    parent = FastAPI()
    parent.mount("/sandbox", create_sandbox_app(SandboxConfig(processing_delay=0)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=parent),
        base_url="http://service.internal/sandbox/v3",
        headers={"x-api-key": "k"},
    ) as client:
        order = (await client.get(f"/orders/{DEMO_ORDER_ID}")).json()
        first = await client.get(f"/images/{order['images'][0]['image_id']}/enhanced")
        assert first.headers["location"].startswith("/sandbox/assets/")
        followed = await client.get(
            f"/images/{order['images'][0]['image_id']}/enhanced", follow_redirects=True
        )
        assert followed.status_code == 200
        assert open_image(followed.content).format == "JPEG"


async def test_reset_restores_the_start_state(inprocess: InProcess) -> None:
    async with inprocess(credits=5) as client:
        control = "http://sandbox.internal/_sandbox"
        order_id = (await client.post("/orders/")).json()["order_id"]
        await client.post(f"{control}/faults", json={"kind": "down", "scope": "enhanced"})
        await client.put(f"{control}/account", json={"credits": 0})
        assert (await client.post(f"{control}/reset")).json() == {"status": "ok"}
        assert (await client.get(f"/orders/{order_id}")).status_code == 404
        assert (await client.get(f"/orders/{DEMO_ORDER_ID}")).status_code == 200
        assert (await client.get(f"{control}/faults")).json()["faults"] == []
        assert (await client.get(f"{control}/account")).json() == {"credits": 5}


async def test_configured_api_keys_are_the_only_ones_accepted(inprocess: InProcess) -> None:
    async with inprocess(api_keys="good-1, good-2") as client:
        assert (await client.post("/orders/", headers={"x-api-key": "good-2"})).status_code == 200
        assert_http_error(await client.post("/orders/", headers={"x-api-key": "k1"}), 401)
        assert_http_error(await client.post("/orders/", headers={"x-api-key": ""}), 401)


def test_every_knob_reads_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SANDBOX_PROCESSING_DELAY": "0.5",
        "SANDBOX_REDIRECT_DOWNLOADS": "false",
        "SANDBOX_NOT_READY_STATUS": "404",
        "SANDBOX_CREDITS": "3",
        "SANDBOX_API_KEYS": "a, b",
        "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "SANDBOX_WEBHOOK_AUTH": "Bearer s3cret",
        "SANDBOX_LATENCY_MS": "25",
        "SANDBOX_BANDWIDTH_BYTES_PER_S": "1000000",
        "SANDBOX_SEED_DEMO": "0",
        "SANDBOX_SAMPLE_DIR": "/tmp",
        "SANDBOX_FAULTS": json.dumps([{"kind": "status", "status": 502, "count": 1}]),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = SandboxConfig()
    assert config.processing_delay == 0.5
    assert config.redirect_downloads is False
    assert config.not_ready_status == 404
    assert config.credits == 3
    assert config.api_keys == ["a", "b"]
    assert (config.webhook_url, config.webhook_auth) == (
        env["SANDBOX_WEBHOOK_URL"],
        "Bearer s3cret",
    )
    assert config.seed_demo is False
    assert str(config.sample_dir) == "/tmp"
    kinds = [fault.kind for fault in config.start_faults()]
    assert kinds == ["latency", "bandwidth", "status"]
    assert config.faults == [StatusFault(kind="status", status=502, count=1)]


def test_unsafe_values_fail_fast() -> None:
    for bad in ({"not_ready_status": 200}, {"credits": -1}, {"processing_delay": -1}):
        with pytest.raises(ValidationError):
            SandboxConfig(**bad)  # type: ignore[arg-type]


def test_command_line_flags_and_environment(sandbox_url: str) -> None:
    fault = json.dumps({"kind": "status", "status": 503, "scope": "order", "count": 1})
    args = ("--fault", fault, "--redirect-downloads", "false", "--credits", "0")
    with sandbox_process(*args, env={"SANDBOX_API_KEYS": "only-me"}) as root:
        url = f"{root}/v3"
        me = {"x-api-key": "only-me"}
        assert httpx.get(f"{url}/orders/{DEMO_ORDER_ID}", headers=me).status_code == 503
        order = httpx.get(f"{url}/orders/{DEMO_ORDER_ID}", headers=me).json()
        image_id = order["images"][0]["image_id"]
        direct = httpx.get(f"{url}/images/{image_id}/enhanced", headers=me)
        assert direct.status_code == 200
        assert direct.headers["content-type"] == "image/jpeg"
        bought = httpx.get(f"{url}/images/{image_id}/enhanced?preview=false", headers=me)
        assert_http_error(bought, 402)
        assert_http_error(httpx.post(f"{url}/orders/", headers={"x-api-key": "other"}), 401)


def test_bad_flags_are_rejected_before_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.sandbox", "--fault", '{"kind": "nope"}'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid fault" in result.stderr


class WebhookSink:
    """A receiver app that records webhook POSTs (JSON body, Authorization header)."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, Any], str | None]] = []
        self.app = Starlette(routes=[Route("/hook", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.events.append((await request.json(), request.headers.get("authorization")))
        return Response(status_code=204)


async def test_webhooks_report_each_processed_image(inprocess: InProcess) -> None:
    sink = WebhookSink()
    with UvicornThread(sink.app) as receiver:
        config = {
            "webhook_url": f"{receiver.url}/hook",
            "webhook_auth": "Bearer hook-secret",
            "processing_delay": 0.05,
        }
        async with inprocess(**config) as client:
            order_id = (await client.post("/orders/")).json()["order_id"]
            images = []
            for name in ("a", "b"):
                body = {"image_name": name, "order_id": order_id}
                images.append((await client.post("/images/", json=body)).json())
            for image in images:
                await client.put(image["upload_url"], content=jpeg_bytes())
            for _ in range(200):
                if len(sink.events) == 2:
                    break
                await asyncio.sleep(0.02)
            await client.app.state.sandbox.processor.aclose()
    assert len(sink.events) == 2
    assert {auth for _, auth in sink.events} == {"Bearer hook-secret"}
    by_image = {event["image_id"]: event for event, _ in sink.events}
    assert set(by_image) == {image["image_id"] for image in images}
    for event in by_image.values():
        assert event["event"] == "image_processed"
        assert event["order_id"] == order_id
        assert event["error"] is False
    assert sink.events[-1][0]["order_is_processing"] is False
