"""The notebook layer sits on top: the core never loads IPython, ipywidgets or pandas."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import airt_nb

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airt_nb"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(("library", "allowed"), [("IPython", {"magics.py"}), ("ipywidgets", {"widgets"})])
def test_only_one_place_imports_each_notebook_library(library: str, allowed: set[str]) -> None:
    importers = {
        path.relative_to(PACKAGE).parts[0] for path in PACKAGE.rglob("*.py") if library in imported_modules(path)
    }
    assert importers == allowed


def test_core_and_notebook_commands_load_without_ipython_ipywidgets_or_pandas(tmp_path: Path) -> None:
    code = (
        "import sys, airt_nb, airt_nb.commands, airt_nb.session, airt_nb.views, airt_nb.timelines\n"
        f"eng = airt_nb.Engine({str(tmp_path / 'x.db')!r})\n"
        "run = eng.start('name: t\\nsteps:\\n  - name: a\\n    action: wait\\n    inputs: {seconds: 0}\\n')\n"
        "run.wait(10); repr(run.timeline()); eng.close()\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'pandas') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_notebook_entry_points_are_exported_and_lazy() -> None:
    for name in ("dashboard", "approvals_panel", "timeline"):
        assert name in airt_nb.__all__
        assert callable(getattr(airt_nb, name))
    module = importlib.import_module("airt_nb.timelines")  # a submodule import must not shadow the function
    assert airt_nb.timeline is module.timeline
