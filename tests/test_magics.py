"""``%load_ext airt_nb``, ``%%workflow`` and ``%workflow`` through a real IPython shell.

The shell's ``run_cell`` re-raises what a cell raised, so a test sees the
exact ``UsageError`` a person would see (without a traceback).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from shared_specs import SEED_SPEC
from traitlets.config import Config

import airt_nb
from airt_nb import Registry, StepContext, StepInterrupted
from airt_nb.widgets import refresher

SPEC = SEED_SPEC


class ReraisingShell(InteractiveShell):
    """An IPython shell whose ``run_cell`` re-raises the cell's error (unless told not to)."""

    reraise = True

    def run_cell(self, *args: Any, **kwargs: Any) -> Any:
        result = super().run_cell(*args, **kwargs)
        if self.reraise:
            result.raise_error()
        return result


@pytest.fixture
def shell() -> Iterator[ReraisingShell]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()  # e.g. ipywidgets' Output.append_display_data creates a plain one
    sh = ReraisingShell.instance(config=config)
    yield sh
    sh.run_line_magic("unload_ext", "airt_nb")
    for panel in refresher().panels():
        panel.stop_live()
    ReraisingShell.clear_instance()


def run(shell: ReraisingShell, cell: str) -> tuple[Any, Any]:
    with capture_output() as cap:
        result = shell.run_cell(cell)
    return result.result, cap


def texts(cap: Any) -> list[str]:
    return [o.data.get("text/plain", "") for o in cap.outputs]


def widget_outputs(cap: Any) -> list[dict]:
    return [o.data for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]


def snapshots(cap: Any) -> list[str]:
    return [
        o.data["text/html"]
        for o in cap.outputs
        if 'class="airt-root airt-panel airt-snapshot"' in o.data.get("text/html", "")
    ]


# -- the extension ------------------------------------------------------------------------------------


def test_load_ext_shows_a_banner_with_the_database(shell: ReraisingShell, tmp_path: Path) -> None:
    _, cap = run(shell, "%load_ext airt_nb")

    banner = texts(cap)[0]
    assert banner.splitlines()[0].startswith(f"airt_nb {airt_nb.__version__} · {tmp_path / 'airt.db'} · acting as ")
    assert "recovery: nothing to resume" in banner
    assert "airt-banner" in cap.outputs[0].data["text/html"]


def test_load_ext_recovers_and_shows_the_card_of_a_paused_run(shell: ReraisingShell, tmp_path: Path) -> None:
    with airt_nb.Engine(tmp_path / "airt.db") as before_restart:
        paused = before_restart.start(SPEC)
        paused.wait(timeout=10)
        running = before_restart.start(
            "name: slow\nsteps:\n  - name: nap\n    action: wait\n    inputs: {seconds: 30}\n"
        )

    _, cap = run(shell, "%load_ext airt_nb")

    banner = texts(cap)[0]
    assert f"resumed: 1: slow ({running.id})" in banner
    assert f"waiting for approval: 1: publish-report ({paused.id}) (card below)" in banner
    cards = widget_outputs(cap)
    assert len(cards) == 1
    assert cards[0]["text/plain"].startswith(f"publish-report {paused.id}  PAUSED")
    (snapshot,) = snapshots(cap)  # the static view right after the live panel
    assert [o.data for o in cap.outputs].index(cards[0]) + 1 == [o.data.get("text/html") for o in cap.outputs].index(
        snapshot
    )
    assert "airt-status-PAUSED" in snapshot
    assert f"%workflow approve {paused.id}" in snapshot
    (panel,) = [p for p in refresher().panels() if getattr(p, "workflow_id", None) == paused.id]
    panel.card.approve_button.click()
    eng = airt_nb.session.current()
    assert eng is not None
    assert eng.get(paused.id).wait(timeout=10) == "COMPLETED"
    eng.cancel(running.id)


def test_load_ext_names_a_run_waiting_for_an_action_which_resumes_once_defined(
    shell: ReraisingShell, tmp_path: Path
) -> None:
    name = f"count_rows_{uuid.uuid4().hex[:6]}"
    registry = Registry()

    def interrupted_by_close(ctx: StepContext) -> dict:
        ctx.cancelled.wait(30)  # the engine closes as the kernel would die: the step stays RUNNING
        raise StepInterrupted

    registry.action(name)(interrupted_by_close)
    with airt_nb.Engine(tmp_path / "airt.db", registry=registry) as before_restart:
        run_ = before_restart.start(f"name: counting\nsteps:\n  - name: count\n    action: {name}\n")

    _, cap = run(shell, "%load_ext airt_nb")

    assert f"waiting for an action: counting ({run_.id}) needs action {name!r}" in texts(cap)[0]
    run(shell, f"import airt_nb\n@airt_nb.action({name!r})\ndef _count() -> dict:\n    return {{'rows': 2}}\n")
    eng = airt_nb.session.current()
    assert eng is not None
    assert eng.get(run_.id).wait(timeout=10) == "COMPLETED"
    assert eng.get(run_.id).outputs == {"count": {"rows": 2}}


# -- %%workflow ------------------------------------------------------------------------------------------


def test_workflow_cell_returns_at_once_while_the_run_goes_on(shell: ReraisingShell) -> None:
    gate = threading.Event()
    name = f"gate_{uuid.uuid4().hex[:6]}"
    airt_nb.action(name)(lambda: {"opened": gate.wait(10)})
    run(shell, "%load_ext airt_nb")

    value, cap = run(shell, f"%%workflow -o job\nname: gated\nsteps:\n  - name: g\n    action: {name}\n")

    assert isinstance(value, airt_nb.Run)
    assert shell.user_ns["job"] is value
    assert value.status == "RUNNING"
    (panel,) = widget_outputs(cap)  # the Run is the cell's value, shown as its live panel ...
    assert f"gated {value.id}  RUNNING  0/1 steps done" in panel["text/plain"]
    (snapshot,) = snapshots(cap)  # ... and its static snapshot
    assert "airt-status-RUNNING" in snapshot
    gate.set()
    assert value.wait(timeout=10) == "COMPLETED"


def test_wait_option_blocks_until_paused_and_inputs_come_from_the_namespace(
    shell: ReraisingShell, tmp_path: Path
) -> None:
    run(shell, "%load_ext airt_nb\nparams = {'target': 'out/custom'}")

    value, _ = run(shell, "%%workflow --wait --inputs params --as ann\n" + SPEC)

    assert value.status == "PAUSED"
    assert (tmp_path / "out/custom/a.txt").read_text() == "hello"
    assert value.record.started_by == "ann"


def test_dry_run_shows_the_plan_and_runs_nothing(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    spec = SPEC + "  - name: notify\n    action: wait\n    inputs: {seconds: 0}\n    depends_on: [write_a]\n"

    value, _ = run(shell, "%%workflow --dry-run -o plan\n" + spec)

    assert repr(value) == (
        "Dry run of publish-report: 4 steps in 3 stages (max_parallel 4); nothing was run or recorded\n"
        "  stage 1:\n"
        "    write_a: file.write\n"
        "  stage 2 (in parallel):\n"
        "    review: approval, gates write_b  [after write_a]\n"
        "    notify: wait  [after write_a]\n"
        "  stage 3:\n"
        "    write_b: file.write  [after review]"
    )
    assert airt_nb.session.engine().store.count_workflows() == 0


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "name: hello\nsteps:\n  - name: a\n    acton: wait\n",
            5,
            "steps[0].acton: unknown key 'acton'; did you mean `action`? allowed here: name, type, description, action, inputs, "
            "depends_on, retry, message, approvers, timeout, on_timeout",
        ),
        (
            "name: hello\nsteps:\n  - name: a\n    action: file.wrte\n",
            5,
            "steps[0].action: unknown action 'file.wrte'; did you mean `file.write`? define it with @action before "
            "starting (registered: ",
        ),
        (
            "name: hello\nsteps:\n  - name: a\n    action: wait\n   inputs: {seconds: 1}\n",
            6,
            "YAML syntax error",
        ),
    ],
)
def test_spec_error_is_shown_once_next_to_the_yaml_with_cell_line_numbers(
    shell: ReraisingShell, body: str, line: int, message: str
) -> None:
    run(shell, "%load_ext airt_nb")

    with capture_output() as cap, pytest.raises(UsageError) as info:
        shell.run_cell("%%workflow\n" + body)

    # the cell fails (a "run all" stops here) with one short line; the problems are in the view above
    assert str(info.value) == "%%workflow: the spec has 1 problem (shown above); nothing was run"
    (listing,) = texts(cap)
    assert listing.splitlines()[0].startswith("Spec error")
    assert listing.splitlines()[1] == " 1 | %%workflow"  # the cell's own line numbers: the magic is line 1
    assert f">{line} | " in listing
    assert message in listing
    html = cap.outputs[0].data["text/html"]
    assert '<pre class="airt-source">' in html  # indentation kept
    assert f'<span class="airt-ln">{line} │ </span><span class="airt-bad">' in html
    assert airt_nb.session.engine().store.count_workflows() == 0


def test_spec_error_lists_every_problem_and_keeps_indentation(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    body = (
        "name: two-problems\nsteps:\n  - name: a\n    action: wait\n    inputs: {seconds: 0}\n"
        "  - name: b\n    action: nope\n    inputs:\n      n: ${{ steps.zz.outputs.q }}\n"
    )

    with capture_output() as cap, pytest.raises(UsageError, match="the spec has 2 problems"):
        shell.run_cell("%%workflow --wait\n" + body)

    (listing,) = texts(cap)
    lines = listing.splitlines()
    assert lines[0] == "Spec error in workflow 'two-problems': 2 problems, nothing was run"
    assert " 8 |     action: nope" in listing.replace(">", " ")
    assert "10 |       n: ${{ steps.zz.outputs.q }}" in listing.replace(">", " ")
    note = lines[lines.index(">10 |       n: ${{ steps.zz.outputs.q }}") + 1]
    assert note.startswith("    |       ^ steps[1].inputs.n: ${{ steps.zz.outputs.q }}: no step named 'zz'")


def test_unterminated_quote_is_marked_where_the_quote_opens(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    body = (
        'name: quote\nsteps:\n  - name: a\n    action: file.write\n    inputs:\n      content: "hello\n      path: x\n'
    )

    with capture_output() as cap, pytest.raises(UsageError):
        shell.run_cell("%%workflow\n" + body)

    (listing,) = texts(cap)
    assert '>7 |       content: "hello' in listing  # the line with the opening quote, not past the end
    note = listing.splitlines()[listing.splitlines().index('>7 |       content: "hello') + 1]
    assert note.index("^") == note.index("|") + 2 + len('      content: "') - 1
    assert "the quote at column 16 is never closed; close the quote" in note


def test_a_yaml_error_inside_a_closed_brace_is_marked_where_it_is(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    step = "  - {name: r, type: human_approval, message: ok?}"

    with capture_output() as cap, pytest.raises(UsageError):
        shell.run_cell(f"%%workflow\nname: p\nsteps:\n{step}\n")

    (listing,) = texts(cap)
    lines = listing.splitlines()
    note = lines[lines.index(f">4 | {step}") + 1]  # the cell's line 4: the YAML's line 3
    assert note.index("^") - (note.index("|") + 2) == step.index("?")  # under the '?', not under the '{'
    assert "unexpected '?' at column 48 inside the { } opened at column 5; put the value in quotes" in note


def test_spec_error_shows_no_traceback(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    shell.reraise = False

    with capture_output() as cap:
        result = shell.run_cell("%%workflow\nname: hello\nsteps: []\n")

    assert isinstance(result.error_in_exec, UsageError)
    assert "Traceback" not in cap.stdout + cap.stderr
    assert cap.stderr == "UsageError: %%workflow: the spec has 1 problem (shown above); nothing was run\n"
    assert "steps: List should have at least 1 item" in texts(cap)[0]


def test_bad_options_name_the_usage(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    with pytest.raises(UsageError) as info:
        shell.run_cell("%%workflow --wiat\nname: x\n")
    assert str(info.value) == (
        "%%workflow: unrecognized arguments: --wiat; "
        "usage: %%workflow [-o VAR] [--wait] [--inputs EXPR] [--as USER] [--dry-run]"
    )
    with pytest.raises(UsageError, match=r"--inputs must give a dict of input values, got list"):
        shell.run_cell("%%workflow --inputs [1]\n" + SPEC)


# -- %workflow ------------------------------------------------------------------------------------------


def test_line_commands_list_show_approve_reject(shell: ReraisingShell, tmp_path: Path) -> None:
    run(shell, "%load_ext airt_nb")
    first, _ = run(shell, "%%workflow --wait\n" + SPEC)
    second, _ = run(shell, "%%workflow --wait --inputs {'target': 'out/two'}\n" + SPEC)

    listing, _ = run(shell, "%workflow list")
    assert [r.workflow_id for r in listing.records] == [second.id, first.id]
    assert repr(listing).endswith("2 of 2 workflows")

    shown, cap = run(shell, f"%workflow show {first.id[:6]}")
    assert shown == first
    assert f"publish-report {first.id}  PAUSED" in widget_outputs(cap)[0]["text/plain"]

    _, cap = run(shell, f"%workflow approve {first.id} --reason 'looks good' --as ann")
    assert cap.stdout.strip() == f"approved step 'review' of workflow {first.id} as ann: looks good"
    _, cap = run(shell, f"%workflow reject {second.id} --reason no")
    assert cap.stdout.strip().startswith(f"rejected step 'review' of workflow {second.id} as ")
    assert first.wait(timeout=10) == "COMPLETED"
    assert second.wait(timeout=10) == "ROLLED_BACK"
    assert not (tmp_path / "out/two/a.txt").exists()

    with pytest.raises(UsageError) as info:
        shell.run_cell(f"%workflow approve {first.id}")
    assert str(info.value).startswith(f"approval {first.approvals()[0].approval_id} of workflow {first.id} ")
    assert "was already approved by ann" in str(info.value)


def test_line_commands_rollback_cancel_resume(shell: ReraisingShell, tmp_path: Path) -> None:
    run(shell, "%load_ext airt_nb")
    done, _ = run(shell, "%%workflow --wait\n" + SPEC)
    done.approve()
    done.wait(timeout=10)

    _, cap = run(shell, f"%workflow rollback {done.id}")
    assert cap.stdout.strip() == f"rolling back workflow {done.id} (watch it with %workflow show {done.id})"
    assert done.wait(timeout=10) == "ROLLED_BACK"
    assert not (tmp_path / "out/report/b.txt").exists()

    paused, _ = run(shell, "%%workflow --wait --inputs \"{'target': 'out/p'}\"\n" + SPEC)
    _, cap = run(shell, f"%workflow cancel {paused.id}")
    assert paused.wait(timeout=10) == "CANCELLED"

    with pytest.raises(UsageError) as info:
        shell.run_cell(f"%workflow resume {paused.id}")
    assert str(info.value) == f"workflow {paused.id} (publish-report) is CANCELLED: there is nothing to resume"


def test_line_command_errors_are_usage_errors(shell: ReraisingShell, tmp_path: Path) -> None:
    run(shell, "%load_ext airt_nb")
    with pytest.raises(UsageError) as info:
        shell.run_cell("%workflow show 0123456789abcdef")
    assert str(info.value) == (
        f"no workflow '0123456789abcdef' in {tmp_path / 'airt.db'}; list them with `airt list` or "
        "airt_nb.runs() and check the id"
    ).replace(str(tmp_path / "airt.db"), "airt.db")
    with pytest.raises(UsageError, match=r"^%workflow approve: the following arguments are required: id"):
        shell.run_cell("%workflow approve")
    with pytest.raises(UsageError, match=r"^%workflow: argument command: invalid choice: 'bogus'"):
        shell.run_cell("%workflow bogus")
    _, cap = run(shell, "%workflow")
    assert cap.stdout.startswith("%workflow list [--status S]")
    with pytest.raises(UsageError, match=r"--status 'nope' is not a workflow status; use one of PENDING, RUNNING"):
        shell.run_cell("%workflow list --status nope")
    with pytest.raises(UsageError, match=r"--limit 99999999999999999999999 is out of range; give 1 to 10,000"):
        shell.run_cell("%workflow list --limit 99999999999999999999999")
    with pytest.raises(UsageError, match=r"as_user= is empty"):
        shell.run_cell("%%workflow --as ''\n" + SPEC)


def test_an_id_ipython_left_unexpanded_says_why_and_both_ways_around_it_work(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    spec = "name: hear\nsteps:\n  - name: w\n    type: wait_event\n    event: ci.done\n"
    first, _ = run(shell, "%%workflow --wait\n" + spec)
    second, _ = run(shell, "%%workflow --wait\n" + spec)
    shell.user_ns.update(first=first, second=second, payload={"passed": False})

    # IPython expands a line all or nothing: the dict literal keeps {first.id} as typed
    with pytest.raises(UsageError) as info:
        shell.run_cell('%workflow send {first.id} ci.done --data {"passed": True}')
    assert str(info.value) == (
        '%workflow send: IPython did not expand the id {first.id}, because the line also holds {"passed": True}, '
        "a dict literal, and IPython expands the {...} of a line only when each is a Python expression (else it "
        'leaves the whole line as written); write the dict with doubled braces (--data {{"passed": True}}) or put '
        "it in a variable (--data payload)"
    )
    with pytest.raises(
        UsageError, match=r"^%workflow fork: IPython did not expand the id \$second, because .*--inputs"
    ):
        shell.run_cell("%workflow fork $second --from w --inputs {'x': 1}")
    with pytest.raises(UsageError, match=r"^%workflow show: IPython did not expand the id \{not_set\}: evaluating it"):
        shell.run_cell("%workflow show {not_set}")
    assert (first.status, second.status) == ("PAUSED", "PAUSED")  # nothing was sent

    run(shell, '%workflow send {first.id} ci.done --data {{"passed": True}}')
    run(shell, "%workflow send {second.id} ci.done --data payload")
    assert first.wait(timeout=10) == second.wait(timeout=10) == "COMPLETED"
    assert (first.outputs["w"], second.outputs["w"]) == ({"passed": True}, {"passed": False})
    _, cap = run(shell, "%workflow help")
    assert "write the dict\nwith doubled braces (--data {{'passed': True}}) or pass a variable" in cap.stdout


def test_policy_refusal_is_shown_without_traceback(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    spec = SPEC.replace('    message: "Publish', '    approvers: [reviewer]\n    message: "Publish')
    paused, _ = run(shell, "%%workflow --wait\n" + spec)

    with pytest.raises(UsageError) as info:
        shell.run_cell(f"%workflow approve {paused.id} --as mallory")

    assert str(info.value).startswith(
        f"workflow {paused.id}, step 'review': user 'mallory' (roles: none) may not decide this approval; "
        "refused by rule 'approvers'"
    )
    assert paused.status == "PAUSED"


def test_approvals_dashboard_and_config_commands(shell: ReraisingShell, tmp_path: Path) -> None:
    run(shell, "%load_ext airt_nb")
    paused, _ = run(shell, "%%workflow --wait\n" + SPEC)

    inbox, _ = run(shell, "%workflow approvals")
    assert [a.workflow_id for a, _ in inbox.pending] == [paused.id]
    board, _ = run(shell, "%workflow dashboard")
    assert [r.workflow_id for r in board.records] == [paused.id]

    other = tmp_path / "other.db"
    _, cap = run(shell, f"%workflow config --db {other}")
    assert texts(cap)[0].startswith(f"airt_nb {airt_nb.__version__} · {other} · ")
    listing, _ = run(shell, "%workflow list")
    assert listing.records == []
    _, cap = run(shell, "%workflow config")
    assert cap.stdout.startswith(f"database {other} · acting as ")


def test_background_threads_print_nothing(shell: ReraisingShell, capfd: pytest.CaptureFixture[str]) -> None:
    run(shell, "%load_ext airt_nb")
    capfd.readouterr()
    name = f"broken_{uuid.uuid4().hex[:6]}"

    def broken() -> dict:
        raise RuntimeError("boom")

    airt_nb.action(name)(broken)
    value, _ = run(shell, f"%%workflow\nname: broken\nsteps:\n  - name: b\n    action: {name}\n")
    assert value.wait(timeout=10) == "FAILED"
    refresher().flush()

    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


# -- snapshots: what a saved notebook keeps --------------------------------------------------------------


def updates(cap: Any) -> list[str]:
    return [o.data.get("text/html", "") for o in cap.outputs if getattr(o, "update", False)]


def test_snapshot_catches_up_at_the_end_of_the_cell_that_finished_the_run(shell: ReraisingShell) -> None:
    gate = threading.Event()
    name = f"gate_{uuid.uuid4().hex[:6]}"
    airt_nb.action(name)(lambda: {"opened": gate.wait(10)})
    run(shell, "%load_ext airt_nb")
    value, cap = run(shell, f"%%workflow -o job\nname: gated\nsteps:\n  - name: g\n    action: {name}\n")
    (first,) = snapshots(cap)
    assert "airt-status-RUNNING" in first
    assert f"<code>%workflow show {value.id}</code> shows this run live" in first
    shell.user_ns["gate"] = gate

    _, cap = run(shell, "gate.set()\njob.wait(timeout=10)")

    assert any("airt-status-COMPLETED" in html and "airt-snapshot" in html for html in updates(cap))
    _, cap = run(shell, "1 + 1")
    assert updates(cap) == []  # nothing changed since: nothing sent


def test_asking_the_kernel_to_shut_down_stamps_every_snapshot(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    run(shell, "%%workflow --wait\n" + SPEC)

    with capture_output() as cap:
        shell.exit_now = True  # what ipykernel does when asked to shut down or restart
    shell.exit_now = False

    (final,) = updates(cap)
    assert "The kernel that showed it stopped at" in final
    assert "airt-status-PAUSED" in final


def test_inputs_take_a_python_literal_without_quotes(shell: ReraisingShell, tmp_path: Path) -> None:
    run(shell, "%load_ext airt_nb")

    value, _ = run(shell, "%%workflow --wait --inputs {'target': 'out/unquoted'} -o job\n" + SPEC)

    assert value.inputs == {"target": "out/unquoted"}
    assert (tmp_path / "out/unquoted/a.txt").read_text() == "hello"
    with pytest.raises(UsageError, match=r"a closing bracket is missing .*; usage: %%workflow \[-o VAR\]"):
        shell.run_cell("%%workflow --inputs {'target': 'x'\n" + SPEC)
    # On a line of %workflow the hint is its own help, not the cell's usage.
    with pytest.raises(UsageError, match=r"^%workflow: a closing bracket is missing .*; see %workflow help$"):
        shell.run_cell("%workflow send 0123abcd ready --data {'a': 1")
    with pytest.raises(UsageError, match=r'^%workflow: closing " is missing \(check the quotes and brackets\); see %w'):
        shell.run_cell("%workflow approve 0123abcd --reason \"it's")


def test_quotes_of_an_expression_are_part_of_it(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    spec = "name: hear\nsteps:\n  - name: w\n    type: wait_event\n    event: ready\n"
    job, _ = run(shell, "%%workflow --wait -o job\n" + spec)
    run(shell, f"%workflow send {job.id} ready --data 'ok'")  # the text ok, not a name of the kernel
    assert job.wait(timeout=10) == "COMPLETED"
    assert job.outputs["w"] == "ok"
    run(shell, "%workflow list --status paused")  # a status in lower case is the same status


def test_a_run_shows_as_its_panel_and_snapshot_without_the_extension(shell: ReraisingShell, tmp_path: Path) -> None:
    with airt_nb.Engine(tmp_path / "plain.db") as eng:
        shell.user_ns["job"] = eng.start(SPEC)
        shell.user_ns["job"].wait(timeout=10)

        _, cap = run(shell, "job")

        (panel,) = widget_outputs(cap)
        assert panel["text/plain"].startswith("publish-report ")
        (snapshot,) = snapshots(cap)
        assert "airt-status-PAUSED" in snapshot
        for live_panel in refresher().panels():
            live_panel.stop_live()
