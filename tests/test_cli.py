"""The ``airt`` command: against a database another process is running workflows on,
tables and JSON, exit codes and one-line errors (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import cmd
from shared_specs import ANN_APPROVES_SPEC

import airt_nb
from airt_nb import Registry, cli
from airt_nb.store import redact
from airt_nb.timeutil import to_epoch
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.both_backends

SPEC = ANN_APPROVES_SPEC

# A notebook stand-in: an engine that starts a workflow, reports it PAUSED, and keeps
# running until the workflow ends (continued by this engine after a decision made elsewhere).
CHILD_ENGINE = """
import json, sys, threading
import airt_nb
db, target, spec = sys.argv[1:4]
eng = airt_nb.Engine(db, user="notebook")
done = threading.Event()
final = {}
def on_event(event):
    if isinstance(event, airt_nb.events.WorkflowStatusChanged) and event.status in (
        "COMPLETED", "ROLLED_BACK", "FAILED", "CANCELLED"
    ):
        final["status"] = event.status
        done.set()
eng.subscribe(on_event)
run = eng.start(spec, inputs={"target": target})
print(json.dumps({"id": run.id, "status": run.wait(30)}), flush=True)
done.wait(60)
print(json.dumps({"final": final.get("status"), "owner": eng.owner_id}), flush=True)
eng.close()
"""


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH")]))
    e.pop("AIRT_USER", None)
    return e


def airt(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the command in a process of its own, as a terminal would."""
    return subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", *args], capture_output=True, text=True, env=env(), timeout=60, **kw
    )


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def child(db: str, tmp_path: Path) -> Any:
    airt_nb.Engine(db, recover=False).close()  # create the database first
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_ENGINE, db, str(tmp_path / "out"), SPEC],
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first["status"] == "PAUSED"
    yield proc, first["id"]
    proc.kill()
    proc.wait()


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def paused_here(db: str, target: Path) -> str:
    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        run = eng.start(SPEC, inputs={"target": str(target)})
        assert run.wait(10) == "PAUSED"
        return run.id


# -- against a running engine in another process --------------------------------------------------------


def test_approving_from_the_cli_lets_the_running_engine_finish_the_workflow(
    child: Any, db: str, tmp_path: Path
) -> None:
    proc, workflow_id = child
    listed = airt("--db", db, "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["WORKFLOW", "NAME", "STATUS", "STEPS", "CREATED", "(UTC)", "BY", "NOTE"]
    assert row.split()[:5] == [workflow_id, "publish", "PAUSED", "1/3", row.split()[4]]
    assert row.split("notebook  ")[1].startswith("approval 'review': Publish next to /")

    shown = airt("--db", db, "show", workflow_id[:6])
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert f"workflow {workflow_id}  publish  PAUSED" in text
    assert "  1  write_a  file.write  COMPLETED  1" in text
    assert "  2  review   approval    WAITING" in text
    assert f"  message     Publish next to {tmp_path / 'out' / 'a.txt'}?" in text
    assert "  approvers   ann" in text
    assert "a rejection would undo (newest first):" in text
    assert (
        f"    write_a (file.write) {json.dumps({'path': str(tmp_path / 'out' / 'a.txt'), 'content': 'hello'})}" in text
    )
    assert f"    write_a: {json.dumps({'path': str(tmp_path / 'out' / 'a.txt'), 'bytes': 5})}" in text

    decided = airt("--db", db, "approve", workflow_id, "--reason", "ship it", "--as", "ann")
    assert decided.returncode == 0, decided.stderr
    assert decided.stdout.splitlines()[0] == f"approved step 'review' of workflow {workflow_id} as ann: ship it"
    # Its home engine is alive: the usual word, not "no engine runs it".
    assert decided.stdout.splitlines()[1].startswith(
        f"workflow {workflow_id} is RUNNING: the engine that has this database open continues it"
    )
    assert decided.stderr == ""

    result = finish(proc)
    assert result["final"] == "COMPLETED"  # seen by the child's own engine: it ran write_b
    assert (tmp_path / "out" / "b.txt").read_text() == "world"
    report = json.loads(airt("--db", db, "--json", "show", workflow_id).stdout)
    [approval] = report["approvals"]
    assert (approval["status"], approval["decided_by"], approval["reason"]) == ("APPROVED", "ann", "ship it")
    steps = {s["step_name"]: s for s in report["steps"]}
    assert steps["write_b"]["status"] == "COMPLETED"
    # How long the running engine took to take the workflow up after the decision (informative).
    pickup = to_epoch(steps["write_b"]["started_at"]) - to_epoch(approval["decided_at"])
    print(f"engine picked the workflow up {pickup * 1000:.0f} ms after the CLI's decision")


def test_rejecting_from_the_cli_lets_the_running_engine_roll_back(child: Any, db: str, tmp_path: Path) -> None:
    proc, workflow_id = child
    decided = airt("--db", db, "reject", workflow_id, "--reason", "no", "--as", "ann")
    assert decided.returncode == 0, decided.stderr
    assert finish(proc)["final"] == "ROLLED_BACK"
    assert not (tmp_path / "out" / "a.txt").exists()


def test_two_cli_processes_deciding_at_once_record_one_decision(child: Any, db: str) -> None:
    proc, workflow_id = child
    cmd = [sys.executable, "-m", "airt_nb.cli", "--db", db]
    procs = [
        subprocess.Popen(
            [*cmd, verb, workflow_id, "--as", "ann"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        for verb in ("approve", "reject")
    ]
    results = [(p.wait(60), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    [loser] = [err for code, _, err in results if code == 1]
    assert loser.startswith("airt: approval ")
    assert "was already" in loser
    assert loser.count("\n") == 1
    assert "Traceback" not in loser
    assert finish(proc)["final"] in ("COMPLETED", "ROLLED_BACK")


# -- errors and exit codes ------------------------------------------------------------------------------------


def test_errors_are_one_line_with_a_non_zero_exit(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workflow_id = paused_here(db, tmp_path / "out")
    missing = airt("--db", db, "show", "nope")  # a real process: exit status and stderr as a shell sees them
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr == (
        f"airt: no workflow 'nope' in {redact(db)}; list them with `airt list` or airt_nb.runs() and check the id\n"
    )
    code, out, err = run_cli(capsys, "--db", db, "approve", workflow_id, "--as", "mallory")
    assert (code, out) == (1, "")
    assert err == (
        f"airt: workflow {workflow_id}, step 'review': user 'mallory' (roles: none) may not decide this approval; "
        "refused by rule 'approvers': only ann may decide this approval. Approvers: ann; ask one of them "
        "to decide\n"
    )
    assert run_cli(capsys, "--db", db, "approve", workflow_id, "--as", "ann")[0] == 0
    code, _, err = run_cli(capsys, "--db", db, "approve", workflow_id, "--as", "ann")
    assert code == 1
    assert "was already approved by ann at" in err
    assert "Traceback" not in err
    assert err.count("\n") == 1
    code, _, err = run_cli(capsys, "--db", str(tmp_path / "none.db"), "list")
    assert code == 1
    assert err == f"airt: no airt_nb database at {tmp_path / 'none.db'}; pass --db PATH or set AIRT_DB\n"
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(SystemExit) as usage:
        cli.main(["--db", db, "frobnicate"])
    assert usage.value.code == 2


def test_json_errors_are_machine_readable(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paused_here(db, tmp_path / "out")
    code, out, err = run_cli(capsys, "--db", db, "--json", "approve", "nope")
    assert code == 1
    assert json.loads(out)["type"] == "NotFoundError"
    assert err.startswith("airt: no workflow 'nope'")


# -- commands in this process (fast) ---------------------------------------------------------------------------


def test_list_filters_and_json(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = paused_here(db, tmp_path / "a")
    second = paused_here(db, tmp_path / "b")
    code, out, _ = run_cli(capsys, "--db", db, "reject", second, "--as", "ann")
    assert code == 0
    code, out, _ = run_cli(capsys, "--db", db, "list", "--status", "paused", "--json")
    assert code == 0
    [item] = json.loads(out)
    assert (item["workflow_id"], item["status"]) == (first, "PAUSED")
    assert item["pending_approval"]["step_name"] == "review"
    assert item["pending_approval"]["approvers"] == ["ann"]
    assert "spec" not in item
    code, out, _ = run_cli(capsys, "--db", db, "list", "--status", "COMPLETED")
    assert (code, out) == (0, "no workflows with status COMPLETED\n")
    # The rejection left the workflow to an engine that runs workflows: none is open.
    code, out, _ = run_cli(capsys, "--db", db, "--json", "list", "--status", "ROLLING_BACK")
    assert [w["workflow_id"] for w in json.loads(out)] == [second]


def test_an_approval_id_works_as_well_as_a_workflow_id(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow_id = paused_here(db, tmp_path / "out")
    with airt_nb.Engine(db, recover=False, registry=Registry()) as eng:
        approval_id = eng.get(workflow_id).pending_approval.approval_id
    code, out, err = run_cli(capsys, "--db", db, "--json", "approve", approval_id[:8], "--as", "ann")
    assert code == 0, err
    data = json.loads(out)
    assert (data["approval_id"], data["workflow_id"], data["status"]) == (approval_id, workflow_id, "APPROVED")
    assert data["workflow_status"] == "RUNNING"
    assert data["no_engine_runs_it"] is True  # the engine that paused it closed


def test_one_of_several_approvals_says_under_which_name_it_was_recorded(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        spec = SPEC.replace("approvers: [ann]", "approvers: [ann, bob]\n    min_approvals: 2")
        run = eng.start(spec, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
    code, out, err = run_cli(capsys, "--db", db, "--json", "approve", run.id, "--as", "ann", "--reason", "one")
    assert code == 0, err
    data = json.loads(out)
    assert (data["status"], data["approved_count"], data["decided_by"]) == ("PENDING", 1, None)
    assert (data["decision"]["decided_by"], data["decision"]["auth"]) == ("ann", "asserted")
    code, out, err = run_cli(capsys, "--db", db, "approve", run.id, "--as", "bob")
    assert code == 0, err
    assert out.startswith(f"approved step 'review' of workflow {run.id} as bob\n")


NOTEBOOK_ACTION_SPEC = """
name: swap
steps:
  - name: review
    type: human_approval
    approvers: [ann]
  - name: swap
    action: swap_tables
"""


def test_a_run_whose_next_step_is_a_notebook_action_is_sent_to_its_notebook_not_to_airt_resume(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = Registry()

    @notebook.action("swap_tables")
    def swap_tables() -> dict:
        return {}

    with airt_nb.Engine(db, registry=notebook, user="notebook") as eng:
        run = eng.start(NOTEBOOK_ACTION_SPEC)
        assert run.wait(10) == "PAUSED"
    needs = (
        "it needs action 'swap_tables', which airt does not define: open the notebook it was started from and run "
        "the cells that define them (it continues there by itself)"
    )
    monkeypatch.setenv("COLUMNS", "60")
    code, out, err = run_cli(capsys, "--db", db, "approve", run.id, "--as", "ann")
    assert code == 0, err
    assert needs in " ".join(out.split())
    assert "resume" not in out
    code, out, _ = run_cli(capsys, "--db", db, "show", run.id)
    assert f"runner none: no engine runs it; {needs}" in " ".join(out.split())
    code, out, err = run_cli(capsys, "--db", db, "resume", run.id)
    assert code == 1  # nothing here can run it: a script must not take it for carried on
    assert err == f"airt: workflow {run.id} did not go on: {needs}\n"


def test_a_command_in_a_sentence_is_never_broken_across_lines(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow_id = paused_here(db, tmp_path / "out")
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run_cli(capsys, "--db", db, "approve", workflow_id, "--as", "ann")
    assert code == 0
    assert any(f"`{cmd(db)} resume {workflow_id}`" in line for line in out.splitlines()), out


def test_resume_runs_a_workflow_nobody_runs_here(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workflow_id = paused_here(db, tmp_path / "out")
    code, out, _ = run_cli(capsys, "--db", db, "approve", workflow_id, "--as", "ann")
    assert code == 0
    assert f"no engine runs it: its home engine, {socket.gethostname()} pid {os.getpid()}, is gone" in out
    assert not (tmp_path / "out" / "b.txt").exists()
    code, out, _ = run_cli(capsys, "--db", db, "resume", workflow_id)
    assert (code, out) == (0, f"workflow {workflow_id} resumed here and is now COMPLETED\n")
    assert (tmp_path / "out" / "b.txt").read_text() == "world"
    code, out, err = run_cli(capsys, "--db", db, "resume", workflow_id)
    assert code == 1
    assert err == f"airt: workflow {workflow_id} (publish) is COMPLETED: there is nothing to resume\n"


def test_rollback_and_cancel(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # whole lines, compared whole
    done = paused_here(db, tmp_path / "done")
    assert run_cli(capsys, "--db", db, "approve", done, "--as", "ann")[0] == 0
    assert run_cli(capsys, "--db", db, "resume", done)[0] == 0
    # Nobody runs it and the engine that ran it is gone: the command takes the rollback up and ends it.
    code, out, _ = run_cli(capsys, "--db", db, "rollback", done)
    assert (code, out) == (0, f"workflow {done} was rolled back here and is now ROLLED_BACK\n")
    assert not (tmp_path / "done" / "b.txt").exists()

    waiting = paused_here(db, tmp_path / "waiting")
    code, out, _ = run_cli(capsys, "--db", db, "cancel", waiting)
    # CANCELLED alone reads as "reverted" to some: what stays done, and how to undo it, is said.
    assert (code, out) == (
        0,
        f"workflow {waiting} is CANCELLED; nothing was undone (`{cmd(db)} rollback {waiting}` undoes its completed steps)\n",
    )
    assert (tmp_path / "waiting" / "a.txt").exists()
    monkeypatch.setenv("COLUMNS", "60")  # fitted to the terminal like every other line
    out = run_cli(capsys, "--db", db, "cancel", paused_here(db, tmp_path / "narrow"))[1]
    # Every line fits but the one holding the command to copy, which is never cut (the path is long).
    assert max(len(line) for line in out.splitlines() if "`airt" not in line) <= 60
    assert " ".join(out.split()).endswith("undoes its completed steps)")
    code, out, _ = run_cli(capsys, "--db", db, "--json", "show", waiting)
    [approval] = json.loads(out)["approvals"]
    assert (approval["status"], approval["reason"]) == ("CANCELLED", "workflow cancelled")


def test_show_lists_decided_approvals_and_webhook_deliveries(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow_id = paused_here(db, tmp_path / "out")
    run_cli(capsys, "--db", db, "reject", workflow_id, "--as", "ann", "--reason", "too early")
    code, out, _ = run_cli(capsys, "--db", db, "show", workflow_id)
    assert code == 0
    assert "(step 'review'): REJECTED by ann [asserted] at " in out
    assert out.rstrip().endswith("UTC (too early)")


# -- start-up -------------------------------------------------------------------------------------------------------


def test_the_cli_does_not_import_pandas_or_ipython(db: str, tmp_path: Path) -> None:
    paused_here(db, tmp_path / "out")
    code = (
        "import sys; from airt_nb import cli; rc = cli.main(['--db', sys.argv[1], 'list']); "
        "heavy = [m for m in ('pandas', 'IPython', 'ipywidgets') if m in sys.modules]; "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, db], capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_console_script_is_installed(db: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "airt"
    found = require_tool(str(script) if script.exists() else "airt", "the airt console script (pip install -e .)")
    paused_here(db, tmp_path / "out")
    proc = subprocess.run([found, "--db", db, "--json", "list"], capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["status"] == "PAUSED"


def test_show_says_what_happens_at_the_deadline(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = SPEC.replace("approvers: [ann]", "approvers: [ann]\n    timeout: 2h\n    on_timeout: approve")
    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        run = eng.start(spec, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        deadline = run.pending_approval.deadline
    code, out, _ = run_cli(capsys, "--db", db, "show", run.id)
    assert code == 0
    assert f"  deadline    {deadline[:19].replace('T', ' ')} UTC, then approved automatically\n" in out


def test_list_limit_lists_at_most_that_many(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paused_here(db, tmp_path / "a")
    paused_here(db, tmp_path / "b")
    code, out, _ = run_cli(capsys, "--db", db, "--json", "list", "--limit", "1")
    assert code == 0
    assert len(json.loads(out)) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["list", "--limit", "-5"], "argument --limit: -5 is out of range; give a number from 1 to 100,000"),
        (["resume", "abcd", "--timeout", "inf"], "argument --timeout: inf is not a finite duration"),
        (["show", "../x"], "argument ID: '../x' is not a workflow or approval id"),
    ],
)
def test_out_of_range_arguments_are_usage_errors(
    args: list[str], says: str, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    airt_nb.Engine(db, recover=False).close()
    proc = airt("--db", db, *args)
    assert proc.returncode == 2
    assert says in proc.stderr
    assert proc.stderr.startswith("usage: airt")


# -- what nobody runs, and what waits for an event --------------------------------------------------------------

# A script that starts a workflow, sees it PAUSED and ends without closing its engine, as a script whose
# last line is run.wait() does: after a decision made elsewhere, no engine is left to carry it on.
GONE_SCRIPT = """
import json, os, sys
import airt_nb
db, target, spec = sys.argv[1:4]
eng = airt_nb.Engine(db, user="notebook")
run = eng.start(spec, inputs={"target": target})
print(json.dumps({"id": run.id, "status": run.wait(30), "owner": eng.owner_id}), flush=True)
os._exit(0)
"""


def paused_by_a_gone_script(db: str, target: Path) -> tuple[str, str]:
    """``(workflow id, the owner id of its engine)``: PAUSED by a process that has exited since."""
    airt_nb.Engine(db, recover=False).close()
    proc = subprocess.run(
        [sys.executable, "-c", GONE_SCRIPT, db, str(target), SPEC],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    first = json.loads(proc.stdout)
    assert first["status"] == "PAUSED", proc.stderr
    return first["id"], first["owner"]


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_a_decision_that_leaves_the_workflow_to_a_gone_engine_says_so_everywhere(
    verb: str, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # whole lines, compared whole
    workflow_id, owner = paused_by_a_gone_script(db, tmp_path / "out")
    host_pid = f"{socket.gethostname()} pid {owner.split('|')[1]}"
    status, doing = ("RUNNING", "continue it") if verb == "approve" else ("ROLLING_BACK", "roll it back")
    code, out, err = run_cli(capsys, "--db", db, verb, workflow_id, "--as", "ann")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == (
        f"workflow {workflow_id} is {status} but no engine runs it: its home engine, {host_pid}, is gone and no "
        f"engine that takes up work is open; run `{cmd(db)} resume {workflow_id}` to {doing} here, or open its notebook"
    )
    code, out, _ = run_cli(capsys, "--db", db, "--json", "show", workflow_id)
    assert json.loads(out)["no_engine_runs_it"] is True

    code, out, _ = run_cli(capsys, "--db", db, "list")
    [row] = out.splitlines()[1:]
    assert row.split()[:3] == [workflow_id, "publish", status]
    assert row.split("notebook  ")[1].startswith("no engine runs it")
    code, out, _ = run_cli(capsys, "--db", db, "--json", "list")
    assert json.loads(out)[0]["no_engine_runs_it"] is True

    code, out, _ = run_cli(capsys, "--db", db, "show", workflow_id)
    assert (
        f"  runner      none: no engine runs it; `{cmd(db)} resume {workflow_id}` continues it here (or open its notebook)\n"
        in out
    )
    # What it says is what to do: resume ends it here, and then nothing is said any more.
    code, out, _ = run_cli(capsys, "--db", db, "resume", workflow_id)
    assert code == 0
    code, out, _ = run_cli(capsys, "--db", db, "show", workflow_id)
    assert "runner" not in out
    assert "no engine runs it" not in run_cli(capsys, "--db", db, "list")[1]


def test_show_names_the_engine_that_runs_or_will_take_up_a_workflow(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live engine that takes up work (a worker, a notebook) takes it up once its home's grace is over:
    the workflow is not said to be run by nobody."""
    workflow_id, _ = paused_by_a_gone_script(db, tmp_path / "out")
    # Another notebook's engine: the gone script's own session would get its workflow back at once.
    with airt_nb.Engine(db, registry=Registry(), home_grace=600, session="other.ipynb", user="worker"):
        code, out, _ = run_cli(capsys, "--db", db, "approve", workflow_id, "--as", "ann")
        assert code == 0
        assert "no engine runs it" not in out
        assert "the engine that has this database open continues it" in out
        code, out, _ = run_cli(capsys, "--db", db, "show", workflow_id)
        assert f"an engine that takes up work ({socket.gethostname()} pid {os.getpid()}) takes it up" in out
        assert "no engine runs it" not in run_cli(capsys, "--db", db, "list")[1]


def test_list_reads_liveness_and_event_steps_once_for_all_rows(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airt_nb import clicommands
    from airt_nb.store.reads import Reads

    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        for _ in range(3):
            assert eng.start(EVENT_SPEC).wait(10) == "PAUSED"
    # Decided last: an engine that opens takes up what nobody runs.
    for workflow_id in [paused_here(db, tmp_path / name) for name in ("a", "b", "c")]:
        assert run_cli(capsys, "--db", db, "approve", workflow_id, "--as", "ann")[0] == 0
    calls = {"live": 0, "steps": 0}
    live, steps = clicommands._live_engines, Reads.steps_by_workflow

    def counted_live(*args: Any) -> Any:
        calls["live"] += 1
        return live(*args)

    def counted_steps(*args: Any) -> Any:
        calls["steps"] += 1
        return steps(*args)

    monkeypatch.setattr(clicommands, "_live_engines", counted_live)
    monkeypatch.setattr(Reads, "steps_by_workflow", counted_steps)
    code, out, _ = run_cli(capsys, "--db", db, "list")
    assert code == 0
    assert out.count("no engine runs it") == 3
    assert out.count("event 'ci.done'") == 3
    assert calls == {"live": 1, "steps": 1}


EVENT_SPEC = """
name: ci-gate
steps:
  - name: ci
    type: wait_event
    event: ci.done
    timeout: 2h
  - name: done
    type: human_approval
    message: merge?
"""


def test_a_workflow_waiting_for_an_event_says_which_and_how_to_send_it(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        run = eng.start(EVENT_SPEC)
        assert run.wait(10) == "PAUSED"
        deadline = next(s.next_attempt_at for s in run.steps() if s.step_name == "ci")
    code, out, _ = run_cli(capsys, "--db", db, "list")
    assert out.splitlines()[1].rstrip().endswith("notebook  event 'ci.done'")
    code, out, _ = run_cli(capsys, "--db", db, "--json", "list")
    assert json.loads(out)[0]["waiting_events"] == ["ci.done"]

    code, out, _ = run_cli(capsys, "--db", db, "show", run.id)
    assert (
        "\nwaiting for event ci.done (step 'ci')\n"
        f"  deadline    {deadline[:19].replace('T', ' ')} UTC, then the step fails and what was done is rolled back\n"
        f"  send it: {cmd(db)} send {run.id} ci.done --data '{{...}}'\n"
    ) in out
    code, out, _ = run_cli(capsys, "--db", db, "--json", "show", run.id)
    assert json.loads(out)["waiting_events"] == [
        {"step_name": "ci", "event": "ci.done", "deadline": deadline, "on_timeout": "fail"}
    ]
    # The command it gives works as written.
    code, out, err = run_cli(capsys, "--db", db, "send", run.id, "ci.done", "--data", '{"passed": true}')
    assert (code, err) == (0, "")
    assert "step 'ci' received it" in out
    assert f"workflow {run.id} is RUNNING but no engine runs it: its home engine, " in out  # that engine closed
    code, out, _ = run_cli(capsys, "--db", db, "show", run.id)
    assert "waiting for event" not in out


FIELDS_SPEC = """
name: scale
steps:
  - name: review
    type: human_approval
    message: scale it?
    fields:
      replicas: {type: integer, minimum: 1, maximum: 10, default: 3, description: pods after the change}
      channel: {type: string, default: ops, description: "tell the team's channel"}
"""


def test_show_gives_field_descriptions_and_says_values_may_be_set(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        run = eng.start(FIELDS_SPEC)
        assert run.wait(10) == "PAUSED"
    code, out, _ = run_cli(capsys, "--db", db, "show", run.id)
    assert code == 0
    assert "    replicas  (integer from 1 to 10, default 3) · pods after the change\n" in out
    assert "    channel  (string, default ops) · tell the team's channel\n" in out
    # Every field has a default: the plain command works, and the hint says values may be given.
    assert f"  decide: {cmd(db)} approve {run.id} [--value NAME=VALUE ...] --reason ...\n" in out

    required = FIELDS_SPEC.replace("default: 3, ", "")
    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        run = eng.start(required)
        assert run.wait(10) == "PAUSED"
    code, out, _ = run_cli(capsys, "--db", db, "show", run.id)
    assert f"  decide: {cmd(db)} approve {run.id} --value replicas=... --reason ...\n" in out

    # Two approvals: once the first approver gave the values, the next one confirms them by approving.
    two = required.replace("    message: scale it?\n", "    message: scale it?\n    min_approvals: 2\n")
    with airt_nb.Engine(db, registry=Registry(), user="notebook") as eng:
        run = eng.start(two)
        assert run.wait(10) == "PAUSED"
        run.approve(by="ann", values={"replicas": 4})
    code, out, _ = run_cli(capsys, "--db", db, "show", run.id)
    assert "    replicas = 4  (integer from 1 to 10) · pods after the change\n" in out
    assert f"  decide: {cmd(db)} approve {run.id} --reason ...\n" in out
