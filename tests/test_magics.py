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


# -- the extension ------------------------------------------------------------------------------------


def test_load_ext_shows_a_banner_with_the_database(shell: ReraisingShell, tmp_path: Path) -> None:
    _, cap = run(shell, "%load_ext airt_nb")

    banner = texts(cap)[0]
    assert banner.splitlines()[0].startswith(f"airt_nb {airt_nb.__version__} · {tmp_path / 'airt.db'} · acting as ")
    assert "recovery: nothing to resume" in banner
    assert 'class="airt-banner"' in cap.outputs[0].data["text/html"]


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
    assert f"waiting for approval: 1: publish-report ({paused.id}) (cards below)" in banner
    cards = widget_outputs(cap)
    assert len(cards) == 1
    assert cards[0]["text/plain"].startswith(f"publish-report {paused.id}  PAUSED")
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
    assert cap.stdout.startswith("Out[")  # the Run is the cell's value ...
    assert f"gated {value.id}  RUNNING  0/1 steps done" in cap.stdout
    bundle, _ = shell.display_formatter.format(value)
    assert "application/vnd.jupyter.widget-view+json" in bundle  # ... and displays as its live panel
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
    ("body", "message"),
    [
        (
            "name: hello\nsteps:\n  - name: a\n    acton: wait\n",
            "workflow 'hello': invalid workflow spec: line 4, steps[0].acton: unknown key 'acton'; allowed here: "
            "name, type, description, action, inputs, depends_on, retry, message, approvers, timeout, on_timeout",
        ),
        (
            "name: hello\nsteps:\n  - name: a\n    action: file.wrte\n",
            "workflow 'hello': invalid workflow spec: line 4, steps[0].action: unknown action 'file.wrte'; "
            "define it with @action before starting (registered: ",
        ),
        (
            "name: hello\nsteps:\n  - name: a\n    action: wait\n   inputs: {seconds: 1}\n",
            "invalid workflow spec: line 5, (top level): YAML syntax error: ",
        ),
    ],
)
def test_spec_error_is_a_usage_error_with_the_line_highlighted(shell: ReraisingShell, body: str, message: str) -> None:
    run(shell, "%load_ext airt_nb")

    with capture_output() as cap, pytest.raises(UsageError) as info:
        shell.run_cell("%%workflow\n" + body)

    assert str(info.value).startswith(message)
    (listing,) = texts(cap)
    line = int(message.split("line ")[1].split(",")[0])
    assert f">{line:>3} | " in listing
    assert "background:rgba(207,34,46" in cap.outputs[0].data["text/html"]


def test_spec_error_shows_no_traceback(shell: ReraisingShell) -> None:
    run(shell, "%load_ext airt_nb")
    shell.reraise = False

    with capture_output() as cap:
        result = shell.run_cell("%%workflow\nname: hello\nsteps: []\n")

    assert isinstance(result.error_in_exec, UsageError)
    assert "Traceback" not in cap.stdout + cap.stderr
    assert "UsageError: workflow 'hello': invalid workflow spec: line 2, steps:" in cap.stderr


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
    second, _ = run(shell, "%%workflow --wait --inputs \"{'target': 'out/two'}\"\n" + SPEC)

    listing, _ = run(shell, "%workflow list")
    assert [r.workflow_id for r in listing.records] == [second.id, first.id]
    assert repr(listing).endswith("2 of 2 workflows")

    shown, cap = run(shell, f"%workflow show {first.id[:6]}")
    assert shown == first
    assert f"publish-report {first.id}  PAUSED" in cap.stdout

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
