"""Sub-workflows: ``type: workflow`` steps run a child workflow of their own (``uses:``, ``inputs:``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import poll_until

import airt_nb
from airt_nb import Registry, SpecError


@pytest.fixture
def log(registry: Registry) -> list[str]:
    """What the steps did and undid, in order."""
    done: list[str] = []

    @registry.action("do")
    def do(label: str, ctx: airt_nb.StepContext, fail: bool = False) -> dict:
        if fail:
            raise RuntimeError(f"{label} broke")
        done.append(f"do {label}")
        return {"label": label, "wf": ctx.workflow_id}

    @do.compensate
    def _(inputs: dict, outputs: dict) -> None:
        done.append(f"undo {outputs['label']}")

    return done


def write(path: Path, spec: dict) -> None:
    path.write_text(json.dumps(spec))  # JSON is YAML


CHILD = {
    "name": "child",
    "inputs": {"tag": "x", "fail": False},
    "steps": [
        {"name": "c1", "action": "do", "inputs": {"label": "c1-${{ inputs.tag }}"}},
        {"name": "c2", "action": "do", "inputs": {"label": "c2", "fail": "${{ inputs.fail }}"}},
    ],
}


def parent(fail_child: bool = False, after: dict | None = None) -> dict:
    steps = [
        {"name": "p1", "action": "do", "inputs": {"label": "p1"}},
        {"name": "sub", "type": "workflow", "uses": "child.yaml", "inputs": {"tag": "t", "fail": fail_child}},
        after or {"name": "p3", "action": "do", "inputs": {"label": "${{ steps.sub.outputs.c1.label }}+p3"}},
    ]
    return {"name": "parent", "steps": steps}


@pytest.fixture(autouse=True)
def child_file(tmp_path: Path) -> None:
    write(tmp_path / "child.yaml", CHILD)


def child_of(engine: airt_nb.Engine, run: airt_nb.Run) -> airt_nb.Run:
    (child,) = engine.store.children(run.id)
    return engine.get(child.workflow_id)


def test_a_child_runs_as_a_workflow_of_its_own_and_its_outputs_feed_the_parent(
    engine: airt_nb.Engine, log: list[str]
) -> None:
    run = engine.start(parent())

    assert run.wait(timeout=10) == "COMPLETED"
    child = child_of(engine, run)
    assert child.status == "COMPLETED"
    assert child.inputs == {"tag": "t", "fail": False}
    assert run.outputs["sub"] == {"c1": {"label": "c1-t", "wf": child.id}, "c2": {"label": "c2", "wf": child.id}}
    assert run.outputs["p3"]["label"] == "c1-t+p3"
    assert log == ["do p1", "do c1-t", "do c2", "do c1-t+p3"]
    frame = airt_nb.runs(engine).set_index("workflow_id")
    assert frame.loc[child.id, "parent_id"] == run.id
    assert frame.loc[child.id, "parent_step"] == "sub"
    assert {s.step_name: s.status for s in run.steps()}["sub"] == "COMPLETED"
    assert json.loads(run.steps()[1].inputs or "{}") == {"tag": "t", "fail": False}


def test_a_failing_child_rolls_back_itself_then_its_parent(engine: airt_nb.Engine, log: list[str]) -> None:
    run = engine.start(parent(fail_child=True))

    assert run.wait(timeout=10, until="done") == "FAILED"
    child = child_of(engine, run)
    assert child.status == "FAILED"
    assert log == ["do p1", "do c1-t", "undo c1-t", "undo p1"]
    assert f"child workflow {child.id} (child) failed: step 'c2' failed" in (run.error or "")
    assert {s.step_name: s.status for s in run.steps()} == {"p1": "COMPENSATED", "sub": "FAILED", "p3": "SKIPPED"}


def test_rolling_back_a_parent_rolls_back_its_completed_children_in_order(
    engine: airt_nb.Engine, log: list[str]
) -> None:
    run = engine.start(parent())
    assert run.wait(timeout=10) == "COMPLETED"
    log.clear()

    engine.rollback(run.id)

    assert run.wait(timeout=10, until="done") == "ROLLED_BACK"
    assert child_of(engine, run).status == "ROLLED_BACK"
    assert log == ["undo c1-t+p3", "undo c2", "undo c1-t", "undo p1"]  # newest first, the child's inside
    assert {c.step_name: (c.action, c.status) for c in run.compensations()}["sub"] == ("workflow", "DONE")


def test_a_child_waiting_for_approval_keeps_its_parent_running(engine: airt_nb.Engine, log: list[str]) -> None:
    write(Path("child.yaml"), {**CHILD, "steps": [{"name": "ask", "type": "human_approval"}, *CHILD["steps"]]})
    run = engine.start(parent())
    assert poll_until(lambda: [c.status for c in engine.store.children(run.id)] == ["PAUSED"], 10)
    child = child_of(engine, run)
    assert run.status == "RUNNING"

    child.approve(reason="fine")

    assert run.wait(timeout=10) == "COMPLETED"
    assert log[-1] == "do c1-t+p3"


@pytest.mark.parametrize(
    ("kind", "child_ends", "parent_ends"),
    [("cancel", "CANCELLED", "CANCELLED"), ("rollback", "ROLLED_BACK", "ROLLED_BACK")],
)
def test_stopping_a_parent_stops_its_running_child(
    engine: airt_nb.Engine, log: list[str], kind: str, child_ends: str, parent_ends: str
) -> None:
    write(Path("child.yaml"), {**CHILD, "steps": [*CHILD["steps"], {"name": "ask", "type": "human_approval"}]})
    run = engine.start(parent())
    assert poll_until(lambda: [c.status for c in engine.store.children(run.id)] == ["PAUSED"], 10)
    child = child_of(engine, run)

    getattr(engine, kind)(run.id)

    assert run.wait(timeout=10, until="done") == parent_ends
    assert child.wait(timeout=10, until="done") == child_ends
    if kind == "rollback":
        assert log[-3:] == ["undo c2", "undo c1-t", "undo p1"]  # the running child first, then the parent


def test_child_specs_are_checked_before_anything_runs(engine: airt_nb.Engine, log: list[str], tmp_path: Path) -> None:
    missing = parent()
    missing["steps"][1]["uses"] = "nope.yaml"
    with pytest.raises(SpecError, match=r"steps\[1\].uses: cannot read the child workflow .*nope.yaml"):
        engine.start(missing)
    unknown = parent()
    unknown["steps"][1]["inputs"] = {"colour": "red"}
    with pytest.raises(SpecError, match=r"steps\[1\].inputs.colour: .*child.yaml declares no input 'colour'"):
        engine.start(unknown)
    write(tmp_path / "a.yaml", {"name": "a", "steps": [{"name": "b", "type": "workflow", "uses": "b.yaml"}]})
    write(tmp_path / "b.yaml", {"name": "b", "steps": [{"name": "a", "type": "workflow", "uses": "a.yaml"}]})
    with pytest.raises(SpecError, match="uses itself"):
        engine.start({"name": "top", "steps": [{"name": "go", "type": "workflow", "uses": "a.yaml"}]})
    write(tmp_path / "bad.yaml", {"name": "bad", "steps": [{"name": "x", "action": "nope"}]})
    with pytest.raises(SpecError, match=r"bad.yaml: line 1, steps\[0\].action: unknown action 'nope'"):
        engine.start({"name": "top", "steps": [{"name": "go", "type": "workflow", "uses": "bad.yaml"}]})
    assert engine.workflows() == []


def test_a_child_spec_broken_after_the_start_fails_the_step(engine: airt_nb.Engine, log: list[str]) -> None:
    spec = parent()
    spec["steps"].insert(1, {"name": "gate", "type": "human_approval"})
    spec["steps"][2]["depends_on"] = ["gate"]
    run = engine.start(spec)
    assert run.wait(timeout=10) == "PAUSED"
    Path("child.yaml").write_text("name: child\nsteps: [")

    run.approve()

    assert run.wait(timeout=10, until="done") == "FAILED"
    assert "step 'sub' failed: invalid workflow spec: uses: " in (run.error or "")
    assert "child.yaml: line 2" in (run.error or "")
    assert log == ["do p1", "undo p1"]


def test_the_parent_panel_nests_its_child(engine: airt_nb.Engine, log: list[str]) -> None:
    from airt_nb.widgets.run_panel import RunPanel

    run = engine.start(parent())
    assert run.wait(timeout=10) == "COMPLETED"
    child = child_of(engine, run)
    panel = RunPanel(run)
    panel.refresh()

    assert list(panel.child_panels) == [child.id]
    nested = panel.child_panels[child.id]
    nested.refresh()
    assert f"child of {run.id} (step sub)" in nested.header_html.value
    assert f"child <code>{child.id}</code>" in "".join(r.value for r in panel.rows)
    panel.stop_live()
    nested.stop_live()


def test_the_dashboard_marks_children_and_nests_them_in_the_detail(engine: airt_nb.Engine, log: list[str]) -> None:
    from airt_nb.widgets.dashboard import DashboardPanel

    run = engine.start(parent())
    assert run.wait(timeout=10) == "COMPLETED"
    child = child_of(engine, run)
    board = DashboardPanel(engine)
    board.refresh()

    lines = {r.children[0].description: r.children[1].value for r in board.rows if r.layout.display != "none"}
    assert f"↳ child of {run.id[:8]}" in lines[child.id]
    detail = board.show_detail(run.id)
    detail.refresh()
    assert list(detail.child_panels) == [child.id]
    board.close()
