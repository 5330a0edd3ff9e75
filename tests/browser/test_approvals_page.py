"""The ``/airt/`` approvals page of the Lab's own server: approve there, see the notebook's panel follow.

Leaves ``test-artifacts/approvals-page.png`` (the page with a pending
approval) and ``approvals-page-notebook.png`` (the panel afterwards).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect
from server_support import free_port, jupyter_env, server_process
from shared_specs import SEED_SPEC

import airt_nb
from airt_nb import Registry
from airt_nb.store import open_store

from .conftest import ARTIFACTS, Lab
from .test_lab import SPEC, cell, command, live, open_notebook

# The page decides in the database the server is configured with: by default airt.db in the server's
# root, so the notebook (in a folder of its own) points its engine there.
TOKEN = "page-t0ken"
USE_ROOT_DB = "import os\nos.environ['AIRT_DB'] = os.path.abspath('../airt.db')"


def test_approving_on_the_page_continues_the_notebooks_workflow(page: Any, lab: Lab) -> None:
    open_notebook(page, lab.notebook("approvals-page", [USE_ROOT_DB, "%load_ext airt_nb", SPEC]))
    command(page, "notebook:run-all-cells")
    panel = live(cell(page, 2))
    panel.locator(".airt-card").wait_for()

    reviewer = page.context.new_page()
    try:
        reviewer.set_viewport_size({"width": 1100, "height": 900})
        reviewer.goto(f"{lab.url}/airt/")
        card = reviewer.locator("article.airt-card").filter(has_text="publish-report")
        card.wait_for()
        # This Lab runs without a token: nobody is authenticated, the name is the server owner's.
        expect(reviewer.locator("#airt-whoami")).to_have_text(
            "deciding as reviewer (this server authenticates nobody: the name is its owner's)"
        )
        expect(card).to_contain_text("/approvals-page/out/report/a.txt?")  # file actions give absolute paths
        expect(card).to_contain_text("A rejection undoes (newest first)")
        card.locator("textarea.airt-reason").fill("checked on the page")
        reviewer.screenshot(path=str(ARTIFACTS / "approvals-page.png"))

        card.get_by_role("button", name="Approve", exact=True).click()

        expect(card.locator(".airt-result")).to_contain_text("approved by reviewer (asserted)")
    finally:
        reviewer.close()

    # The kernel that runs the workflow carries it on, and its panel follows.
    panel.locator(".airt-header .airt-status-COMPLETED").wait_for(timeout=30_000)
    expect(panel.locator(".airt-history")).to_contain_text("approved by reviewer")
    panel.screenshot(path=str(ARTIFACTS / "approvals-page-notebook.png"))
    store = open_store(lab.root / "airt.db")
    try:  # other tests' workflows share this database: take this one's
        (approval,) = [a for a in store.approvals() if store.workflow(a.workflow_id).name == "publish-report"]
    finally:
        store.close()
    assert (approval.status, approval.decided_by, approval.reason) == ("APPROVED", "reviewer", "checked on the page")
    assert (lab.root / "approvals-page/out/report/b.txt").read_text() == "5"


@contextlib.contextmanager
def reviewing(
    browser_page: Any, tmp_path: Path, notebook: airt_nb.Engine, run: airt_nb.Run
) -> Iterator[tuple[Any, Any]]:
    """``airt serve`` on the notebook's database, started as olga (a name the server's token does not
    prove), and a reviewer's page open on the run's approval, as a webhook's link (``?approval=ID``)
    opens it: ``(page, its card)``."""
    (approval,) = run.approvals()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "airt_nb.cli", "--db", notebook.db, "serve", "--port", str(port), "--token", TOKEN]

    def ready() -> bool:
        return httpx.get(f"{url}/airt/api/approvals", headers={"Authorization": f"token {TOKEN}"}).is_success

    env = jupyter_env(tmp_path / "home", AIRT_USER="olga")
    with server_process(command, env=env, cwd=tmp_path, log=tmp_path / "serve.log", ready=ready):
        reviewer = browser_page.context.new_page()
        try:
            reviewer.goto(f"{url}/airt/?approval={approval.approval_id}&token={TOKEN}")
            yield reviewer, reviewer.locator("#airt-focus article.airt-focused")
        finally:
            reviewer.close()


def test_the_page_on_airt_serve_decides_with_its_cookie_and_xsrf_token(browser_page: Any, tmp_path: Path) -> None:
    """A reviewer follows a webhook's link to ``airt serve``: token once, then the login cookie; the
    script sends the XSRF token with its POST (this server checks it)."""
    with airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook:
        run = notebook.start(SEED_SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(timeout=20) == "PAUSED"
        with reviewing(browser_page, tmp_path, notebook, run) as (reviewer, card):
            expect(card).to_contain_text("Publish B next to")
            expect(reviewer.locator("#airt-whoami")).to_have_text(
                "deciding as olga (asserted: the server's token or password proves access to it, not this name, "
                "which is only the one the server was started with)"
            )
            card.get_by_role("button", name=f"workflow {run.id}").click()
            expect(card.locator("table.airt-steps")).to_contain_text("write_a")
            expect(card.locator(".airt-progress > div")).to_have_attribute("style", "width: 33%")
            card.locator("textarea.airt-reason").fill("not this week")
            card.get_by_role("button", name="Reject", exact=True).click()
            expect(card.locator(".airt-result")).to_contain_text("rejected by olga (asserted)")
            reviewer.reload()  # drawn as a decided approval: its decisions, each with how the name was established
            expect(card.locator(".airt-result")).to_contain_text("rejected by olga (asserted) at ")
            expect(card.locator(".airt-section").filter(has_text="Decisions so far")).to_contain_text(
                "rejected by olga (asserted) at "
            )
        assert run.wait(timeout=20) == "ROLLED_BACK"
        (decided,) = run.approvals()
    assert (decided.decided_by, decided.reason) == ("olga", "not this week")


def test_the_page_shows_invisible_characters_of_a_message_escaped(browser_page: Any, tmp_path: Path) -> None:
    """An agent's message that would read otherwise than it is recorded (a direction override turns
    'txt.dorp' around; a zero-width space hides in a word) shows its characters as escapes."""
    message = "Delete harmless.\u202etxt.dorp\u202c? Ap\u200bprove"
    spec = {"name": "tricky", "steps": [{"name": "ok", "type": "human_approval", "message": message}]}
    with airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook:
        run = notebook.start(spec)
        assert run.wait(timeout=20) == "PAUSED"
        with reviewing(browser_page, tmp_path, notebook, run) as (_reviewer, card):
            expect(card).to_contain_text(r"Delete harmless.\u202etxt.dorp\u202c? Ap\u200bprove")
            assert "\u202e" not in card.inner_text()
