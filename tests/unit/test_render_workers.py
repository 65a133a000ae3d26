"""How many renders run at once: `DECODE_WORKERS`, by default one per CPU this process may run
on, at most a cap."""

from __future__ import annotations

import os

import pytest

from app.core.config import DEFAULT_DECODE_WORKERS_CAP, usable_cores
from tests.support import settings_of

CORES = min(DEFAULT_DECODE_WORKERS_CAP, len(os.sched_getaffinity(0)))


def test_by_default_one_decode_worker_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECODE_WORKERS", raising=False)
    assert settings_of().decode_workers == CORES
    assert settings_of(decode_workers=0).decode_workers == CORES


def test_a_number_of_decode_workers_is_kept() -> None:
    assert settings_of(decode_workers=3).decode_workers == 3


def test_the_default_follows_the_cpus_this_process_may_use_not_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # a 2-CPU container
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # on a 64-core host
    assert usable_cores(cap=DEFAULT_DECODE_WORKERS_CAP) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert usable_cores(cap=DEFAULT_DECODE_WORKERS_CAP) == DEFAULT_DECODE_WORKERS_CAP
