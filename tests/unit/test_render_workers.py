"""How many renders run at once: `DECODE_WORKERS`, by default one per CPU core."""

from __future__ import annotations

import os

import pytest

from tests.support import settings_of

CORES = min(64, os.cpu_count() or 1)


def test_by_default_one_decode_worker_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECODE_WORKERS", raising=False)
    assert settings_of().decode_workers == CORES
    assert settings_of(decode_workers=0).decode_workers == CORES


def test_a_number_of_decode_workers_is_kept() -> None:
    assert settings_of(decode_workers=3).decode_workers == 3
