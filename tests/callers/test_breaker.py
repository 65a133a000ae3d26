"""One caller's failing key cannot open the circuit for everyone; `/ready` sees an open circuit.

Each test runs its own service (its own breakers) with a unique operator key, and every fault
it scripts in the shared sandbox targets only the keys of that test, so no other test's
requests can consume or trigger them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from app.upstream.breaker import CredentialBreakers
from app.upstream.errors import CircuitOpen, UpstreamRateLimited, UpstreamUnauthorized
from tests.conftest import SettingsFactory, create_order
from tests.support import UvicornThread

THRESHOLD = 3


@pytest.fixture
def operator_key() -> str:
    return f"operator-{uuid.uuid4().hex}"


@pytest.fixture
def service(make_settings: SettingsFactory, operator_key: str) -> Iterator[UvicornThread]:
    settings = make_settings(
        autoenhance_api_key=operator_key,
        upstream_retries=0,
        circuit_failure_threshold=THRESHOLD,
        circuit_cooldown=60,
        readiness_cache_seconds=0,
    )
    with UvicornThread(create_app(settings)) as server:
        yield server


def fault(sandbox: httpx.Client, **body: object) -> None:
    sandbox.post("/_sandbox/faults", json={"scope": "order", **body}).raise_for_status()


def summary(service: UvicornThread, order_id: str, key: str | None = None) -> httpx.Response:
    headers = {"X-Autoenhance-Key": key} if key else {}
    return httpx.get(f"{service.url}/orders/{order_id}", headers=headers, timeout=30)


def test_rate_limited_key_opens_only_its_own_circuit(
    service: UvicornThread, sandbox: httpx.Client
) -> None:
    order_id = create_order(sandbox, images=1)["order_id"]
    noisy, other = f"noisy-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"
    fault(sandbox, kind="status", status=429, retry_after=0, api_keys=[noisy])

    for _ in range(THRESHOLD):
        assert summary(service, order_id, noisy).status_code == 503
    refused = summary(service, order_id, noisy)
    assert refused.status_code == 503
    assert refused.json()["error"] == "upstream_unavailable"

    assert summary(service, order_id).status_code == 200  # the operator's key
    assert summary(service, order_id, other).status_code == 200  # an unrelated caller
    ready = httpx.get(f"{service.url}/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["circuit"]["ok"] is True


def test_refused_key_fails_fast_without_asking_upstream_again(
    service: UvicornThread, sandbox: httpx.Client
) -> None:
    order_id = create_order(sandbox, images=1)["order_id"]
    wrong = f"wrong-{uuid.uuid4().hex}"
    # The upstream refuses the key exactly THRESHOLD times, then would answer 200 again.
    fault(sandbox, kind="status", status=401, api_keys=[wrong], count=THRESHOLD)
    for _ in range(THRESHOLD):
        assert summary(service, order_id, wrong).status_code == 401
    # The key's own circuit is open: refused without a call (the upstream would now say 200).
    again = summary(service, order_id, wrong)
    assert again.status_code == 401
    assert again.json()["error"] == "upstream_unauthorized"
    assert summary(service, order_id).status_code == 200


def test_upstream_failures_open_the_shared_circuit_and_ready_says_so(
    service: UvicornThread, sandbox: httpx.Client, operator_key: str
) -> None:
    order_id = create_order(sandbox, images=1)["order_id"]
    # 5xx is upstream-wide; it ends after THRESHOLD answers, so the readiness probe of the
    # upstream itself succeeds afterwards and only the circuit check can fail.
    fault(sandbox, kind="status", status=500, api_keys=[operator_key], count=THRESHOLD)
    for _ in range(THRESHOLD):
        assert summary(service, order_id).status_code == 502
    assert summary(service, order_id).status_code == 503  # open: fails fast

    ready = httpx.get(f"{service.url}/ready", timeout=30)
    assert ready.status_code == 503, ready.text
    checks = ready.json()["checks"]
    assert checks["circuit"]["ok"] is False
    assert checks["upstream"]["ok"] is True


def test_credential_table_is_bounded_and_keyed_on_a_hash() -> None:
    table = CredentialBreakers(failure_threshold=1, cooldown=60, max_entries=3)
    keys = [f"made-up-key-{n}" for n in range(10)]
    for key in keys:
        table.record_failure(key, UpstreamRateLimited("429", retry_after=None))
    assert len(table) == 3
    assert all(key not in repr(table._entries) for key in keys)
    for key in keys[:-3]:  # forgotten: oldest out
        table.check(key)
    for key in keys[-3:]:
        with pytest.raises(CircuitOpen):
            table.check(key)


def test_credential_success_forgets_the_key_and_unauthorized_is_replayed() -> None:
    table = CredentialBreakers(failure_threshold=1, cooldown=60)
    table.record_failure("k", UpstreamUnauthorized("401", status_code=401))
    with pytest.raises(UpstreamUnauthorized):
        table.check("k")
    table.check("other")
    table.record_success("k")
    assert len(table) == 0
    table.check("k")
