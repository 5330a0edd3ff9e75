"""Where a workflow runs: its home engine and folder, whoever decides, cancels or rolls back.

Engines here are several ``Engine`` objects on one database (a SQLite file, a
PostgreSQL database), each with its own notebook session and user, as two
notebooks (two kernels) would be; the crash and kernel suites do the same
across real processes and kernels.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

import airt_nb
from airt_nb import ApprovalError, Engine, Registry, WorkflowStateError
from tests.conftest import poll_until

pytestmark = pytest.mark.both_backends

SPEC = """
name: draft-and-publish
steps:
  - name: draft
    action: file.write
    inputs: {path: draft.md, content: draft}
  - name: review
    type: human_approval
    message: "Publish?"
  - name: publish
    action: file.write
    inputs: {path: final.md, content: final}
"""


def folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return a, b


def resumed_by(eng: Engine, workflow_id: str) -> list[str | None]:
    return [e.by for e in eng.store.history(workflow_id) if e.event == "resumed"]


def test_a_decision_from_another_notebook_is_carried_out_by_the_home_in_its_folder(db: str, tmp_path: Path) -> None:
    a, b = folders(tmp_path)
    with (
        Engine(db, registry=Registry(), user="ann", session="a.ipynb") as notebook_a,
        Engine(db, registry=Registry(), user="bob", session="b.ipynb") as notebook_b,
    ):
        run = notebook_a.start(SPEC, workdir=a)
        assert run.wait(timeout=10) == "PAUSED"
        assert (a / "draft.md").read_text() == "draft"
        notebook_b.approve(run.id, reason="from B's inbox")
        assert notebook_a.get(run.id).wait(timeout=10) == "COMPLETED"
        # The rest ran in A's kernel and A's folder, never in B.
        assert (a / "final.md").read_text() == "final"
        assert not (b / "final.md").exists()
        assert resumed_by(notebook_a, run.id) == ["ann"]
        assert run.record.workdir == str(a)
        assert airt_nb.runs(db).set_index("workflow_id").loc[run.id, "workdir"] == str(a)


def test_a_rejection_from_another_notebook_undoes_the_home_folders_file(db: str, tmp_path: Path) -> None:
    a, _b = folders(tmp_path)
    with (
        Engine(db, registry=Registry(), user="ann", session="a.ipynb") as notebook_a,
        Engine(db, registry=Registry(), user="bob", session="b.ipynb") as notebook_b,
    ):
        run = notebook_a.start(SPEC, workdir=a)
        assert run.wait(timeout=10) == "PAUSED"
        notebook_b.reject(run.id, reason="no")
        assert run.wait(timeout=10) == "ROLLED_BACK"
        assert not (a / "draft.md").exists()
        [undo] = run.compensations()
        assert (undo.status, undo.note) == ("DONE", None)
        assert undo.inputs.count(str(a / "draft.md")) == 1  # the intent names the absolute path


def test_the_same_notebook_gets_a_gone_homes_workflow_at_once_and_others_only_after_the_grace(
    db: str, tmp_path: Path
) -> None:
    a, _ = folders(tmp_path)
    first = Engine(db, registry=Registry(), user="ann", session="a.ipynb")
    run = first.start(SPEC, workdir=a)
    assert run.wait(timeout=10) == "PAUSED"
    first.close()  # the kernel of notebook A shuts down
    with Engine(db, registry=Registry(), user="bob", session="b.ipynb", home_grace=60) as notebook_b:
        notebook_b.approve(run.id)
        time.sleep(1.5)  # B sweeps (signal, then every second) and leaves it to A's notebook
        assert notebook_b.get(run.id).record.lease_owner is None
        assert not notebook_b.is_local(run.id)
        with Engine(db, registry=Registry(), user="ann-restarted", session="a.ipynb") as restarted:
            assert restarted.get(run.id).wait(timeout=10) == "COMPLETED"
            assert resumed_by(restarted, run.id) == ["ann-restarted"]
    assert (a / "final.md").read_text() == "final"


def test_another_notebook_takes_over_after_the_grace_and_runs_in_the_home_folder(db: str, tmp_path: Path) -> None:
    a, b = folders(tmp_path)
    first = Engine(db, registry=Registry(), user="ann", session="a.ipynb")
    run = first.start(SPEC, workdir=a)
    assert run.wait(timeout=10) == "PAUSED"
    first.close()
    gone = time.monotonic()
    with Engine(db, registry=Registry(), user="bob", session="b.ipynb", home_grace=1.0) as notebook_b:
        notebook_b.approve(run.id)
        assert notebook_b.get(run.id).wait(timeout=10) == "COMPLETED"
        assert time.monotonic() - gone >= 1.0
        assert resumed_by(notebook_b, run.id) == ["bob"]
    assert (a / "final.md").read_text() == "final"
    assert not (b / "final.md").exists()


def test_a_workflow_whose_folder_is_missing_waits_visibly_until_it_is_back(db: str, tmp_path: Path) -> None:
    a, _ = folders(tmp_path)
    first = Engine(db, registry=Registry(), user="ann", session="a.ipynb")
    run = first.start(SPEC, workdir=a)
    assert run.wait(timeout=10) == "PAUSED"
    first.close()
    (a / "draft.md").unlink()
    a.rmdir()
    with Engine(db, registry=Registry(), user="bob", session="b.ipynb", home_grace=0) as other:
        other.approve(run.id)
        assert poll_until(lambda: other.get(run.id).waiting_for == f"folder {a}", timeout=10)
        assert other.get(run.id).status == "RUNNING"
        assert not (tmp_path / "final.md").exists()  # never in some other folder
        a.mkdir()
        assert other.get(run.id).wait(timeout=10) == "COMPLETED"
    assert (a / "final.md").read_text() == "final"


@pytest.mark.parametrize("kind", ["rollback", "cancel"])
def test_a_request_made_while_the_last_step_runs_is_never_lost(db: str, kind: str) -> None:
    """The request races the completing checkpoint; whichever comes first, nothing is silently dropped."""
    registry = Registry()
    began = threading.Event()
    undone: list[str] = []

    @registry.action("last")
    def last(pause: float) -> dict:
        began.set()
        time.sleep(pause)
        return {"ok": True}

    @last.compensate
    def _(inputs: dict, outputs: dict) -> None:
        undone.append("last")

    spec = {
        "name": "finishing",
        "steps": [{"name": "first", "action": "wait", "inputs": {"seconds": 0}}, {"name": "last", "action": "last"}],
    }
    rng = random.Random(4)
    outcomes: dict[str, int] = {}
    with (
        Engine(db, registry=registry, user="owner", session="owner") as owner,
        Engine(db, registry=registry, user="ops", session="ops", recover=False) as other,
    ):
        for trial in range(40):
            began.clear()
            undone.clear()
            pause = rng.choice([0, 0.0005, 0.001, 0.002, 0.004])
            run = owner.start({**spec, "steps": [spec["steps"][0], {**spec["steps"][1], "inputs": {"pause": pause}}]})
            assert began.wait(10)
            time.sleep(rng.random() * 0.004)
            try:
                answer = getattr(other, kind)(run.id)
            except WorkflowStateError:
                answer = "too late"  # it had completed: a cancel of a finished run is refused, never dropped
            final = run.wait(timeout=30, until="done")
            outcomes[f"{answer} -> {final}"] = outcomes.get(f"{answer} -> {final}", 0) + 1
            if kind == "rollback":
                assert final == "ROLLED_BACK", (trial, answer)
                assert undone == ["last"], (trial, answer)
            elif answer == "too late":
                assert final == "COMPLETED", trial
            else:
                assert final == "CANCELLED", (trial, answer)
    print(kind, outcomes)
    assert any(k.startswith("requested") for k in outcomes)  # the race was really run


def test_deciding_without_an_approval_id_when_several_are_pending_is_refused_with_the_list(engine: Engine) -> None:
    spec = {
        "name": "two-gates",
        "steps": [
            {"name": "legal", "type": "human_approval", "depends_on": []},
            {"name": "security", "type": "human_approval", "depends_on": []},
        ],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10) == "PAUSED"
    pending = {a.step_name: a.approval_id for a in run.approvals()}
    with pytest.raises(ApprovalError) as info:
        run.approve()
    assert str(info.value) == (
        f"workflow {run.id} has 2 pending approvals: {pending['legal']} (step 'legal'); "
        f"{pending['security']} (step 'security'); say which one to decide with approval_id=... "
        "(on the command line: the approval id instead of the workflow id)"
    )
    assert all(a.status == "PENDING" for a in run.approvals())  # nothing decided
    run.approve(approval_id=pending["security"])
    assert {a.step_name: a.status for a in run.approvals()} == {"legal": "PENDING", "security": "APPROVED"}
    run.approve()  # one left: no id needed
    assert run.wait(timeout=10) == "COMPLETED"


def test_a_busy_run_with_a_short_lease_is_never_taken_over_while_its_engine_lives(db: str) -> None:
    """Renewal runs on its own thread: a run whose commits follow one another without pause cannot starve it."""
    ran_in: dict[str, int] = {}

    def registry(name: str) -> Registry:
        reg = Registry()

        @reg.action("tick")
        def tick() -> None:
            ran_in[name] = ran_in.get(name, 0) + 1

        return reg

    n = 20_000 if db.startswith("postgresql") else 40_000  # a few seconds: several lease periods
    steps = [{"name": f"s{i}", "action": "tick"} for i in range(n)]
    with Engine(db, registry=registry("owner"), session="owner", lease_ttl=1.0) as owner:
        # Validating and recording a 40,000-step spec holds the interpreter for a while (pydantic, one
        # big insert): start it before the other engine watches; the run's own commits are what matters.
        run = owner.start({"name": "busy", "steps": steps})
        with Engine(
            db, registry=registry("other"), session="other", lease_ttl=1.0, poll_interval=0.05, home_grace=0
        ) as other:
            status = run.wait(timeout=120)
            events = [(e.event, e.by) for e in owner_history(db, run.id)]
            assert status == "COMPLETED", (events, f"longest renewal gap {owner._leases.longest_gap:.3f} s")
            assert owner._leases.renewals >= 2  # the run lasted several lease periods
            assert not other.is_local(run.id)
    assert ran_in == {"owner": n}, events
    assert [e for e, _ in events] == ["started", "completed"]


def owner_history(db: str, workflow_id: str) -> list[airt_nb.store.EventRecord]:
    with airt_nb.store.opened(db) as store:
        return store.history(workflow_id)
