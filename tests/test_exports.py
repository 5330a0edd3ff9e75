"""The public surface is small and pinned; the core imports no notebook or data libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import airt_nb

ROOT = Path(__file__).resolve().parents[1]


def test_public_names_are_exactly_these() -> None:
    assert set(airt_nb.__all__) >= {
        "Engine",
        "Run",
        "action",
        "AirtError",
        "SpecError",
        "ActionError",
        "PolicyError",
        "runs",
        "steps",
        "approvals",
        "compensations",
        "diff",
        "load_ipython_extension",
    }
    for name in airt_nb.__all__:
        assert hasattr(airt_nb, name), name


def test_every_error_is_an_airt_error() -> None:
    for name in (
        "SpecError",
        "ActionError",
        "PolicyError",
        "ApprovalError",
        "EventError",
        "WorkflowStateError",
        "NotFoundError",
        "StoreError",
        "WaitTimeoutError",
    ):
        assert issubclass(getattr(airt_nb, name), airt_nb.AirtError), name


def test_the_core_imports_no_pandas_ipywidgets_or_ipython(tmp_path: Path) -> None:
    code = (
        "import sys, airt_nb\n"
        "eng = airt_nb.Engine(sys.argv[1])\n"
        "run = eng.start({'name': 'w', 'steps': [{'name': 's', 'action': 'wait', 'inputs': {'seconds': 0}}]})\n"
        "run.wait(10); eng.close()\n"
        "print(sorted(m for m in ('pandas', 'ipywidgets', 'IPython', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "core.db"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
