"""The approvals inbox and the dashboard, driven with ``.click()`` and widget values."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from notebook_support import APPROVAL_SPEC, wait_until

import airt_nb
from airt_nb import Registry
from airt_nb.timeutil import iso
from airt_nb.widgets import DashboardPanel, InboxPanel, refresher

QUICK = "name: quick-{n}\nsteps:\n  - name: a\n    action: wait\n    inputs: {{seconds: 0}}\n"


@pytest.fixture(autouse=True)
def _stop_panels() -> Iterator[None]:
    yield
    for panel in refresher().panels():
        panel.stop_live()


def paused_run(engine: airt_nb.Engine, target: str) -> airt_nb.Run:
    run = engine.start(APPROVAL_SPEC, inputs={"target": target})
    assert run.wait(timeout=10) == "PAUSED"
    return run


# -- inbox ---------------------------------------------------------------------------------------------


def test_inbox_lists_pending_approvals_of_every_kernel_oldest_first(db_path: Path, registry: Registry) -> None:
    with (
        airt_nb.Engine(db_path, registry=registry, user="ann") as mine,
        airt_nb.Engine(db_path, registry=registry, user="bob") as other_kernel,
    ):
        first = paused_run(other_kernel, "out/1")
        second = paused_run(mine, "out/2")
        inbox = InboxPanel(mine)

        assert [a.workflow_id for a, _ in inbox.pending] == [first.id, second.id]
        assert "2 waiting for a decision, oldest first" in inbox.header_html.value
        assert [row.children[0].description for row in inbox.rows[:2]] == [first.id, second.id]
        line = inbox.rows[0].children[1].value  # one compact line per approval
        assert "<b>publish-report</b>" in line
        assert f"Publish B next to {db_path.parent}/out/1/a.txt?" in line  # file actions give absolute paths
        assert "in 1 h 59 min" in line
        # the oldest is picked when the inbox opens: its card is below the table
        assert inbox.selected == first.approvals()[0].approval_id
        assert f"<code>{first.id}</code>" in inbox.card.title_html.value
        body = inbox.card.body_html.value
        assert "times out in 1 h 59 min (then reject)" in body
        # What a rejection undoes, with the path the undo will touch (absolute: resolved in the workflow's folder).
        assert "<b>write_a</b>: undo <code>file.write</code> path=/" in body


def test_inbox_decides_the_picked_approval_in_place(engine: airt_nb.Engine) -> None:
    first = paused_run(engine, "out/1")
    second = paused_run(engine, "out/2")
    inbox = InboxPanel(engine)
    inbox.rows[1].children[0].click()  # pick the second one
    assert "airt-row-selected" in inbox.rows[1]._dom_classes
    inbox.card.reason.value = "ship it"

    inbox.card.approve_button.click()

    assert second.wait(timeout=10) == "COMPLETED"
    assert f"review of <code>{second.id}</code> approved by tester (asserted) at" in inbox.message_html.value
    refresher().flush()
    assert [a.workflow_id for a, _ in inbox.pending] == [first.id]
    assert inbox.card.layout.display == "none"  # nothing is picked by itself after a decision
    assert first.status == "PAUSED"


def test_inbox_card_has_the_form_of_the_picked_approvals_fields(engine: airt_nb.Engine) -> None:
    spec = APPROVAL_SPEC.replace(
        "type: human_approval\n",
        "type: human_approval\n    fields:\n      copies: {type: integer, default: 1, maximum: 5}\n"
        "    min_approvals: 2\n",
    )
    run = engine.start(spec, inputs={"target": "out/f"})
    assert run.wait(timeout=10) == "PAUSED"
    inbox = InboxPanel(engine)
    assert "anyone · 0/2" in inbox.rows[0].children[1].value
    card = inbox.card
    assert card.form.inputs["copies"].value == 1
    card.form.inputs["copies"].value = 4
    card.approve_button.click()
    assert "your approval is recorded (1 of 2 approvals)" in card.message_html.value
    refresher().flush()
    inbox.refresh()
    assert "anyone · 1/2" in inbox.rows[0].children[1].value
    assert run.approvals()[0].values == {"copies": 4}
    inbox.select(run.approvals()[0].approval_id)  # nothing is picked by itself after a decision
    assert "1 of 2 approvals (tester)" in inbox.card.count_html.value
    assert inbox.card.approve_button.disabled  # tester approved already


def test_inbox_keeps_a_typed_reason_across_refreshes(engine: airt_nb.Engine) -> None:
    paused_run(engine, "out/1")
    inbox = InboxPanel(engine)
    inbox.card.reason.value = "half-typed"

    paused_run(engine, "out/2")
    inbox.refresh()

    assert len(inbox.pending) == 2
    assert inbox.card.reason.value == "half-typed"


def test_inbox_filters_by_name_and_by_who_may_decide(db_path: Path, registry: Registry) -> None:
    with airt_nb.Engine(db_path, registry=registry, user="ann") as eng:
        open_to_all = paused_run(eng, "out/1")
        only_rita = eng.start(
            APPROVAL_SPEC.replace("    timeout: 2h\n", "    approvers: [rita]\n"), inputs={"target": "out/2"}
        )
        assert only_rita.wait(timeout=10) == "PAUSED"
        inbox = InboxPanel(eng)
        assert '<span class="airt-ok">✔</span>' in inbox.rows[0].children[1].value  # you may decide it
        assert '<span class="airt-ok">✔</span>' not in inbox.rows[1].children[1].value

        inbox.who_filter.value = "mine"
        assert [a.workflow_id for a, _ in inbox.pending] == [open_to_all.id]
        assert "1 of 2 match the filters" in inbox.header_html.value

        inbox.who_filter.value = ""
        inbox.name_filter.value = "nothing-like-it"
        assert inbox.pending == []
        inbox.name_filter.value = "review"  # a step name matches too
        assert len(inbox.pending) == 2


def test_inbox_marks_you_only_where_the_card_lets_you_decide(db_path: Path, registry: Registry) -> None:
    rule = "name: {name}\nsteps:\n  - name: review\n    type: human_approval\n    approvers: [ann, sam]\n    {rule}\n"
    with airt_nb.Engine(db_path, registry=registry, user="sam") as eng:
        runs = {
            name: eng.start(rule.format(name=name, rule=line))
            for name, line in [
                ("open", "message: yours"),
                ("own-run", "exclude_requester: true"),
                ("authenticated", "authenticated: true"),
                ("approved", "min_approvals: 2"),
            ]
        }
        for run in runs.values():
            assert run.wait(timeout=10) == "PAUSED"
        runs["approved"].approve()  # sam's approval: 1 of 2, the other must come from ann
        inbox = InboxPanel(eng)

        you = {
            name: line
            for (_, name), line in zip(inbox.pending, (r.children[1].value for r in inbox.rows), strict=False)
        }
        assert '<span class="airt-ok">✔</span>' in you["open"]
        for name in ("own-run", "authenticated", "approved"):
            assert '<span class="airt-ok">✔</span>' not in you[name], name
        # the row says why, in the card's words
        assert 'title="You (sam) started this workflow, and the step says' in you["own-run"]
        assert 'title="This step accepts only authenticated decisions' in you["authenticated"]
        assert 'title="You (sam) approved already; it waits for 1 more approval(s)' in you["approved"]

        inbox.who_filter.value = "mine"
        assert [a.workflow_id for a, _ in inbox.pending] == [runs["open"].id]
        inbox.who_filter.value = ""
        for name in ("own-run", "authenticated", "approved"):  # the card agrees: no Approve button
            inbox.select(runs[name].approvals()[0].approval_id)
            assert inbox.card.approve_button.disabled, name


def test_inbox_pages_with_show_more(engine: airt_nb.Engine) -> None:
    for i in range(3):
        paused_run(engine, f"out/{i}")
    inbox = InboxPanel(engine, page_size=2)
    assert len(inbox.pending) == 2
    assert "3 waiting for a decision, oldest first, showing the oldest 2" in inbox.header_html.value

    inbox.more_button.click()

    assert len(inbox.pending) == 3
    assert inbox.rows[2].layout.display is None
    assert inbox.more_button.layout.display == "none"


# -- dashboard ---------------------------------------------------------------------------------------------


def test_dashboard_filters_by_status_name_and_time(engine: airt_nb.Engine) -> None:
    paused = paused_run(engine, "out/p")
    done = [engine.start(QUICK.format(n=i)) for i in range(3)]
    for run in done:
        assert run.wait(timeout=10) == "COMPLETED"
    board = DashboardPanel(engine)
    assert board.total == 4
    assert "COMPLETED</span> 3" in board.counts_html.value

    board.status_filter.value = "PAUSED"
    assert [r.workflow_id for r in board.records] == [paused.id]
    assert board.rows[0].children[0].description == paused.id
    assert board.rows[1].layout.display == "none"

    board.status_filter.value = ""
    board.name_filter.value = "quick-1"
    assert [r.workflow_id for r in board.records] == [done[1].id]

    board.name_filter.value = ""
    board.range_filter.value = 3600
    assert board.total == 4
    assert board.filters()["since"] is not None


def test_dashboard_pages_through_many_workflows(engine: airt_nb.Engine) -> None:
    base = time.time() - 10_000
    rows = [
        {
            "workflow_id": uuid.uuid4().hex[:16],
            "name": f"bulk-{i % 7}",
            "status": "COMPLETED",
            "spec": "{}",
            "spec_hash": "x",
            "inputs": "{}",
            "created_at": iso(base + i),
            "updated_at": iso(base + i),
            "started_by": "loader",
            "total_steps": 1,
            "lease_owner": None,
            "lease_expires": None,
        }
        for i in range(2_500)
    ]
    engine.store.write(lambda tx: [tx.insert_workflow(r) for r in rows])
    board = DashboardPanel(engine, page_size=25)
    newest = [r["workflow_id"] for r in reversed(rows)]
    assert [r.workflow_id for r in board.records] == newest[:25]
    assert board.prev_button.disabled

    board.next_button.click()
    assert [r.workflow_id for r in board.records] == newest[25:50]
    assert "26–50 of 2,500 (newest first) · page 2 of 100" in board.page_html.value
    for _ in range(200):  # past the end stays on the last page
        board.next_button.click()
    assert [r.workflow_id for r in board.records] == newest[-25:]
    assert board.next_button.disabled

    board.status_filter.value = "COMPLETED"  # a filter change goes back to the first page
    assert board.page == 0


def test_dashboard_detail_view_is_the_live_run_panel(engine: airt_nb.Engine) -> None:
    run = paused_run(engine, "out/p")
    board = DashboardPanel(engine)

    board.rows[0].children[0].click()

    assert board.detail is not None
    assert board.detail.workflow_id == run.id
    assert board.list_box.children.index(board.detail_box) == 2  # right under its line (after the head)
    board.detail.card.approve_button.click()
    assert run.wait(timeout=10) == "COMPLETED"
    board.rows[0].children[0].click()  # its button again closes it
    assert board.detail is None
    assert board.detail_box not in board.list_box.children


def test_dashboard_line_shows_steps_duration_and_error(engine: airt_nb.Engine, registry: Registry) -> None:
    @registry.action("broken")
    def broken() -> dict:
        raise RuntimeError("disk full")

    failed = engine.start("name: breaks\nsteps:\n  - name: b\n    action: broken\n")
    assert failed.wait(timeout=10) == "FAILED"
    done = engine.start(QUICK.format(n=1))
    assert done.wait(timeout=10) == "COMPLETED"
    board = DashboardPanel(engine)

    newest, older = (row.children[1].value for row in board.rows[:2])
    assert "1 / 1" in newest  # steps, never cut to "1/…"
    assert " s</span>" in newest  # how long it took
    assert "(just now)" in newest or " ago)" in newest
    assert "RuntimeError: disk full" in older

    board.rows[1].children[0].click()
    other = engine.start(QUICK.format(n=2))  # a newer workflow moves every line down one
    assert other.wait(timeout=10) == "COMPLETED"
    board.refresh()
    assert board.detail is not None
    assert board.detail.workflow_id == failed.id
    assert board.list_box.children.index(board.detail_box) == 4  # still right under its (moved) line


def test_dashboard_loads_raw_tables_as_dataframes(engine: airt_nb.Engine) -> None:
    paused_run(engine, "out/p")
    board = DashboardPanel(engine)
    board.table_choice.value = "steps"

    board.load_button.click()

    (output,) = board.table_out.outputs
    assert "text/html" in output["data"]
    assert "write_a" in output["data"]["text/plain"]
    assert list(board.load_table("approvals")["step_name"]) == ["review"]


def test_dashboard_refreshes_by_itself_when_another_kernel_starts_a_workflow(db_path: Path, registry: Registry) -> None:
    with (
        airt_nb.Engine(db_path, registry=registry) as mine,
        airt_nb.Engine(db_path, registry=registry) as other_kernel,
    ):
        board = DashboardPanel(mine)
        board.check_every = 0.1
        assert board.total == 0

        run = other_kernel.start(QUICK.format(n=1))

        # the refresher renders on its own thread: wait for the row itself, not for the count set before it
        wait_until(lambda: board.rows[0].children[0].description == run.id)
        assert board.total == 1
        assert board.rows[0].layout.display is None


def test_dashboard_does_not_reload_when_nothing_changed(engine: airt_nb.Engine) -> None:
    board = DashboardPanel(engine)
    renders = board.render_count

    assert not board.poll_due(True, time.time() + 5)  # the database changed, but not its workflows
    assert board.render_count == renders
