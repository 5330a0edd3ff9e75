"""The static views as pure functions of plain records: history, counts, snapshots, spec errors, banner.

Some inputs here are records the engine will write once it keeps a run's
history (``workflow_events``), interrupted attempts and tracebacks: the views
are checked against rows of that shape, built by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from airt_nb.engine import RecoverySummary
from airt_nb.errors import SpecError
from airt_nb.store.records import ApprovalRecord, CompensationRecord, StepRecord, WorkflowRecord
from airt_nb.timeutil import iso
from airt_nb.views import Banner, RunState, SpecErrorView, ago, snapshot_html, stamp
from airt_nb.views.run_html import history_html, step_row_html

T0 = 1_750_000_000.0  # a fixed "now" for every view here


def at(seconds: float) -> str:
    return iso(T0 + seconds)


def workflow(**changes: Any) -> WorkflowRecord:
    base = WorkflowRecord(
        workflow_id="0123456789abcdef",
        name="deploy",
        status="RUNNING",
        spec=json.dumps({"steps": [{"name": "build", "retry": {"max_attempts": 3}}]}),
        spec_hash="x",
        inputs="{}",
        created_at=at(-300),
        updated_at=at(-1),
        finished_at=None,
        error=None,
        started_by="ann",
        total_steps=2,
        done_steps=0,
        lease_owner="host|4711|1|ab",
        lease_expires=at(30),
        requested=None,
        waiting_for=None,
        warnings=None,
    )
    return replace(base, **changes)


@dataclass(frozen=True, slots=True)
class TracedStep(StepRecord):
    traceback: str | None = None


def step(name: str, status: str, **changes: Any) -> TracedStep:
    base = TracedStep(
        workflow_id="0123456789abcdef",
        step_name=name,
        position=0,
        type="action",
        action="shell",
        status=status,
        attempt=1,
        started_at=at(-120),
        finished_at=None,
        next_attempt_at=None,
        inputs='{"target": "prod"}',
        outputs=None,
        error=None,
        fingerprint=None,
        state=None,
    )
    return replace(base, **changes)


def state(steps: list[StepRecord], **kw: Any) -> RunState:
    return RunState(
        record=kw.pop("record", workflow()),
        steps=steps,
        approvals=kw.pop("approvals", []),
        compensations=kw.pop("compensations", []),
        attempts=kw.pop("attempts", []),
        events=kw.pop("events", []),
        limits={"build": 3},
        now=T0,
        **kw,
    )


# -- times ------------------------------------------------------------------------------------------------


def test_relative_times_read_like_a_person_says_them() -> None:
    assert ago(at(-1), now=T0) == "just now"
    assert ago(at(-42), now=T0) == "just now"  # to the second would redraw a header every second
    assert ago(at(-185), now=T0) == "3 min ago"
    assert ago(at(-7300), now=T0) == "2 h ago"
    assert ago(at(-3 * 86400), now=T0) == "3 d ago"
    assert ago(at(90), now=T0) == "in 1 min"
    assert stamp(at(-185), now=T0).endswith(" (3 min ago)")


# -- steps ------------------------------------------------------------------------------------------------


def test_retrying_step_says_when_the_next_attempt_runs() -> None:
    row = step("build", "RETRYING", attempt=1, next_attempt_at=at(12))
    earlier = {"step_name": "build", "attempt": 1, "status": "FAILED", "started_at": at(-20), "finished_at": at(-19),
               "error": "TimeoutError: registry slow"}  # fmt: skip

    html = step_row_html(state([row], attempts=[earlier]), row)

    assert "RETRYING" in html
    assert "1 of 3" in html
    assert "next attempt at " in html
    assert "(in less than a minute)" in html
    assert "attempt 1 failed at " in html
    assert "TimeoutError: registry slow" in html


def test_failed_step_keeps_its_traceback_and_inputs_on_demand() -> None:
    trace = 'Traceback (most recent call last):\n  File "deploy.py", line 3\nRuntimeError: boom'
    row = step("build", "FAILED", error="RuntimeError: boom", traceback=trace, finished_at=at(-100))

    html = step_row_html(state([row]), row)

    assert '<details><summary><span class="airt-error">RuntimeError: boom</span></summary>' in html
    assert "File &quot;deploy.py&quot;, line 3" in html  # the traceback, behind the toggle
    assert '<div class="airt-muted">inputs</div><pre>{\n &quot;target&quot;: &quot;prod&quot;\n}</pre>' in html


def test_interrupted_attempt_is_listed_before_the_rerun() -> None:
    row = step("build", "COMPLETED", attempt=1, finished_at=at(-10), outputs='{"ok": true}')
    lost = {"step_name": "build", "attempt": 1, "status": "INTERRUPTED", "started_at": at(-200), "finished_at": at(-150),
            "error": None}  # fmt: skip

    html = step_row_html(state([row], attempts=[lost]), row)

    assert "attempt 1 interrupted at " in html
    assert "(its engine stopped); run again" in html


def test_a_failed_undo_shows_on_its_step_row() -> None:
    row = step("build", "COMPENSATION_FAILED", finished_at=at(-100), outputs='{"ok": true}')
    undo = CompensationRecord(1, "0123456789abcdef", "build", "shell", "{}", "{}", None, "FAILED", 2, at(-100), at(-5),
                              "PermissionError: /srv is read-only")  # fmt: skip

    html = step_row_html(state([row], compensations=[undo]), row)

    assert '<div class="airt-error">undo failed: PermissionError: /srv is read-only</div>' in html


def test_an_approval_step_that_went_on_reads_approved() -> None:
    row = replace(step("review", "COMPLETED", finished_at=at(-50)), type="human_approval", action=None)
    decided = ApprovalRecord("a1", "0123456789abcdef", "review", "APPROVED", "ok?", None, None, at(-60), None,
                             "reject", at(-50), "rita", "fine")  # fmt: skip
    run = state([row], approvals=[decided])

    assert run.shown_status(row) == "APPROVED"
    assert "airt-status-APPROVED" in step_row_html(run, row)


def test_a_message_that_would_read_otherwise_shows_its_hidden_characters() -> None:
    row = replace(step("review", "WAITING"), type="human_approval", action=None)
    message = "Delete harmless.\u202etxt.dorp\u202c?\rApprove"
    pending = ApprovalRecord("a1", "0123456789abcdef", "review", "PENDING", message, None, None, at(-60), None,
                             "reject", None, None, None)  # fmt: skip
    html = snapshot_html(state([row], approvals=[pending]))

    assert r"Delete harmless.\u202etxt.dorp\u202c?\rApprove" in html
    assert "\u202e" not in html
    assert "\r" not in html


# -- the run ------------------------------------------------------------------------------------------------


def test_history_says_who_cancelled_and_that_an_engine_was_lost_and_who_resumed() -> None:
    events = [
        {"workflow_id": "w", "seq": 1, "at": at(-300), "event": "started", "by": "ann", "detail": None},
        {"workflow_id": "w", "seq": 2, "at": at(-200), "event": "engine_lost", "by": None,
         "detail": "pid 4711 on host"},
        {"workflow_id": "w", "seq": 3, "at": at(-190), "event": "resumed", "by": None, "detail": "pid 5012 on host"},
        {"workflow_id": "w", "seq": 4, "at": at(-60), "event": "cancel_requested", "by": "bob", "detail": None},
        {"workflow_id": "w", "seq": 5, "at": at(-59), "event": "cancelled", "by": "bob", "detail": None},
    ]  # fmt: skip

    html = history_html(state([], events=events))

    assert "engine lost: pid 4711 on host" in html
    assert "resumed by pid 5012 on host" in html
    assert "cancel requested by bob" in html
    assert "cancelled by bob" in html
    assert html.index("engine lost") < html.index("resumed by") < html.index("cancelled by bob")
    assert "started" not in html  # the header says who started it


def test_rolled_back_run_shows_what_was_undone_not_what_was_done() -> None:
    record = workflow(status="ROLLED_BACK", done_steps=2, finished_at=at(-1))
    undone = [
        CompensationRecord(i, "w", f"s{i}", "file.write", "{}", "{}", None, "DONE", 1, at(-50), at(-2), None)
        for i in range(2)
    ]

    value, maximum, role, text = state([], record=record, compensations=undone).progress()

    assert (value, maximum, role, text) == (2, 2, "undo", "2 / 2 undone")


def test_a_long_run_counts_its_steps_by_status() -> None:
    record = workflow(total_steps=200, done_steps=150)
    window = [step(f"s{i}", "COMPLETED") for i in range(15)] + [step("r", "RUNNING"), step("f", "FAILED")]
    window += [step(f"p{i}", "PENDING") for i in range(10)]

    counts = state(window, record=record).counts()

    assert counts == {"COMPLETED": 150, "RUNNING": 1, "FAILED": 1, "PENDING": 48}


def test_snapshot_says_it_is_not_live_and_how_to_see_it_live_without_relative_times() -> None:
    running = step("build", "RUNNING")

    html = snapshot_html(state([running]))

    assert "airt-snapshot" in html
    assert "not live" in html
    assert "<code>%workflow show 0123456789abcdef</code> shows this run live" in html
    assert " ago" not in html  # "3 min ago" would be wrong by the time anyone reads a saved view
    assert "since " in html  # a step still running when it was saved
    assert "<style>" in html  # a saved notebook has no widget stylesheet


# -- spec errors -------------------------------------------------------------------------------------------


def test_a_problem_past_the_last_line_is_shown_on_the_last_line() -> None:
    error = SpecError([(9, "", "YAML syntax error: found unexpected end of stream")])

    text = repr(SpecErrorView(error, "name: x\nsteps:\n  - name: a\n"))

    assert ">3 |   - name: a" in text
    assert "^ YAML syntax error" in text


def test_a_column_in_the_message_puts_the_caret_under_it() -> None:
    error = SpecError([(2, "", "YAML syntax error: the quote at column 8 is never closed; close the quote")])

    lines = repr(SpecErrorView(error, 'name: x\ntitle: "open\n')).splitlines()

    assert lines[2] == '>2 | title: "open'
    assert lines[3].index("^") == lines[2].index('"')


def test_problems_without_a_line_are_listed_below() -> None:
    view = SpecErrorView(SpecError([(None, "", "a spec is YAML text or a dict, not int")]), "")

    assert "a spec is YAML text or a dict, not int" in view._repr_html_()
    assert '<ul class="airt-problems">' in view._repr_html_()


# -- the banner ---------------------------------------------------------------------------------------------


def test_banner_lists_this_notebooks_runs_first_and_others_in_one_line() -> None:
    records = {
        "mine1": SimpleNamespace(name="report", session="/home/ann/report.ipynb", workdir="/home/ann"),
        "mine2": SimpleNamespace(name="etl", session="/home/ann/report.ipynb", workdir="/home/ann"),
        "theirs1": SimpleNamespace(name="deploy", session="/home/bob/ops.ipynb", workdir="/home/bob"),
        "theirs2": SimpleNamespace(name="deploy", session="/home/bob/ops.ipynb", workdir="/home/bob"),
        "old": SimpleNamespace(name="legacy"),  # no record of where it started: counted as ours
    }
    summary = RecoverySummary(resumed=["mine2", "theirs2"], restored=["mine1", "theirs1", "old"], skipped={"x": "y"})

    banner = Banner("airt.db", "ann", summary, records, "0.1", session="/home/ann/report.ipynb", workdir="/home/ann")  # type: ignore[arg-type]

    assert banner.lines() == [
        ("resumed", "1: etl (mine2)"),
        ("waiting for approval", "2: report (mine1), legacy (old) (cards below)"),
        ("other notebooks", "1 approval waiting, 1 resumed here, 1 running in other kernels · the inbox: "
                            "%workflow approvals"),
    ]  # fmt: skip
    assert "<code>%workflow approvals</code>" in banner._repr_html_()


def test_without_a_session_name_the_folder_tells_which_runs_are_ours() -> None:
    records = {"a": SimpleNamespace(name="here", workdir="/data/x"), "b": SimpleNamespace(name="there", workdir="/y")}
    summary = RecoverySummary(restored=["a", "b"])

    banner = Banner("airt.db", "ann", summary, records, "0.1", session=None, workdir="/data/x")  # type: ignore[arg-type]

    assert banner.mine("a")
    assert not banner.mine("b")
    assert banner.lines()[0] == ("waiting for approval", "1: here (a) (card below)")
