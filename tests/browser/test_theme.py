"""Every kind of output, in the light and the dark theme: screenshots, and the contrast of every text.

One notebook shows a completed run (with a retry), a failed one (with its
traceback), a paused one the user may decide, one they may not, a timeline
and a refused spec.  In each theme every shown text of our outputs is
measured against the background behind it: at least 4.5:1.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from .conftest import Lab
from .driver import SPEC, cell, command, contrast, live, open_notebook, screenshot, set_theme, wait_for_prompts

ACTIONS = """import airt_nb

calls = []


@airt_nb.action
def push_image(tag: str) -> dict:
    calls.append(tag)
    if len(calls) < 2:
        raise ConnectionError("registry timed out")
    return {"pushed": tag}


@airt_nb.action
def migrate(database: str) -> dict:
    raise RuntimeError(f"cannot lock {database}: another migration holds it")


@airt_nb.action
def hold(flag: str) -> dict:
    import pathlib, time

    while not pathlib.Path(flag).exists():
        time.sleep(0.05)
    return {"released": flag}
"""

DONE = """%%workflow -o done
name: release
inputs: {tag: v1.4.2}
steps:
  - name: notes
    action: file.write
    inputs: {path: out/notes.txt, content: "v1.4.2"}
  - name: push
    action: push_image
    inputs: {tag: "${{ inputs.tag }}"}
    retry: {max_attempts: 3, initial_delay: 0.05}
"""

FAILED = """%%workflow -o failed
name: migrate-db
steps:
  - name: backup
    action: file.write
    inputs: {path: out/backup.sql, content: "-- dump"}
  - name: migrate
    action: migrate
    inputs: {database: orders}
"""

NOT_MINE = SPEC.replace("-o run", "-o theirs").replace("approvers: [reviewer]", "approvers: [rita]")
NOT_MINE = NOT_MINE.replace("target: out/report", "target: out/theirs")

# A long run held at its 120th step: counts by status instead of 150 rows, "119 / 150 steps" on one line.
LONG = "%%workflow -o long\nname: nightly-batch\nsteps:\n" + "".join(
    f"  - name: part-{i:03d}\n    action: {'hold' if i == 120 else 'wait'}\n"
    f"    inputs: {{{'flag: release.txt' if i == 120 else 'seconds: 0'}}}\n"
    for i in range(1, 151)
)

INBOX = "%workflow approvals"

TIMELINE = "done.wait(timeout=30), failed.wait(timeout=30)\nairt_nb.timeline([done, failed])"

SPEC_ERROR = """%%workflow
name: typo
steps:
  - name: write
    action: file.wrte
    inputs:
      path: out/x.txt
  - name: notify
    action: wait
    inputs:
      seconds: "${{ steps.writ.outputs.bytes }}"
"""

CELLS = ["%load_ext airt_nb", ACTIONS, DONE, FAILED, SPEC, NOT_MINE, LONG, INBOX, TIMELINE, SPEC_ERROR]
SHOTS = {
    2: "completed",
    3: "failed",
    4: "paused",
    5: "not-an-approver",
    6: "long-run",
    7: "inbox",
    8: "timeline",
    9: "spec-error",
}


def test_every_output_is_readable_in_the_light_and_the_dark_theme(page: Any, lab: Lab) -> None:
    open_notebook(page, lab.notebook("themes", CELLS))
    command(page, "notebook:run-all-cells")
    wait_for_prompts(page, len(CELLS))  # the refused spec is last: it fails, and stops nothing else
    live(cell(page, 3)).locator(".airt-header .airt-status-FAILED").wait_for()
    live(cell(page, 2)).locator(".airt-header .airt-status-COMPLETED").wait_for()
    theirs = live(cell(page, 5)).locator(".airt-card")
    expect(theirs.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
    expect(theirs.get_by_role("button", name="Reject", exact=True)).to_be_disabled()
    expect(theirs).to_contain_text("You (reviewer) may not decide this approval")
    held = live(cell(page, 6))
    expect(held.locator(".airt-progress .widget-label")).to_have_text("119 / 150 steps")
    expect(held.locator(".airt-steps-window")).to_contain_text("RUNNING 1")
    lines = held.locator(".airt-progress .widget-label").evaluate(
        "(el) => { const r = document.createRange(); r.selectNodeContents(el); return r.getClientRects().length; }"
    )
    assert lines == 1  # "119 / 150 steps" on one line
    inbox = cell(page, 7).locator(".airt-inbox:not(.jupyter-widgets-disconnected)")
    expect(inbox.locator(".airt-row:visible")).to_have_count(2)
    expect(inbox.locator(".airt-card")).to_be_visible()  # the oldest, picked
    refused = cell(page, 9)
    expect(refused.locator(".airt-spec-error")).to_be_visible()
    expect(refused.locator('[data-mime-type="application/vnd.jupyter.stderr"]')).to_be_hidden()  # shown once
    expect(refused.locator(".airt-spec-error")).to_contain_text("unknown action 'file.wrte'")
    try:
        for theme in ("JupyterLab Light", "JupyterLab Dark"):
            set_theme(page, theme)
            name = "dark" if "Dark" in theme else "light"
            measured = []
            for index, what in SHOTS.items():
                target = cell(page, index)
                target.scroll_into_view_if_needed()
                measured += [(what, m) for m in contrast(page, f"{_cell_selector(index)} .airt-root")]
                screenshot(target.locator(".jp-Cell-outputWrapper"), f"theme-{name}-{what}")
            kinds = {m["cls"] for _, m in measured}
            assert {"airt-badge airt-status-FAILED", "airt-error", "airt-notice", "airt-muted", "airt-note"} <= kinds
            low = [(what, m) for what, m in measured if m["ratio"] < 4.5]
            assert low == [], f"text below 4.5:1 in the {name} theme: {low}"
    finally:
        set_theme(page, "JupyterLab Light")


def _cell_selector(index: int) -> str:
    return f".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell:nth-child({index + 1})"
