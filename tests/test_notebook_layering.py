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


# -- the core's own imports ------------------------------------------------------------------------------

# The engine hosts executions, decisions and sweeps; they reach it only through their *Host protocols.
HOSTED = (
    "execution", "compensation", "decisions", "recovery", "leases", "policy_gate", "failures", "gating",
    "reminders", "approval_rules", "wait_events", "subworkflows", "aioloop", "hosting", "adoption", "stopping",
    "housekeeping", "newruns", "forking",
)  # fmt: skip
CORE = (
    "engine", *HOSTED, "spec", "plan", "actions", "context", "expressions", "limits", "ownership", "timers",
    "events", "errors", "identity", "timeutil", "run", "webhooks", "urls", "undocopies", "store", "session",
    "fields", "conditions", "approvalspec", "preview", "specgraph", "policy", "stepkinds", "forks", "schedules",
    "builtin_actions", "file_actions", "fileops", "yamltext", "suggest", "workflow_ids",
)  # fmt: skip
# A Run is also what a notebook shows and reads as frames: these methods of it import the layer above
# when they are called (pandas, IPython, ipywidgets), never before.
RUN_VIEWS = {"frames", "magics", "timelines", "widgets"}


def _airt_imports(path: Path) -> set[str]:
    """airt_nb modules ``path`` imports at run time (imports under ``if TYPE_CHECKING:`` excluded)."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - node.level + 1]
            target = (*base, *(node.module.split(".") if node.module else ()))
        elif node.module and node.module.startswith("airt_nb"):
            target = tuple(node.module.split("."))
        else:
            continue
        if len(target) > 1:
            found.add(target[1])  # the top-level module (or subpackage) of airt_nb
        else:  # from . import engine: the names are modules
            found.update(alias.name for alias in node.names)
    return found - {path.stem if path.stem != "__init__" else package[-1]}


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        graph.setdefault(parts[0], set()).update(_airt_imports(path))
    for name in graph:
        graph[name].discard(name)
    return graph


def test_the_core_imports_form_no_circle() -> None:
    graph = {m: {d for d in deps if d in CORE} for m, deps in _graph().items() if m in CORE}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                pytest.fail(f"import circle: {' -> '.join([*path[path.index(dep) :], dep])}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_core_imports_nothing_above_it_but_the_runs_views() -> None:
    graph = _graph()
    upward = {(m, d) for m in CORE for d in graph.get(m, set()) if d not in CORE and d != "__init__"}
    assert upward == {("run", view) for view in RUN_VIEWS}
    run_source = (PACKAGE / "run.py").read_text()
    top_level = run_source.split("\nclass ", 1)[0]  # module level: before the first class
    assert not any(f"from .{view}" in top_level for view in RUN_VIEWS)


def test_what_the_engine_hosts_never_imports_the_engine() -> None:
    graph = _graph()
    assert {m for m in HOSTED if "engine" in graph.get(m, set())} == set()
