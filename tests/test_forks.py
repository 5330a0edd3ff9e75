"""Forking a finished run from a step, and comparing two runs (``Engine.fork``, ``airt_nb.diff``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import airt_nb
from airt_nb import Registry, SpecError, WorkflowStateError
from airt_nb.commands import run_line

FOUR = {
    "name": "four",
    "inputs": {"scale": 1},
    "steps": [
        {"name": "load", "action": "expensive", "inputs": {"n": "${{ inputs.scale }}"}},
        {"name": "clean", "action": "expensive", "inputs": {"n": "${{ steps.load.outputs.n }}"}},
        {"name": "train", "action": "flaky", "inputs": {"n": "${{ steps.clean.outputs.n }}"}},
        {"name": "report", "action": "publish", "inputs": {"n": "${{ steps.train.outputs.n }}"}},
    ],
}
# The same with steps that have an undo: a failure's rollback undoes them, a fork of it runs them again.
UNDONE = {**FOUR, "steps": [{**s, "action": "publish"} if s["action"] == "expensive" else s for s in FOUR["steps"]]}


@pytest.fixture
def counted(registry: Registry) -> dict[str, object]:
    """Actions that count their side effects; ``flaky`` fails until ``state["fixed"]``; ``publish``
    can be undone, ``expensive`` (a computation) has nothing to undo."""
    state: dict[str, object] = {"runs": Counter(), "undone": Counter(), "fixed": False}
    runs, undone = state["runs"], state["undone"]
    assert isinstance(runs, Counter)
    assert isinstance(undone, Counter)

    @registry.action("expensive")
    def expensive(n: int, ctx: airt_nb.StepContext) -> dict:
        runs[ctx.step_name] += 1
        return {"n": n + 1}

    @registry.action("publish")
    def publish(n: int, ctx: airt_nb.StepContext) -> dict:
        runs[ctx.step_name] += 1
        return {"n": n + 1}

    @publish.compensate
    def _(inputs: dict, outputs: dict, ctx: object) -> None:
        undone[getattr(ctx, "step_name")] += 1  # noqa: B009

    @registry.action("flaky")
    def flaky(n: int, ctx: airt_nb.StepContext) -> dict:
        runs[ctx.step_name] += 1
        if not state["fixed"]:
            raise RuntimeError("train diverged")
        return {"n": n * 10}

    return state


def test_a_fork_after_a_failure_reruns_only_the_failed_step_and_after(
    engine: airt_nb.Engine, counted: dict[str, object]
) -> None:
    runs = counted["runs"]
    first = engine.start(FOUR)
    assert first.wait(timeout=10) == "FAILED"
    assert runs == Counter({"load": 1, "clean": 1, "train": 1})

    counted["fixed"] = True  # the action is fixed in a cell, between the runs
    fork = engine.fork(first.id, from_step="train")

    assert fork.wait(timeout=10) == "COMPLETED"
    assert runs == Counter({"load": 1, "clean": 1, "train": 2, "report": 1})  # load and clean never ran again
    assert fork.outputs == {"load": {"n": 2}, "clean": {"n": 3}, "train": {"n": 30}, "report": {"n": 31}}
    row = airt_nb.runs(engine).set_index("workflow_id").loc[fork.id]
    assert row["forked_from"] == first.id
    events = airt_nb.history(engine, workflow_id=fork.id)
    forked = events[events["event"] == "forked"].iloc[0]["detail"]
    assert forked == f"fork of {first.id} from step train; kept: load, clean"

    changed = airt_nb.diff(first, fork)
    assert changed["step_name"].tolist() == ["train", "report"]
    train = changed.set_index("step_name").loc["train"]
    assert (train["status_a"], train["status_b"]) == ("FAILED", "COMPLETED")
    assert train["changed"] == ["status", "outputs"]
    assert train["outputs_b"] == {"n": 30}
    assert changed.relation == "b is a fork of a"
    html = changed._repr_html_()
    assert "2 of 4 steps differ" in html
    assert "airt-diff-changed" in html
    assert "train" in repr(changed)
    assert "b is a fork of a" in repr(changed)
    text = repr(changed).splitlines()
    # Why the first run's step failed, under its status: what one compares two runs for.
    status = text.index("    status   a: FAILED")
    assert text[status + 1 : status + 3] == ["             b: COMPLETED", f"    error    a: {train['error_a']}"]


def test_steps_the_failure_undid_run_again_in_the_fork(engine: airt_nb.Engine, counted: dict[str, object]) -> None:
    first = engine.start(UNDONE)
    assert first.wait(timeout=10) == "FAILED"
    assert counted["undone"] == Counter({"load": 1, "clean": 1})
    counted["fixed"] = True

    fork = engine.fork(first.id, from_step="train")

    assert fork.wait(timeout=10) == "COMPLETED"
    assert counted["runs"] == Counter({"load": 2, "clean": 2, "train": 2, "report": 1})
    events = airt_nb.history(engine, workflow_id=fork.id)
    detail = events[events["event"] == "forked"].iloc[0]["detail"]
    assert (
        detail
        == f"fork of {first.id} from step train; kept: none; runs again too: load (undone by the original's rollback)"
    )


def test_the_fork_carries_the_undo_of_kept_steps_so_each_is_undone_once(
    engine: airt_nb.Engine, counted: dict[str, object]
) -> None:
    counted["fixed"] = True
    first = engine.start(UNDONE)
    assert first.wait(timeout=10) == "COMPLETED"
    fork = engine.fork(first.id, from_step="train")
    assert fork.wait(timeout=10) == "COMPLETED"

    original = {c.step_name: c.status for c in first.compensations()}
    assert original == {"load": "CARRIED", "clean": "CARRIED", "report": "PENDING"}
    assert counted["runs"] == Counter({"load": 1, "clean": 1, "train": 2, "report": 2})
    carried = {c.step_name: (c.status, c.origin) for c in fork.compensations()}
    assert carried["load"] == ("PENDING", first.id)
    assert carried["clean"] == ("PENDING", first.id)

    engine.rollback(fork.id)
    assert fork.wait(timeout=10, until="done") == "ROLLED_BACK"
    engine.rollback(first.id)
    assert first.wait(timeout=10, until="done") == "ROLLED_BACK"
    # load and clean were undone by the fork, once; each run undid its own report.
    assert counted["undone"] == Counter({"load": 1, "clean": 1, "report": 2})


def test_a_step_whose_inputs_changed_runs_again_with_what_follows(
    engine: airt_nb.Engine, counted: dict[str, object]
) -> None:
    counted["fixed"] = True
    first = engine.start(FOUR)
    assert first.wait(timeout=10) == "COMPLETED"

    fork = engine.fork(first.id, from_step="report", inputs={"scale": 5})

    assert fork.wait(timeout=10) == "COMPLETED"
    assert fork.outputs["report"] == {"n": 71}  # load saw the new scale, so everything ran again
    assert counted["runs"] == Counter({"load": 2, "clean": 2, "train": 2, "report": 2})
    events = airt_nb.history(engine, workflow_id=fork.id)
    assert "runs again too: load (inputs changed)" in events[events["event"] == "forked"].iloc[0]["detail"]


def test_an_edited_spec_runs_the_steps_it_changed(engine: airt_nb.Engine, counted: dict[str, object]) -> None:
    counted["fixed"] = True
    first = engine.start(FOUR)
    assert first.wait(timeout=10) == "COMPLETED"
    edited = json.loads(json.dumps(FOUR))
    edited["steps"][3]["inputs"]["n"] = "${{ steps.clean.outputs.n }}"
    edited["steps"][3]["depends_on"] = ["clean"]

    fork = engine.fork(first.id, from_step="report", spec=edited)

    assert fork.wait(timeout=10) == "COMPLETED"
    assert counted["runs"] == Counter({"load": 1, "clean": 1, "train": 1, "report": 2})
    assert fork.outputs["report"] == {"n": 4}


def test_forking_needs_a_finished_run_and_a_known_step(engine: airt_nb.Engine, registry: Registry) -> None:
    paused = engine.start({"name": "p", "steps": [{"name": "ask", "type": "human_approval"}]})
    assert paused.wait(timeout=10) == "PAUSED"
    with pytest.raises(WorkflowStateError, match="only a finished run can be forked"):
        engine.fork(paused.id, from_step="ask")
    engine.cancel(paused.id)
    with pytest.raises(SpecError, match="from_step: no step named 'akk'; steps are: ask"):
        engine.fork(paused.id, from_step="akk")
    assert len(engine.workflows()) == 1  # nothing was written


def test_the_fork_command_and_the_magic_line(engine: airt_nb.Engine, counted: dict[str, object]) -> None:
    first = engine.start(FOUR)
    assert first.wait(timeout=10) == "FAILED"
    counted["fixed"] = True
    fork = run_line(f"fork {first.id[:6]} --from train --inputs {{'scale': 1}}", engine, evaluate=eval)
    assert isinstance(fork, airt_nb.Run)
    assert fork.wait(timeout=10) == "COMPLETED"


def test_airt_fork_runs_the_fork_here(db_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    from airt_nb.cli import main

    eng = airt_nb.Engine(db_path, registry=registry)
    run = eng.start({"name": "w", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]})
    assert run.wait(timeout=10) == "COMPLETED"
    eng.close()

    assert main(["--db", str(db_path), "--json", "fork", run.id, "--from", "a"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["forked_from"] == run.id
    assert out["status"] == "COMPLETED"
    assert main(["--db", str(db_path), "fork", run.id, "--from", "zz"]) == 1
    assert "no step named 'zz'" in capsys.readouterr().err


def test_fork_from_here_in_the_panel(engine: airt_nb.Engine, counted: dict[str, object]) -> None:
    from airt_nb.widgets.run_panel import RunPanel

    first = engine.start(FOUR)
    assert first.wait(timeout=10) == "FAILED"
    panel = RunPanel(first)
    panel.refresh()
    shown = [b.layout.display != "none" for b in panel.fork_buttons[:4]]
    assert shown == [True, True, True, False]  # finished or failed steps; report never ran
    counted["fixed"] = True

    panel.fork_buttons[2].click()

    (fork_panel,) = panel.fork_panels
    assert fork_panel.run.wait(timeout=10) == "COMPLETED"
    assert fork_panel.run.record.forked_from == first.id
    assert f"airt_nb.diff({first.id!r}, {fork_panel.run.id!r})" in panel.forks_box.children[0].value
    fork_panel.refresh()
    assert f"fork of {first.id}" in fork_panel.header_html.value
    panel.stop_live()
    fork_panel.stop_live()


SHIP = """
name: ship
inputs: {replicas: 2}
steps:
  - name: review
    type: human_approval
    message: "Ship it?"
  - name: deploy
    action: deploy
    inputs: {replicas: "${{ inputs.replicas }}"}
"""


def test_a_fork_runs_a_gated_step_on_the_originals_approval_only_if_it_does_what_was_approved(
    engine: airt_nb.Engine, registry: Registry
) -> None:
    deployed: list[int] = []

    @registry.action("deploy")
    def deploy(replicas: int) -> dict:
        deployed.append(replicas)
        return {}

    run = engine.start(SHIP)
    assert run.wait(10) == "PAUSED"
    run.approve(by="ann", reason="2 is right")
    assert run.wait(10) == "COMPLETED"

    same = engine.fork(run.id, from_step="deploy")
    assert same.wait(10) == "COMPLETED"  # the same step again: what ann approved
    assert deployed == [2, 2]

    for fork in (
        engine.fork(run.id, from_step="deploy", inputs={"replicas": 9}),
        engine.fork(
            run.id, from_step="deploy", spec=SHIP.replace('{replicas: "${{ inputs.replicas }}"}', "{replicas: 3}")
        ),
    ):
        assert fork.wait(10) == "PAUSED"
        again = fork.pending_approval
        assert again.step_name == "deploy"
        assert again.message.startswith("Asked again before step 'deploy' runs: ")
        assert json.loads(again.context)["asked_again"]["approved_by"] == "ann"
        assert deployed == [2, 2]  # nothing ran on ann's decision
        fork.reject(by="ann", reason="not what I approved")
        assert fork.wait(10) == "ROLLED_BACK"

    nine = engine.fork(run.id, from_step="deploy", inputs={"replicas": 9})
    assert nine.wait(10) == "PAUSED"
    nine.approve(by="bob", reason="9, then")
    assert nine.wait(10) == "COMPLETED"
    assert deployed == [2, 2, 9]
    # A fork of that fork runs the same step on bob's decision, the latest that covered it.
    assert engine.fork(nine.id, from_step="deploy").wait(10) == "COMPLETED"
    assert deployed == [2, 2, 9, 9]
