"""What stays when the live panel is gone: a saved notebook reopened, and an HTML export.

A panel is two outputs: the live widget and its static snapshot, kept current
through the snapshot's display id.  Reopened, a notebook has no widget models:
the snapshot must show the run's last state (never "Error displaying widget:
model not found"); exported to HTML, likewise.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from playwright.sync_api import expect

from .conftest import ARTIFACTS, KERNELSPEC, ROOT, Lab
from .driver import SPEC, cell, close_all, command, live, open_notebook, save, screenshot


def test_saved_notebook_reopened_shows_the_last_state_of_each_panel(page: Any, lab: Lab) -> None:
    path = lab.notebook("saved", ["%load_ext airt_nb", SPEC])
    open_notebook(page, path)
    command(page, "notebook:run-all-cells")
    panel = live(cell(page, 1))
    panel.locator(".airt-card").wait_for()
    panel.get_by_role("button", name="Approve", exact=True).click()
    panel.locator(".airt-header .airt-status-COMPLETED").wait_for()
    snapshot = cell(page, 1).locator(".airt-snapshot")
    snapshot.locator(".airt-header .airt-status-COMPLETED").wait_for(state="attached")  # kept current, hidden
    expect(snapshot).to_be_hidden()
    save(page)
    outputs = json.loads((lab.root / path).read_text())["cells"][1]["outputs"]
    assert "airt-status-COMPLETED" in "".join(outputs[-1]["data"]["text/html"])

    close_all(page)
    open_notebook(page, path)

    reopened = cell(page, 1)
    shown = reopened.locator(".airt-snapshot")
    expect(shown).to_be_visible()
    expect(shown.locator(".airt-header .airt-status-COMPLETED")).to_be_visible()
    expect(shown.locator(".airt-history")).to_contain_text("approved by reviewer")
    expect(shown.locator(".airt-stale")).to_contain_text("not live")
    expect(reopened.get_by_text("Error displaying widget")).to_be_hidden()
    expect(reopened.locator(".jp-OutputArea-child").first).to_be_hidden()  # the widget's output, whatever it says
    screenshot(reopened, "reopened-saved-notebook")


def test_html_export_of_an_executed_tutorial_shows_each_run_final_state(page: Any, lab: Lab, tmp_path: Any) -> None:
    book = nbformat.read(ROOT / "notebooks/01-quickstart.ipynb", as_version=4)
    book.metadata["kernelspec"] = KERNELSPEC
    env = {k: v for k, v in lab.env.items() if not k.startswith("JUPYTER_")}
    NotebookClient(book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute(
        env=env
    )
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(book)
    exported = ARTIFACTS / "quickstart-export.html"
    exported.write_text(html)

    snapshots = html.split('class="airt-root airt-panel airt-snapshot"')[1:]
    assert snapshots, "the export has no static view of the run"
    assert "airt-status-COMPLETED" in snapshots[0].split("airt-steps")[0]  # the run's final status

    export_page = page.context.new_page()
    try:
        shutil.copy(exported, tmp_path / "export.html")
        export_page.goto((tmp_path / "export.html").as_uri())
        shown = export_page.locator(".airt-snapshot").first
        expect(shown).to_be_visible()
        expect(shown.locator(".airt-header .airt-status-COMPLETED")).to_be_visible()
        # the widget's text fallback next to it is hidden: the run reads once
        child = export_page.locator(".jp-OutputArea-child:has(+ .jp-OutputArea-child .airt-snapshot)").first
        expect(child).to_be_hidden()
        shown.screenshot(path=str(ARTIFACTS / "quickstart-export.png"))
    finally:
        export_page.close()
