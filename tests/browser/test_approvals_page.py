"""The ``/airt/`` approvals page of the Lab's own server: approve there, see the notebook's panel follow.

The other tests open the page on ``airt serve`` as a reviewer does: the
link of a webhook (``?approval=ID``) or the list; the card follows what
happens elsewhere (a cancel, a decision from a terminal, the workflow going
on or rolling back), shows who may not decide and why, asks before a
rejection, and never approves a value the reviewer did not see.

Leaves ``test-artifacts/approvals-page.png`` (the page with a pending
approval), ``approvals-page-notebook.png`` (the panel afterwards),
``approvals-page-followed.png`` (cards decided on the page, following their
workflows to the end), ``approvals-page-may-not-decide.png`` and
``approvals-page-confirm-reject.png``.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
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

from .conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Lab
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
def page_on_serve(
    browser_page: Any, tmp_path: Path, db: str, query: str = "", *, user: str = "olga", clock: bool = False
) -> Iterator[Any]:
    """``airt serve`` on ``db``, started as ``user`` (a name the server's token does not prove), and a
    reviewer's page open on ``/airt/?{query}`` (with ``clock``, on a clock the test moves)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "airt_nb.cli", "--db", db, "serve", "--port", str(port), "--token", TOKEN]

    def ready() -> bool:
        return httpx.get(f"{url}/airt/api/approvals", headers={"Authorization": f"token {TOKEN}"}).is_success

    env = jupyter_env(tmp_path / "home", AIRT_USER=user)
    with server_process(command, env=env, cwd=tmp_path, log=tmp_path / "serve.log", ready=ready):
        reviewer = browser_page.context.new_page()
        try:
            if clock:
                reviewer.clock.install()
            reviewer.goto(f"{url}/airt/?{query}&token={TOKEN}" if query else f"{url}/airt/?token={TOKEN}")
            yield reviewer
        finally:
            reviewer.close()


@contextlib.contextmanager
def reviewing(
    browser_page: Any,
    tmp_path: Path,
    notebook: airt_nb.Engine,
    run: airt_nb.Run,
    *,
    user: str = "olga",
    clock: bool = False,
) -> Iterator[tuple[Any, Any]]:
    """``airt serve`` on the notebook's database, started as ``user``, and a reviewer's page open on the
    run's approval, as a webhook's link (``?approval=ID``) opens it: ``(page, its card)``."""
    (approval,) = run.approvals()
    with page_on_serve(
        browser_page, tmp_path, notebook.db, f"approval={approval.approval_id}", user=user, clock=clock
    ) as reviewer:
        yield reviewer, reviewer.locator("#airt-focus article.airt-focused")


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
            card.get_by_role("button", name="Yes, reject", exact=True).click()
            expect(card.locator(".airt-result")).to_contain_text("rejected by olga (asserted)")
            reviewer.reload()  # drawn as a decided approval: its decision, with how the name was established
            expect(card.locator(".airt-result")).to_contain_text("rejected by olga (asserted) at ")
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


# The page reads the database again every 3 seconds: what changes elsewhere shows within a few periods.
REFRESHES = 10_000


def airt(tmp_path: Path, db: str, *args: str, user: str) -> str:
    """``airt --db DB ARGS...`` in a process of its own, as ``user`` at a terminal."""
    done = subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", "--db", db, *args],
        env=jupyter_env(tmp_path / "home", AIRT_USER=user),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def paused(notebook: airt_nb.Engine, spec: str, tmp_path: Path, **kw: Any) -> airt_nb.Run:
    run = notebook.start(spec, inputs={"target": str(tmp_path / "out")}, **kw)
    assert run.wait(timeout=20) == "PAUSED"
    return run


def test_the_card_a_link_opens_follows_a_cancel_made_elsewhere(browser_page: Any, tmp_path: Path) -> None:
    """Olga opens the webhook's link; Sam then cancels the workflow from his terminal.  Within a few
    refreshes her card says it was cancelled, by whom, and offers no buttons any more."""
    with airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook:
        run = paused(notebook, SEED_SPEC, tmp_path)
        with reviewing(browser_page, tmp_path, notebook, run) as (reviewer, card):
            expect(card.locator(".airt-status")).to_have_text("PENDING")
            expect(card.get_by_role("button", name="Approve", exact=True)).to_be_enabled()

            airt(tmp_path, notebook.db, "cancel", run.id, user="sam")

            expect(card.locator(".airt-status")).to_have_text("CANCELLED", timeout=REFRESHES)
            expect(card.locator("h2")).to_contain_text("(CANCELLED)")
            expect(card).to_contain_text("cancelled by sam at ")
            expect(card.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
            expect(card.get_by_role("button", name="Reject", exact=True)).to_have_count(0)
            expect(reviewer.locator("#airt-note")).to_have_text("Nothing waits for a decision.")


@contextlib.contextmanager
def browser_of_its_own(playwright_session: Any) -> Iterator[Any]:
    """A page in a browser of its own: a clock installed in it stays there (a context's clock outlives
    the page that installed it)."""
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser.new_context().new_page()
    finally:
        browser.close()


def test_approving_what_was_decided_elsewhere_meanwhile_shows_what_it_is_now(
    playwright_session: Any, tmp_path: Path
) -> None:
    """Ann approves from her terminal while Olga's card still shows the approval pending (the page's
    clock stands still: no refresh comes in between).  Olga's click is refused, and the card then shows
    the approval as it is now, with the refusal: approved by ann, no buttons."""
    with (
        airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook,
        browser_of_its_own(playwright_session) as own_page,
    ):
        run = paused(notebook, SEED_SPEC, tmp_path)
        with reviewing(own_page, tmp_path, notebook, run, clock=True) as (reviewer, card):
            expect(card.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
            # Stop the page's clock; the one refresh due by then reads the approval still pending.
            with reviewer.expect_response(lambda r: "approval_id=" in r.url):
                reviewer.clock.pause_at(time.time() + 60)

            airt(tmp_path, notebook.db, "approve", run.id, "--reason", "from my terminal", user="ann")
            card.get_by_role("button", name="Approve", exact=True).click()

            expect(card.locator(".airt-status")).to_have_text("APPROVED")
            expect(card).to_contain_text("approved by ann (asserted) at ")
            expect(card.locator(".airt-error")).to_contain_text("already approved by ann")
            expect(card.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
        assert run.wait(timeout=20) == "COMPLETED"
        assert [(d.decided_by, d.reason) for d in run.decisions()] == [("ann", "from my terminal")]


STAGED_SPEC = """
name: swap-orders
inputs: {target: out}
steps:
  - name: extract
    action: stage
    inputs: {path: "${{ inputs.target }}/staged.txt"}
  - name: review
    type: human_approval
    message: "Swap the orders table?"
  - name: swap
    action: wait
    inputs: {seconds: 0}
"""
RELOAD_SPEC = """
name: reload-cache
steps:
  - name: review
    type: human_approval
    message: "Reload the cache?"
  - name: reload
    action: wait
    inputs: {seconds: 2}
"""


def test_a_card_decided_on_the_page_follows_its_workflow_to_the_end(browser_page: Any, tmp_path: Path) -> None:
    """Olga rejects one workflow and approves another on the page.  Without a reload, each card follows
    its workflow: the rejected one until its rollback ended (here an undo fails: FAILED, and why), the
    approved one until it completed."""
    registry = Registry()

    @registry.action
    def stage(path: str) -> dict[str, str]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("staged")
        return {"path": path}

    @stage.compensate
    def _unstage(inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        time.sleep(1)
        raise RuntimeError("the staging copy is locked")

    with airt_nb.Engine(tmp_path / "airt.db", registry=registry, user="sam") as notebook:
        rejected = paused(notebook, STAGED_SPEC, tmp_path)
        approved = notebook.start(RELOAD_SPEC)
        assert approved.wait(timeout=20) == "PAUSED"
        with page_on_serve(browser_page, tmp_path, notebook.db) as reviewer:
            swap = reviewer.locator("article.airt-card").filter(has_text="swap-orders")
            reload = reviewer.locator("article.airt-card").filter(has_text="reload-cache")
            swap.get_by_role("button", name="Reject", exact=True).click()
            swap.get_by_role("button", name="Yes, reject", exact=True).click()
            reload.get_by_role("button", name="Approve", exact=True).click()

            expect(swap.locator(".airt-status")).to_have_text("REJECTED")
            expect(swap.locator("h2")).to_contain_text("(FAILED)", timeout=REFRESHES)
            expect(swap.locator(".airt-result")).to_contain_text("rejected by olga (asserted) at ")
            expect(swap.locator(".airt-result")).to_contain_text("the workflow failed: ")
            expect(swap.locator(".airt-result")).to_contain_text(
                "compensation failed for extract (stage): RuntimeError: the staging copy is locked"
            )
            expect(reload.locator("h2")).to_contain_text("(COMPLETED)", timeout=REFRESHES)
            expect(reload.locator(".airt-result")).to_contain_text("the workflow completed")
            reviewer.screenshot(path=str(ARTIFACTS / "approvals-page-followed.png"), full_page=True)
        assert (rejected.status, approved.status) == ("FAILED", "COMPLETED")


FIELDS_SPEC = """
name: load-orders
inputs: {target: out}
steps:
  - name: review
    type: human_approval
    message: "Load the orders?"
    fields:
      batch_size: {type: integer, default: 500, minimum: 100, maximum: 5000, description: rows per insert}
      note: {type: string, required: false, default: nightly}
  - name: load
    action: wait
    inputs: {seconds: 0}
"""


def test_an_emptied_field_is_refused_on_the_page_not_approved_with_its_default(
    browser_page: Any, tmp_path: Path
) -> None:
    """Olga empties the batch size (default 500) and clicks Approve: the page refuses, naming the field,
    and sends nothing; the default she no longer saw is not approved.  She types 800 and approves: 800
    is approved, and the optional note she emptied is approved empty, not as its default."""
    with airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook:
        run = paused(notebook, FIELDS_SPEC, tmp_path)
        with reviewing(browser_page, tmp_path, notebook, run) as (_reviewer, card):
            batch = card.locator("input[data-field=batch_size]")
            expect(batch).to_have_value("500")
            batch.fill("")
            card.locator("input[data-field=note]").fill("")
            card.get_by_role("button", name="Approve", exact=True).click()

            expect(card.locator(".airt-result")).to_contain_text(
                "batch_size: a value is required (it is not optional); integer from 100 to 5000, default 500"
            )
            expect(batch).to_have_attribute("aria-invalid", "true")
            expect(batch).to_be_focused()
            expect(card.locator(".airt-status")).to_have_text("PENDING")
            assert (run.approvals()[0].status, run.decisions()) == ("PENDING", [])

            batch.fill("800")
            card.get_by_role("button", name="Approve", exact=True).click()
            expect(card.locator(".airt-status")).to_have_text("APPROVED")
            expect(card.locator(".airt-result")).to_contain_text("with batch_size=800, note=null")
        assert run.wait(timeout=20) == "COMPLETED"
        assert [d.values for d in run.decisions()] == [{"batch_size": 800, "note": None}]


def test_who_may_not_decide_sees_the_buttons_disabled_and_why(browser_page: Any, tmp_path: Path) -> None:
    """The page is served as olga.  An approval only ann may decide, and one olga started herself where
    the step excludes the requester: no button works, and the card says why.  One that needs two
    approvals and that olga approved already: only Reject works.  The same words as the notebook's card."""
    only_ann = SEED_SPEC.replace("name: publish-report", "name: for-ann").replace(
        "    type: human_approval\n", "    type: human_approval\n    approvers: [ann]\n"
    )
    own = SEED_SPEC.replace("name: publish-report", "name: own-report").replace(
        "    type: human_approval\n", "    type: human_approval\n    exclude_requester: true\n"
    )
    two = SEED_SPEC.replace("name: publish-report", "name: two-eyes").replace(
        "    type: human_approval\n", "    type: human_approval\n    min_approvals: 2\n"
    )
    with airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook:
        runs = [
            paused(notebook, only_ann, tmp_path / "a"),
            paused(notebook, own, tmp_path / "b", user="olga"),
            paused(notebook, two, tmp_path / "c"),
        ]
        notebook.approve(runs[2].id, by="olga", reason="one of two")
        with page_on_serve(browser_page, tmp_path, notebook.db) as reviewer:
            cards = reviewer.locator("article.airt-card")
            for name, why in [
                ("for-ann", "You (olga) may not decide this approval: only ann may decide this approval. Ask one of "
                 "the approvers."),
                ("own-report", "You (olga) started this workflow, and the step says who started it may not decide it."),
            ]:  # fmt: skip
                card = cards.filter(has_text=name)
                expect(card.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
                expect(card.get_by_role("button", name="Reject", exact=True)).to_be_disabled()
                expect(card.locator(".airt-why")).to_have_text(why)
                expect(card.locator("textarea.airt-reason")).to_be_disabled()
            reviewer.screenshot(path=str(ARTIFACTS / "approvals-page-may-not-decide.png"), full_page=True)
            card = cards.filter(has_text="two-eyes")
            expect(card.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
            expect(card.get_by_role("button", name="Reject", exact=True)).to_be_enabled()
            expect(card.locator(".airt-why")).to_have_text(
                "You (olga) approved already; it waits for 1 more approval(s) from other people. You may still "
                "reject it."
            )
        assert [[a.status for a in r.approvals()] for r in runs] == [["PENDING"]] * 3


def test_reject_asks_to_confirm_before_anything_is_rolled_back(browser_page: Any, tmp_path: Path) -> None:
    """Olga clicks Reject: the card asks, in place, whether to reject and what that rolls back; nothing
    is recorded until she says yes.  No (or Escape) goes back to the buttons."""
    with airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook:
        run = paused(notebook, SEED_SPEC, tmp_path)
        with reviewing(browser_page, tmp_path, notebook, run) as (_reviewer, card):
            reject = card.get_by_role("button", name="Reject", exact=True)
            card.locator("textarea.airt-reason").fill("wrong folder")
            reject.click()

            question = card.get_by_role("group", name=re.compile(r"^Reject step review\?"))
            expect(question).to_have_text(
                re.compile(
                    r"^Reject step review\? The workflow rolls back 1 completed step, newest first; this cannot be "
                    r"undone\.\s*Yes, reject\s*No$"
                )
            )
            expect(question.get_by_role("button", name="No", exact=True)).to_be_focused()
            expect(reject).to_be_hidden()
            card.screenshot(path=str(ARTIFACTS / "approvals-page-confirm-reject.png"))
            time.sleep(0.5)  # a decision would have been sent by now
            assert (run.approvals()[0].status, run.status) == ("PENDING", "PAUSED")

            question.get_by_role("button", name="No", exact=True).click()
            expect(question).to_be_hidden()
            expect(reject).to_be_focused()
            reject.click()
            reviewer_keyboard = card.page.keyboard
            reviewer_keyboard.press("Escape")
            expect(question).to_be_hidden()
            assert run.approvals()[0].status == "PENDING"

            reject.click()
            question.get_by_role("button", name="Yes, reject", exact=True).click()
            expect(card.locator(".airt-result")).to_contain_text("rejected by olga (asserted) at ")
            expect(card.locator(".airt-result")).to_contain_text(": wrong folder")
        assert run.wait(timeout=20) == "ROLLED_BACK"
        assert [(d.decided_by, d.decision, d.reason) for d in run.decisions()] == [("olga", "REJECTED", "wrong folder")]


def test_a_decided_card_prints_each_decision_once_with_its_values(browser_page: Any, tmp_path: Path) -> None:
    """Two approvals are needed: olga approves on the page with copies=3, rita confirms from her
    notebook.  Loaded again, the card shows each decision once, each with the values it approved."""
    spec = SEED_SPEC.replace(
        "    type: human_approval\n",
        "    type: human_approval\n    min_approvals: 2\n"
        "    fields:\n      copies: {type: integer, default: 1, minimum: 1, maximum: 3}\n",
    )
    with airt_nb.Engine(tmp_path / "airt.db", registry=Registry(), user="sam") as notebook:
        run = paused(notebook, spec, tmp_path)
        with reviewing(browser_page, tmp_path, notebook, run) as (reviewer, card):
            card.locator("input[data-field=copies]").fill("3")
            card.locator("textarea.airt-reason").fill("three copies")
            card.get_by_role("button", name="Approve", exact=True).click()
            expect(card.locator(".airt-result")).to_contain_text("your approval is recorded: 1 of 2 approvals")

            notebook.approve(run.id, by="rita", reason="agreed")
            assert run.wait(timeout=20) == "COMPLETED"
            reviewer.reload()  # loaded afresh, as a link opens it
            expect(card.locator("h2")).to_contain_text("APPROVED")
            expect(card.locator("h2")).to_contain_text("(COMPLETED)")
            lines = [line for line in card.inner_text().splitlines() if "approved by" in line]
            assert [re.sub(r"at \S+ \S+ UTC", "at T", line) for line in lines] == [
                "approved by olga (asserted) at T with copies=3: three copies",
                "approved by rita (asserted) at T with copies=3: agreed",
            ]
