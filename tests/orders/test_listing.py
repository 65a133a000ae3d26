"""GET /orders over real sockets: who may list, paging, newest first, and the one-word states."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.routes.orders import MAX_CURSOR_CHARS
from app.sandbox import DEMO_ORDER_ID
from tests.orders.conftest import (
    ADMIN_TOKEN,
    OPERATOR_KEY,
    SERVICE_KEY,
    ServiceFactory,
    synthetic_order,
    unique_key,
)
from tests.support import UvicornThread


def page(client: httpx.Client, **params: Any) -> dict:
    response = client.get("/orders", params=params)
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def test_own_key_lists_its_orders_only_newest_first_page_by_page(
    live_service: ServiceFactory, private_sandbox: httpx.Client, private_sandbox_url: str
) -> None:
    mine, theirs = unique_key("mine"), unique_key("theirs")
    created = [synthetic_order(private_sandbox, api_key=mine, name=f"Shoot {i}") for i in range(4)]
    other = synthetic_order(private_sandbox, api_key=theirs, name="Not yours")
    with (
        live_service(private_sandbox_url) as server,
        httpx.Client(base_url=server.url, headers={"X-Autoenhance-Key": mine}) as client,
    ):
        first = page(client, limit=3)
        assert [o["name"] for o in first["orders"]] == ["Shoot 3", "Shoot 2", "Shoot 1"]
        assert first["next_cursor"]
        second = page(client, limit=3, cursor=first["next_cursor"])
        assert [o["name"] for o in second["orders"]] == ["Shoot 0"]
        assert second["next_cursor"] is None

    listed = {o["order_id"] for o in first["orders"] + second["orders"]}
    assert listed == {order["order_id"] for order in created}
    assert other["order_id"] not in listed
    newest = first["orders"][0]
    source = created[3]
    assert newest == {
        "order_id": source["order_id"],
        "name": "Shoot 3",
        "title": "Shoot 3",
        "created_at": newest["created_at"],
        "image_count": 2,
        "status": "ready",
        "thumbnail_url": f"/orders/{source['order_id']}/images/"
        f"{source['images'][0]['image_id']}/thumbnail",
    }
    assert newest["created_at"].startswith(source["created_at"][:19])


def test_a_page_is_filled_from_several_upstream_pages(
    live_service: ServiceFactory, private_sandbox: httpx.Client, private_sandbox_url: str
) -> None:
    # The sandbox, like the API, answers at most 15 orders per page.
    key = unique_key("many")
    ids = [synthetic_order(private_sandbox, api_key=key, images=1)["order_id"] for _ in range(17)]
    with (
        live_service(private_sandbox_url) as server,
        httpx.Client(base_url=server.url, headers={"X-Autoenhance-Key": key}) as client,
    ):
        body = page(client, limit=20)
    assert [o["order_id"] for o in body["orders"]] == ids[::-1]
    assert body["next_cursor"] is None


def test_states_and_thumbnails_of_the_list(
    live_service: ServiceFactory, private_sandbox: httpx.Client, private_sandbox_url: str
) -> None:
    key = unique_key("states")
    orders = {
        "ready": synthetic_order(private_sandbox, api_key=key),
        "processing": synthetic_order(private_sandbox, api_key=key, statuses={1: "processing"}),
        "waiting": synthetic_order(private_sandbox, api_key=key, statuses={0: "waiting"}),
        "error": synthetic_order(private_sandbox, api_key=key, status="error"),
        "partial": synthetic_order(private_sandbox, api_key=key, statuses={0: "error"}),
        "expired": synthetic_order(private_sandbox, api_key=key, statuses={0: "expired"}),
        "empty": synthetic_order(private_sandbox, api_key=key, images=0),
    }
    with (
        live_service(private_sandbox_url) as server,
        httpx.Client(base_url=server.url, headers={"X-Autoenhance-Key": key}) as client,
    ):
        listed = {o["order_id"]: o for o in page(client)["orders"]}

    def item(label: str) -> dict:
        return listed[orders[label]["order_id"]]

    assert {label: item(label)["status"] for label in orders} == {
        "ready": "ready",
        "processing": "processing",
        "waiting": "processing",
        "error": "error",
        "partial": "partial",
        "expired": "partial",
        "empty": "empty",
    }
    # The cover is the first image that is ready; none when no image is.
    second = orders["partial"]["images"][1]["image_id"]
    assert item("partial")["thumbnail_url"].endswith(f"/images/{second}/thumbnail")
    assert item("error")["thumbnail_url"] is None
    assert item("empty")["thumbnail_url"] is None
    assert item("empty")["image_count"] == 0


def test_the_operators_orders_are_listed_to_administrators_only(
    live_service: ServiceFactory, private_sandbox: httpx.Client, private_sandbox_url: str
) -> None:
    operator_order = synthetic_order(private_sandbox, api_key=OPERATOR_KEY, name="Operator's")
    # No SERVICE_API_KEY and no ADMIN_TOKEN: anyone may download, nobody may list.
    with live_service(private_sandbox_url) as server:
        refused = httpx.get(f"{server.url}/orders")
        assert refused.status_code == 403
        assert refused.json()["error"] == "admin_only"
        summary = httpx.get(f"{server.url}/orders/{operator_order['order_id']}")
        assert summary.status_code == 200
    with live_service(
        private_sandbox_url, admin_token=ADMIN_TOKEN, service_api_key=SERVICE_KEY
    ) as server:
        assert httpx.get(f"{server.url}/orders").status_code == 401
        service_key_only = httpx.get(f"{server.url}/orders", headers={"X-API-Key": SERVICE_KEY})
        assert service_key_only.status_code == 401
        wrong = httpx.get(
            f"{server.url}/orders", headers={"Authorization": "Bearer not-the-admin-token"}
        )
        assert wrong.status_code == 401
        admin = httpx.get(
            f"{server.url}/orders", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert admin.status_code == 200
        assert operator_order["order_id"] in {o["order_id"] for o in admin.json()["orders"]}


def test_in_sandbox_mode_anyone_may_list(sandbox_mode_service: ServiceFactory) -> None:
    with sandbox_mode_service() as server:
        body = httpx.get(f"{server.url}/orders").json()
        assert DEMO_ORDER_ID in {o["order_id"] for o in body["orders"]}
    with sandbox_mode_service(service_api_key=SERVICE_KEY) as server:
        assert httpx.get(f"{server.url}/orders").status_code == 401
        keyed = httpx.get(f"{server.url}/orders", headers={"X-API-Key": SERVICE_KEY})
        assert keyed.status_code == 200
        assert DEMO_ORDER_ID in {o["order_id"] for o in keyed.json()["orders"]}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 0}, "validation_error"),
        ({"limit": 51}, "validation_error"),
        ({"limit": "many"}, "validation_error"),
        ({"cursor": "%%%"}, "invalid_cursor"),
        ({"cursor": "x" * (MAX_CURSOR_CHARS + 1)}, "validation_error"),
        ({"cursor": "_w"}, "invalid_cursor"),  # base64url of a byte that is no UTF-8
        ({"cursor": "bm90LWEtdG9rZW4"}, "invalid_cursor"),  # well-formed, never issued
    ],
)
def test_bad_paging_input_is_a_422(
    live_service: ServiceFactory,
    private_sandbox_url: str,
    params: dict[str, Any],
    code: str,
) -> None:
    key = unique_key("paging")
    with live_service(private_sandbox_url) as server:
        response = httpx.get(
            f"{server.url}/orders", params=params, headers={"X-Autoenhance-Key": key}
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code


LIES = {
    "not json": "<html>busy</html>",
    "not an object": json.dumps(["orders"]),
    "an order without id": json.dumps({"orders": [{"name": "x"}]}),
    "a number as token": json.dumps({"orders": [], "pagination": {"next_offset": 7}}),
    "a huge token": json.dumps(
        {"orders": [{"order_id": "a"}], "pagination": {"next_offset": "t" * 5000}}
    ),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_an_upstream_answer_that_is_no_order_list_is_a_502(
    live_service: ServiceFactory, lie: str
) -> None:
    async def orders(request: Request) -> Response:
        return Response(LIES[lie], media_type="application/json")

    fake = Starlette(routes=[Route("/v3/orders/", orders)])
    with (
        UvicornThread(fake) as upstream,
        live_service(f"{upstream.url}/v3", upstream_retries=0) as server,
    ):
        response = httpx.get(f"{server.url}/orders", headers={"X-Autoenhance-Key": "k-123"})
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "upstream_error"


def test_the_list_counts_against_the_lookups_limit(
    live_service: ServiceFactory, private_sandbox_url: str
) -> None:
    key = unique_key("limited")
    with live_service(private_sandbox_url, rate_limit_lookups="1/minute") as server:
        first = httpx.get(f"{server.url}/orders", headers={"X-Autoenhance-Key": key})
        second = httpx.get(f"{server.url}/orders", headers={"X-Autoenhance-Key": key})
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"] == "rate_limited"
