"""Typed fields in the browser: a person fills the card's form in JupyterLab and approves; a reviewer
fills the approvals page's form and approves; either way the workflow goes on with those values.

Leaves ``test-artifacts/card-fields.png`` and ``approvals-page-fields.png``.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from .conftest import ARTIFACTS, Lab
from .driver import cell, command, live, open_notebook, screenshot, workflow_status

SPEC = """%%workflow -o run
name: scale
steps:
  - name: prepare
    action: file.write
    inputs: {path: out/plan.txt, content: "scale the api"}
  - name: review
    type: human_approval
    message: "Scale the api?"
    fields:
      replicas: {type: integer, default: 2, minimum: 1, maximum: 10}
      plan: {type: choice, options: [canary, full], default: canary}
  - name: write
    action: file.write
    inputs:
      path: out/scale.txt
      content: "${{ steps.review.outputs.values.plan }} x${{ steps.review.outputs.values.replicas }}"
"""


def test_filling_the_cards_form_and_approving_runs_with_those_values(page: Any, lab: Lab) -> None:
    open_notebook(page, lab.notebook("fields", ["%load_ext airt_nb", SPEC]))
    command(page, "notebook:run-all-cells")
    panel = live(cell(page, 1))
    card = panel.locator(".airt-card")
    card.wait_for()
    replicas = card.locator(".airt-field-replicas input")
    expect(replicas).to_have_value("2")  # the default, filled in
    expect(card).to_contain_text("What it lets run, as it would run now:")
    expect(card).to_contain_text("known only when it runs: steps.review.outputs.values.plan")

    replicas.fill("7")
    replicas.press("Tab")  # the widget syncs its value when the input loses focus
    card.locator(".airt-field-plan select").select_option(label="full")
    panel.locator(".airt-reason textarea").fill("seven, all at once")
    screenshot(card, "card-fields")
    panel.get_by_role("button", name="Approve", exact=True).click()

    panel.locator(".airt-header .airt-status-COMPLETED").wait_for()
    expect(panel.locator(".airt-history")).to_contain_text("approved by reviewer with replicas=7")
    assert (lab.root / "fields/out/scale.txt").read_text() == "full x7"
    status, approval = workflow_status(lab.root / "fields")
    assert status == "COMPLETED"
    assert approval.values == {"replicas": 7, "plan": "full"}
    assert approval.reason == "seven, all at once"


USE_ROOT_DB = "import os\nos.environ['AIRT_DB'] = os.path.abspath('../airt.db')"


def test_filling_the_approvals_pages_form_continues_the_notebooks_workflow(page: Any, lab: Lab) -> None:
    spec = SPEC.replace("name: scale", "name: scale-from-page").replace("out/", "out-page/")
    open_notebook(page, lab.notebook("fields-page", [USE_ROOT_DB, "%load_ext airt_nb", spec]))
    command(page, "notebook:run-all-cells")
    panel = live(cell(page, 2))
    panel.locator(".airt-card").wait_for()

    reviewer = page.context.new_page()
    try:
        reviewer.set_viewport_size({"width": 1100, "height": 1000})
        reviewer.goto(f"{lab.url}/airt/")
        card = reviewer.locator("article.airt-card").filter(has_text="scale-from-page")
        card.wait_for()
        expect(card.locator("input[data-field=replicas]")).to_have_value("2")
        expect(card.locator(".airt-preview-step")).to_contain_text("write")
        card.locator("input[data-field=replicas]").fill("5")
        card.locator("select[data-field=plan]").select_option(label="full")
        card.locator("textarea.airt-reason").fill("five on the page")
        reviewer.screenshot(path=str(ARTIFACTS / "approvals-page-fields.png"))
        card.get_by_role("button", name="Approve", exact=True).click()
        expect(card.locator(".airt-result")).to_contain_text("approved by reviewer")
    finally:
        reviewer.close()

    panel.locator(".airt-header .airt-status-COMPLETED").wait_for(timeout=30_000)
    assert (lab.root / "fields-page/out-page/scale.txt").read_text() == "full x5"
