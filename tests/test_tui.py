"""``airt dashboard``: Textual's pilot drives the app on a database another engine runs workflows on
(the notebook's), SVG exports of the main screens, and one real run in a pseudo-terminal."""

from __future__ import annotations

import asyncio
import functools
import html
import os
import re
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from shared_specs import ANN_APPROVES_SPEC, SEED_SPEC

import airt_nb
from airt_nb import Registry
from airt_nb.tui.app import DashboardApp, DetailScreen, WorkflowsScreen
from airt_nb.tui.dialogs import ConfirmDialog, ReasonDialog
from tests.conftest import poll_until

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SIZE = (130, 36)

FLAKY_SPEC = """
name: flaky
steps:
  - name: fetch
    action: always_fails
    retry: {max_attempts: 2, initial_delay: 0.01}
"""


@pytest.fixture
def notebook(db_path: Path) -> Iterator[airt_nb.Engine]:
    """The engine that runs the workflows, as a notebook's kernel would."""
    registry = Registry()

    @registry.action("always_fails")
    def always_fails() -> dict:
        raise RuntimeError("upstream said 503")

    eng = airt_nb.Engine(db_path, registry=registry, user="sam")
    yield eng
    eng.close()


@pytest.fixture
def viewer(db_path: Path, notebook: airt_nb.Engine) -> Iterator[airt_nb.Engine]:
    """The dashboard's engine, opened as ``airt dashboard`` opens it."""
    eng = airt_nb.Engine(db_path, recover=False, webhook_url="")
    yield eng
    eng.close()


def paused(engine: airt_nb.Engine, tmp_path: Path, spec: str = SEED_SPEC, name: str = "out") -> airt_nb.Run:
    run = engine.start(spec, inputs={"target": str(tmp_path / name)})
    assert run.wait(timeout=20) == "PAUSED"
    return run


def in_own_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test with ``asyncio.run`` on a thread of its own.

    The browser suite's Playwright keeps an event loop running on the main thread for the whole
    session; an async test run there by a pytest plugin would find it and refuse to start.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        errors: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(test(*args, **kwargs))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, name=f"test-{test.__name__}")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    return run


def screen_text(app: DashboardApp) -> str:
    """What the terminal shows, from the SVG export (one text run per style, spaces as &#160;)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def rows(app: DashboardApp, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(table_id)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]  # type: ignore[attr-defined]


async def settle(pilot: object, until: object = None, timeout: float = 10) -> None:
    """Let the app process what was sent (and poll the database) until ``until()`` holds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(0.05)  # type: ignore[attr-defined]
        if until is None or until() or time.monotonic() > deadline:  # type: ignore[operator]
            return


@in_own_loop
async def test_the_list_shows_workflows_and_pending_approvals(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    first = paused(notebook, tmp_path, name="a")
    second = paused(notebook, tmp_path, name="b")
    app = DashboardApp(viewer, as_user="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, lambda: "q Quit" in screen_text(app))  # the footer is drawn last
        assert isinstance(app.screen, WorkflowsScreen)
        listed = rows(app, "#workflows")
        assert [r[0] for r in listed] == [second.id, first.id]  # newest first
        assert [r[2] for r in listed] == ["PAUSED", "PAUSED"]
        assert listed[0][3] == "1/3"
        assert listed[0][6].startswith("approval 'review': Publish B next to")
        assert {r[0] for r in rows(app, "#approvals")} == {
            a.approval_id for r in (first, second) for a in r.approvals()
        }
        text = screen_text(app)
        assert "status: ALL  ·  2 workflows  ·  2 pending approvals  ·  deciding as ann" in text
        assert "Pending approvals" in text
        for key in ("a Approve", "x Reject", "b Rollback", "c Cancel", "r Refresh", "q Quit"):
            assert key in text
        ARTIFACTS.mkdir(exist_ok=True)
        app.save_screenshot("dashboard-tui-list.svg", path=str(ARTIFACTS))


@in_own_loop
async def test_the_filter_cycles_through_statuses(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path)
    app = DashboardApp(viewer)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("f")  # RUNNING
        await settle(pilot)
        assert rows(app, "#workflows") == []
        assert "status: RUNNING  ·  0 workflows" in screen_text(app)
        await pilot.press("f")  # PAUSED
        await settle(pilot)
        assert [r[0] for r in rows(app, "#workflows")] == [run.id]


@in_own_loop
async def test_approve_asks_for_a_reason_and_the_owner_carries_the_workflow_on(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path)
    app = DashboardApp(viewer, as_user="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ReasonDialog)
        assert "Approve step 'review' of workflow" in screen_text(app)
        await pilot.press(*"numbers checked", "enter")
        await settle(pilot, lambda: rows(app, "#workflows")[0][2] == "COMPLETED")
        assert run.wait(timeout=20) == "COMPLETED"
        await settle(pilot, lambda: rows(app, "#workflows")[0][2] == "COMPLETED")  # live refresh, no key pressed
        assert rows(app, "#workflows")[0][2] == "COMPLETED"
        assert rows(app, "#approvals") == []
    (approval,) = run.approvals()
    assert (approval.decided_by, approval.reason) == ("ann", "numbers checked")


@in_own_loop
async def test_escape_at_the_reason_decides_nothing(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path)
    app = DashboardApp(viewer)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("x", "n", "o", "escape")
        await settle(pilot)
        assert isinstance(app.screen, WorkflowsScreen)
    assert [a.status for a in run.approvals()] == ["PENDING"]


@in_own_loop
async def test_reject_from_the_approvals_table_rolls_back(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    keep = paused(notebook, tmp_path, name="keep")
    run = paused(notebook, tmp_path, name="drop")
    app = DashboardApp(viewer, as_user="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("tab")  # to the approvals table: oldest first, so `keep` is the first row
        await pilot.press("down")  # `run`
        await settle(pilot)
        await pilot.press("x", *"too big", "enter")
        assert run.wait(timeout=20) == "ROLLED_BACK"
    assert keep.status == "PAUSED"
    assert not (tmp_path / "drop" / "a.txt").exists()
    (approval,) = run.approvals()
    assert (approval.status, approval.decided_by, approval.reason) == ("REJECTED", "ann", "too big")


@in_own_loop
async def test_a_refusal_is_shown_and_nothing_changes(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path, ANN_APPROVES_SPEC)
    app = DashboardApp(viewer, as_user="bob")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("a", "enter")
        await settle(pilot, lambda: bool(app.messages))
        assert "user 'bob' (roles: none) may not decide this approval" in app.messages[-1]
        # Shown as a notification (wrapped in its box).
        shown = lambda: " ".join(screen_text(app).replace("▌", " ").split())  # noqa: E731
        await settle(pilot, lambda: "refused by rule 'approvers'" in shown())
        assert "user 'bob' (roles: none) may not decide this approval; refused by rule 'approvers'" in shown()
        await pilot.press("c")  # cancel, refused at the confirmation
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await settle(pilot)
    assert run.status == "PAUSED"
    assert [a.status for a in run.approvals()] == ["PENDING"]


@in_own_loop
async def test_rollback_and_cancel_are_confirmed(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    undone = paused(notebook, tmp_path, name="undone")
    stopped = paused(notebook, tmp_path, name="stopped")
    app = DashboardApp(viewer, as_user="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("c")  # the newest: `stopped`
        await settle(pilot)
        assert "Cancel (stop, undo nothing of) workflow " + stopped.id in screen_text(app)
        await pilot.press("y")
        await settle(pilot, lambda: rows(app, "#workflows")[0][2] == "CANCELLED")
        await pilot.press("down", "b")
        await settle(pilot)
        assert f"Roll back (undo every completed step of) workflow {undone.id}" in screen_text(app)
        await pilot.press("y")
        assert undone.wait(timeout=20) == "ROLLED_BACK"
    assert stopped.status == "CANCELLED"
    assert (tmp_path / "stopped" / "a.txt").exists()  # cancel undoes nothing
    assert not (tmp_path / "undone" / "a.txt").exists()


@in_own_loop
async def test_new_workflows_appear_without_a_key(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    app = DashboardApp(viewer, poll_interval=0.1)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert rows(app, "#workflows") == []
        run = paused(notebook, tmp_path)
        await settle(pilot, lambda: bool(rows(app, "#workflows")))
        assert [r[0] for r in rows(app, "#workflows")] == [run.id]
        assert len(rows(app, "#approvals")) == 1


@in_own_loop
async def test_the_detail_shows_steps_attempts_errors_and_progress(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    failed = notebook.start(FLAKY_SPEC)
    assert failed.wait(timeout=20) in ("FAILED", "ROLLED_BACK")
    run = paused(notebook, tmp_path)
    app = DashboardApp(viewer, as_user="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # the newest: the paused one
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.workflow_id == run.id
        assert [(r[1], r[3]) for r in rows(app, "#steps")] == [
            ("write_a", "COMPLETED"),
            ("review", "WAITING"),
            ("write_b", "PENDING"),
        ]
        bar = app.screen.query_one("#progress")
        assert (bar.progress, bar.total) == (1, 3)  # type: ignore[attr-defined]
        text = screen_text(app)
        assert "PENDING review  Publish B next to" in text
        assert "a: approve   x: reject" in text
        app.save_screenshot("dashboard-tui-detail.svg", path=str(ARTIFACTS))
        await pilot.press("a", *"ok", "enter")  # decide from the detail
        await settle(pilot, lambda: "APPROVED review" in screen_text(app))
        assert "by ann (asserted) at " in screen_text(app)  # a name typed (--as), not proven
        assert run.wait(timeout=20) == "COMPLETED"
        await settle(pilot, lambda: app.screen.query_one("#progress").progress == 3)  # type: ignore[attr-defined]

        await pilot.press("escape", "down", "enter")  # back, then the failed one
        await settle(pilot)
        assert app.screen.workflow_id == failed.id  # type: ignore[attr-defined]
        assert [r[:3] for r in rows(app, "#attempts")] == [["fetch", "1", "FAILED"], ["fetch", "2", "FAILED"]]
        assert "upstream said 503" in screen_text(app)


# -- a real terminal ----------------------------------------------------------------------------


def test_a_real_run_in_a_pseudo_terminal(notebook: airt_nb.Engine, db_path: Path, tmp_path: Path) -> None:
    import pexpect

    run = paused(notebook, tmp_path)
    env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(ROOT), AIRT_USER="ann")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "airt_nb.cli", "--db", str(db_path), "dashboard"],
        env=env,
        dimensions=(36, 130),
        timeout=30,
    )
    try:
        child.expect("Pending")  # the list is drawn
        child.expect("Approve")  # and the footer
        child.send("a")
        child.expect("reason")
        child.send("from a terminal\r")
        assert poll_until(lambda: run.status == "COMPLETED", timeout=20)
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    (approval,) = run.approvals()
    assert (approval.decided_by, approval.reason) == ("ann", "from a terminal")


def test_without_a_terminal_the_dashboard_refuses_at_once(notebook: airt_nb.Engine, db_path: Path) -> None:
    """Piped or redirected, it writes no escape codes and does not run until it is killed."""
    import subprocess

    paused(notebook, db_path.parent)
    proc = subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "dashboard"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm-256color"),
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "airt dashboard needs a terminal; use `airt list` / `airt show` in scripts\n"


def flat(text: str) -> str:
    """Screen text with a notification's wrapping and border undone."""
    return " ".join(text.replace("▌", " ").replace("▐", " ").split())


FIELDS_SPEC = """
name: scale
steps:
  - name: review
    type: human_approval
    message: "Scale?"
    fields:
      replicas: {type: integer, default: 2, minimum: 1, maximum: 10}
    min_approvals: 2
  - name: go
    action: wait
    inputs: {seconds: "${{ steps.review.outputs.values.replicas }}"}
"""


@in_own_loop
async def test_approve_takes_values_typed_before_the_reason_and_says_how_many_approvals(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine
) -> None:
    run = notebook.start(FIELDS_SPEC)
    assert run.wait(timeout=20) == "PAUSED"
    app = DashboardApp(viewer, as_user="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        text = screen_text(app)
        assert "0 of 2 approvals" in text
        assert "fields: replicas (integer from 1 to 10, default 2)" in text
        assert "Type NAME=VALUE for a field before the reason" in text
        await pilot.press(*"replicas=11 too many", "enter")
        await settle(pilot, lambda: "out of range" in flat(screen_text(app)))
        assert "replicas: 11 is out of range; from 1 to 10" in flat(screen_text(app))
        assert run.decisions() == []
        await pilot.press("a")
        await settle(pilot)
        await pilot.press(*"replicas=1 one is enough", "enter")
        await settle(pilot, lambda: "it waits for the others" in flat(screen_text(app)))
        assert "recorded: 1 of 2; it waits for the others" in flat(screen_text(app))
    (decision,) = run.decisions()
    assert (decision.decided_by, decision.values, decision.reason) == ("ann", {"replicas": 1}, "one is enough")


HOSTILE_SPEC = r"""
name: cleanup
steps:
  - name: review
    type: human_approval
    message: "Delete the production database?\r\x1b[2K[black on black]Refresh the README \u202eharmless"
"""
RAW = ("\r", "\x1b", "\u202e")


@in_own_loop
async def test_text_from_the_database_is_shown_escaped_never_raw_or_as_markup(
    notebook: airt_nb.Engine, viewer: airt_nb.Engine, tmp_path: Path
) -> None:
    """A spec an agent wrote cannot hide, through the terminal, what the person at the dashboard approves."""
    run = notebook.start(HOSTILE_SPEC)
    assert run.wait(timeout=20) == "PAUSED"
    app = DashboardApp(viewer, as_user="ann")
    shown = "Delete the production database?\\r\\x1b[2K[black on black]Refresh the README \\u202eharmless"
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, lambda: "q Quit" in screen_text(app))
        note = rows(app, "#workflows")[0][6]
        message = rows(app, "#approvals")[0][3]
        assert note.startswith("approval 'review': Delete the production database?\\r\\x1b[2K[bla")
        assert message.startswith("Delete the production database?\\r\\x1b[2K[black on")
        assert not any(raw in note + message for raw in RAW)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, DetailScreen))
        detail = str(app.screen.query_one("#approvals-text").render())
        assert shown in detail
        assert not any(raw in detail for raw in RAW)
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, ReasonDialog))
        asked = str(app.screen.query_one("Label").render())
        assert shown in asked
        assert not any(raw in asked for raw in RAW)
