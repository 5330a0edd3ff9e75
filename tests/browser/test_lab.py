"""What a person sees and clicks in JupyterLab: live panels, Approve / Reject, restart, dashboard.

Each test leaves a screenshot of its final state in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

from jupyter_client.manager import start_new_kernel
from playwright.sync_api import expect

from .conftest import ROOT, Lab
from .driver import (
    SPEC,
    cell,
    command,
    live,
    open_notebook,
    restart_kernel,
    run_cell,
    screenshot,
    wait_for_prompts,
    workflow_status,
)

# -- the tests -----------------------------------------------------------------------------------------------


def test_quickstart_runs_and_its_progress_bar_reaches_100_percent(page: Any, lab: Lab) -> None:
    (lab.root / "quickstart").mkdir()
    shutil.copy(ROOT / "notebooks/01-quickstart.ipynb", lab.root / "quickstart/01-quickstart.ipynb")
    open_notebook(page, "quickstart/01-quickstart.ipynb")

    command(page, "notebook:run-all-cells")

    panel = live(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")).first
    bar = panel.locator(".airt-progress .progress-bar")
    page.wait_for_function("(bar) => bar.style.width === '100%'", arg=bar.element_handle(), timeout=60_000)
    panel.locator(".airt-header .airt-status-COMPLETED").wait_for()
    book = json.loads((ROOT / "notebooks/01-quickstart.ipynb").read_text())
    wait_for_prompts(page, sum(c["cell_type"] == "code" for c in book["cells"]))
    assert panel.locator(".airt-step").count() == 4
    screenshot(panel, "quickstart-completed")


def test_approve_click_completes_the_run(page: Any, lab: Lab) -> None:
    open_notebook(page, lab.notebook("approve", ["%load_ext airt_nb", SPEC]))
    command(page, "notebook:run-all-cells")
    panel = live(cell(page, 1))
    panel.locator(".airt-card").wait_for()
    panel.locator(".airt-reason textarea").fill("looks good")
    screenshot(panel, "approve-card")

    panel.get_by_role("button", name="Approve", exact=True).click()

    panel.locator(".airt-header .airt-status-COMPLETED").wait_for()
    expect(panel.locator(".airt-history")).to_contain_text("approved by reviewer")
    status, approval = workflow_status(lab.root / "approve")
    assert status == "COMPLETED"
    assert (approval.decided_by, approval.reason) == ("reviewer", "looks good")
    assert (lab.root / "approve/out/report/b.txt").read_text() == "5"
    screenshot(panel, "approve-completed")


def test_reject_click_rolls_back_the_written_file(page: Any, lab: Lab) -> None:
    open_notebook(page, lab.notebook("reject", ["%load_ext airt_nb", SPEC]))
    command(page, "notebook:run-all-cells")
    panel = live(cell(page, 1))
    panel.locator(".airt-card").wait_for()
    assert (lab.root / "reject/out/report/a.txt").exists()

    panel.get_by_role("button", name="Reject", exact=True).click()
    confirm = panel.locator(".airt-card").get_by_role("button", name="Yes, reject")
    expect(confirm).to_be_visible()  # a rejection undoes steps: it asks first, like Rollback
    expect(panel.locator(".airt-card .airt-confirm-text")).to_contain_text("rolls back 1 completed step")
    screenshot(panel, "reject-confirm")
    confirm.click()

    panel.locator(".airt-header .airt-status-ROLLED_BACK").wait_for()
    assert not (lab.root / "reject/out/report/a.txt").exists()
    assert workflow_status(lab.root / "reject")[0] == "ROLLED_BACK"
    expect(panel.locator(".airt-steps")).to_contain_text("COMPENSATED")
    screenshot(panel, "reject-rolled-back")


def test_restart_then_load_ext_shows_the_card_and_approve_completes(page: Any, lab: Lab) -> None:
    open_notebook(page, lab.notebook("restart", ["%load_ext airt_nb", SPEC]))
    command(page, "notebook:run-all-cells")
    live(cell(page, 1)).locator(".airt-card").wait_for()

    restart_kernel(page)
    old = cell(page, 1)
    old.locator(".airt-run-panel.jupyter-widgets-disconnected").wait_for(state="attached")
    # the old panel reads as stale: its widget is hidden, its saved view says so and how to re-attach
    expect(old.locator(".airt-run-panel")).to_be_hidden()
    snapshot = old.locator(".airt-snapshot")
    expect(snapshot).to_be_visible()
    expect(snapshot.locator(".airt-stale")).to_contain_text("not live")
    expect(snapshot.locator(".airt-stale")).to_contain_text("%workflow show ")
    expect(old.get_by_role("button", name="Approve")).to_have_count(0)  # nothing that looks clickable
    screenshot(old, "restart-old-panel-stale")
    run_cell(page, 0)

    recovered = live(cell(page, 0))
    recovered.locator(".airt-card").wait_for()
    expect(cell(page, 0).locator(".airt-banner")).to_contain_text("waiting for approval: 1: publish-report")
    expect(cell(page, 0).locator(".airt-snapshot")).to_be_hidden()  # the live card is there: no saved view
    recovered.get_by_role("button", name="Approve", exact=True).click()

    recovered.locator(".airt-header .airt-status-COMPLETED").wait_for()
    assert workflow_status(lab.root / "restart")[0] == "COMPLETED"
    screenshot(cell(page, 0), "restart-recovered-approved")


def test_dashboard_shows_a_workflow_run_by_a_second_kernel(page: Any, lab: Lab) -> None:
    folder = "dashboard"
    open_notebook(page, lab.notebook(folder, ["%load_ext airt_nb", "import airt_nb\nairt_nb.dashboard()"]))
    command(page, "notebook:run-all-cells")
    board = page.locator(".airt-dashboard:not(.jupyter-widgets-disconnected)")
    board.wait_for()

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(lab.root / folder), env=lab.env)
    try:
        kc.execute_interactive(
            "import airt_nb\n"
            "eng = airt_nb.Engine('airt.db')\n"
            "run = eng.start('name: from-second-kernel\\nsteps:\\n  - name: nap\\n    action: wait\\n"
            "    inputs: {seconds: 3}\\n  - name: done\\n    action: wait\\n    inputs: {seconds: 0}\\n')\n",
            timeout=30,
        )
        row = board.locator(".airt-row", has_text="from-second-kernel")
        row.wait_for()
        assert re.search(r"RUNNING.*pid \d+ on ", row.inner_text(), re.S)  # live, and where it runs
        row.locator("button.airt-open").click()
        detail = board.locator(".airt-detail .airt-run-panel")
        detail.locator(".airt-header .airt-status-COMPLETED").wait_for()
        board.locator(".airt-row .airt-status-COMPLETED").first.wait_for()
        screenshot(board, "dashboard-second-kernel")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


TEAM_DB = "import os\nos.environ['AIRT_DB'] = os.path.abspath('../team.db')"
HOMED_SPEC = """%%workflow -o job
name: draft-and-publish
steps:
  - name: draft
    action: file.write
    inputs: {path: draft.md, content: draft}
  - name: review
    type: human_approval
    message: "Publish the draft?"
  - name: publish
    action: file.write
    inputs: {path: final.md, content: final}
"""


def test_approved_in_another_notebooks_inbox_the_run_completes_in_its_own_notebook(page: Any, lab: Lab) -> None:
    """Two notebooks in two folders on one database: B's inbox approves, A's kernel and folder do the rest."""
    a = lab.notebook("home-a", [TEAM_DB, "%load_ext airt_nb", HOMED_SPEC])
    b = lab.notebook("home-b", [TEAM_DB, "%load_ext airt_nb", "import airt_nb\nairt_nb.approvals_panel()"])
    open_notebook(page, a)
    command(page, "notebook:run-all-cells")
    panel = live(cell(page, 2))
    panel.locator(".airt-card").wait_for()
    assert (lab.root / "home-a/draft.md").read_text() == "draft"

    open_notebook(page, b)  # a second tab, a second kernel
    command(page, "notebook:run-all-cells")
    inbox = cell(page, 2).locator(".airt-inbox:not(.jupyter-widgets-disconnected)")
    card = inbox.locator(".airt-card")
    card.wait_for()
    expect(card).to_contain_text("Publish the draft?")
    card.locator(".airt-reason textarea").fill("approved from notebook B")
    card.get_by_role("button", name="Approve", exact=True).click()
    expect(inbox).to_contain_text("review of")  # the decision is recorded
    expect(inbox.locator(".airt-row:visible")).to_have_count(0)  # and the approval leaves the inbox
    screenshot(inbox, "two-notebooks-inbox")

    open_notebook(page, a)  # back to A: its own kernel carried the run on, in its own folder
    panel.locator(".airt-header .airt-status-COMPLETED").wait_for(timeout=30_000)
    expect(panel.locator(".airt-history")).to_contain_text("approved by reviewer")
    assert (lab.root / "home-a/final.md").read_text() == "final"
    assert not (lab.root / "home-b/final.md").exists()
    screenshot(panel, "two-notebooks-completed-in-a")


FLAKY = """
from airt_nb import action

FIXED = False


@action
def train(rate: float) -> dict:
    if not FIXED:
        raise ZeroDivisionError("rate 0")
    return {"loss": 0.1}
"""
FAILING = """%%workflow --wait
name: iterate
steps:
  - name: prepare
    action: wait
    inputs: {seconds: 0}
  - name: train
    action: train
    inputs: {rate: 0}
"""


def test_fork_from_here_on_the_failed_step_runs_it_again(page: Any, lab: Lab) -> None:
    open_notebook(page, lab.notebook("fork", ["%load_ext airt_nb", FLAKY, FAILING, "FIXED = True"]))
    command(page, "notebook:run-all-cells")
    wait_for_prompts(page, 4)
    panel = live(cell(page, 2)).first  # the fork's panel opens inside it
    panel.locator(".airt-header .airt-status-FAILED").first.wait_for()
    fork_buttons = panel.locator(".airt-steps").first.locator("button.airt-fork")
    expect(fork_buttons.filter(has_text="Fork from here")).to_have_count(2)  # prepare and the failed train

    fork_buttons.nth(1).click()

    nested = panel.locator(".airt-forks .airt-run-panel")
    nested.locator(".airt-header .airt-status-COMPLETED").wait_for()
    expect(nested.locator(".airt-header")).to_contain_text("fork of")
    expect(panel.locator(".airt-fork-note")).to_contain_text("airt_nb.diff(")
    screenshot(panel, "fork-from-here")
