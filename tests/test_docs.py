"""The documentation site builds in strict mode, covers every public name, and its examples run.

The build is real (``mkdocs build --strict`` in a child process, the
tutorials executed in real kernels unless the cache under ``build/docs-cache``
already holds them for this exact code); the doctests run every docstring
example of the package in a child process, each in a fresh folder.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import airt_nb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docs_build import notebooks, reference  # noqa: E402

REFERENCE = ROOT / "docs" / "reference"
EXAMPLES = re.compile(r"^\s*Examples?\n\s*-+\s*$", re.M)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRT_")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module in strict mode."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    warnings = [line for line in done.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0, "\n".join(warnings) or done.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.timeout(900)  # the first one builds the site: the tutorials run unless cached
def test_the_site_builds_in_strict_mode_with_every_page(site: Path) -> None:
    for page in (
        "index.html",
        "concepts/index.html",
        "specs/index.html",
        "actions/index.html",
        "approvals/index.html",
        "recovery/index.html",
        "deployment/index.html",
        "reference/engine/index.html",
        "reference/cli/index.html",
        "tutorials/01-quickstart/index.html",
    ):
        assert (site / page).is_file(), page


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.timeout(900)  # the first one builds the site: the tutorials run unless cached
def test_every_public_name_has_an_entry_in_the_built_reference(site: Path) -> None:
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html"))
    for name in airt_nb.__all__:
        assert f'id="airt_nb.{name}"' in html, name


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.timeout(900)  # the first one builds the site: the tutorials run unless cached
def test_tutorial_pages_show_executed_outputs_and_panel_snapshots(site: Path) -> None:
    page = (site / "tutorials" / "01-quickstart" / "index.html").read_text(encoding="utf-8")
    assert "airt-snapshot" in page  # the run's panel, as its static snapshot
    assert "COMPLETED" in page  # an output of today's run
    assert "widget-view+json" not in page  # no live view left to render as nothing
    approvals = (site / "tutorials" / "02-approvals" / "index.html").read_text(encoding="utf-8")
    assert "ROLLED_BACK" in approvals


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.timeout(900)  # the first one builds the site: the tutorials run unless cached
def test_generated_reference_tables_come_from_the_code(site: Path) -> None:
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("list", "show", "approve", "reject", "resume", "rollback", "cancel", "serve", "dashboard"):
        assert f"airt {command}" in cli, command
    frames = (site / "reference" / "frames" / "index.html").read_text(encoding="utf-8")
    assert "datetime64[us, UTC]" in frames
    assert "timedelta64[us]" in frames
    env = (site / "reference" / "environment" / "index.html").read_text(encoding="utf-8")
    for var in reference.environment_read(ROOT / "airt_nb"):
        assert var in env, var
    magics = (site / "reference" / "notebook" / "index.html").read_text(encoding="utf-8")
    assert "--dry-run" in magics
    assert "%workflow list" in magics


def test_every_public_name_has_a_reference_entry() -> None:
    assert reference.missing_reference_entries(REFERENCE) == []


def test_an_export_without_a_reference_entry_is_reported(tmp_path: Path) -> None:
    pages = tmp_path / "reference"
    pages.mkdir()
    text = "\n".join(
        line
        for page in sorted(REFERENCE.glob("*.md"))
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.strip() != "::: airt_nb.Run"
    )
    (pages / "all.md").write_text(text, encoding="utf-8")

    assert reference.missing_reference_entries(pages) == ["Run"]
    _, problems = reference.api_index_markdown(pages)
    assert problems == ["airt_nb.Run is exported but has no `::: airt_nb.Run` entry in docs/reference/*.md"]


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    lacking = []
    for name in airt_nb.__all__:
        obj = getattr(airt_nb, name)
        if isinstance(obj, str):
            continue
        doc = inspect.getdoc(obj) or ""
        if not EXAMPLES.search(doc) or ">>>" not in doc.split("Example", 1)[-1]:
            lacking.append(name)
    assert lacking == []


DOCTESTS = r"""
import doctest, importlib, os, pkgutil, sys, tempfile
import airt_nb

flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.IGNORE_EXCEPTION_DETAIL
ran = failed = 0
for info in sorted(pkgutil.walk_packages(airt_nb.__path__, "airt_nb."), key=lambda i: i.name):
    module = importlib.import_module(info.name)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, globs={**vars(module), "airt_nb": airt_nb}):
        if not any(not ex.options.get(doctest.SKIP) for ex in test.examples):
            continue
        with tempfile.TemporaryDirectory(prefix="airt-doctest-") as folder:
            os.chdir(folder)
            runner = doctest.DocTestRunner(optionflags=flags)
            result = runner.run(test, out=sys.stdout.write)
        ran += result.attempted
        failed += result.failed
print(f"doctests: {ran} examples, {failed} failed")
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_docstring_examples_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DOCTESTS], cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    ran = int(re.search(r"doctests: (\d+) examples", done.stdout).group(1))  # type: ignore[union-attr]
    assert ran >= 40, done.stdout


def test_a_missing_description_fails_the_generated_tables() -> None:
    import pandas as pd

    frame = pd.DataFrame({"workflow_id": ["a"], "brand_new": [1]})
    _, problems = reference.frames_markdown({"common": {"workflow_id": "id"}, "runs": {"gone": "x"}}, {"runs": frame})
    assert problems == [
        "column 'brand_new' of runs() has no description: add it to docs/reference/descriptions.yml",
        "column 'gone' of runs() is described in docs/reference/descriptions.yml but the frame has no such column; "
        "remove it",
    ]
    _, problems = reference.spec_markdown({"workflow": {}, "step": {}, "retry": {}})
    assert "spec key workflow. 'max_parallel' has no description: add it to docs/reference/descriptions.yml" in problems
    _, problems = reference.environment_markdown({"airt": {}}, ROOT / "airt_nb")
    assert any("'AIRT_DB' has no description" in p for p in problems)


def test_live_views_are_dropped_and_one_without_a_snapshot_is_reported() -> None:
    view = {"output_type": "display_data", "data": {notebooks.WIDGET_VIEW: {"model_id": "m"}, "text/plain": "x"}}
    snapshot = {"output_type": "display_data", "data": {"text/html": '<div class="airt-snapshot">saved</div>'}}
    nb = {
        "metadata": {"widgets": {"state": {}}},
        "cells": [
            {"cell_type": "code", "outputs": [view, snapshot]},
            {"cell_type": "code", "outputs": [view]},
        ],
    }

    assert notebooks.snapshot_problems(nb) == ["cell 2 displays a widget with no static snapshot after it"]
    shown = notebooks.strip_live_views(json.loads(json.dumps(nb)))
    assert shown["cells"][0]["outputs"] == [snapshot]
    assert "widgets" not in shown["metadata"]
