"""Shared fixtures: a fresh database file under tmp_path and an engine on it.

Tests never touch the working directory's airt.db: every engine gets its own
file, and its own action registry so tests do not leak actions into each other.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import airt_nb
from airt_nb import Registry

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(path_or_name: str, why: str) -> str:
    """The tool's path; outside CI a missing tool skips the test, under CI it fails loudly."""
    found = path_or_name if os.path.exists(path_or_name) else shutil.which(path_or_name)
    if found:
        return found
    if IN_CI:
        pytest.fail(f"{path_or_name} is missing but CI must run {why}; install it in .ci/run")
    pytest.skip(f"{path_or_name} not installed ({why})")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "airt.db"


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def engine(db_path: Path, registry: Registry) -> Iterator[airt_nb.Engine]:
    eng = airt_nb.Engine(db_path, registry=registry, user="tester")
    yield eng
    eng.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AIRT_DB", "AIRT_USER", "AIRT_WEBHOOK_URL", "AIRT_WEBHOOK_SECRET", "AIRT_POLICY", "AIRT_RECOVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def poll_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Check ``predicate`` every ``interval`` seconds until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
