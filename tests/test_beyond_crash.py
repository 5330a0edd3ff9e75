"""SIGKILL a process whose workflow waits for an event or runs a child workflow; a new process finishes.

Real child processes (``tests/crashlib.py``) killed at precise moments; the
tests count each step's side effects: a completed step never runs again, the
step in flight runs at most twice with the same idempotency key, and the
parent and its child both end as they would have without the crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import crashlib
import pytest
from crashlib import Child, config, db_rows, effects_by_step, read_effects, step_rows, workflow_statuses

import airt_nb
from airt_nb import Registry

pytestmark = pytest.mark.slow


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    yield tmp_path / "airt.db", tmp_path / "effects.jsonl"
    crashlib.kill_leftovers()


def test_an_event_sent_while_the_process_is_dead_is_received_by_the_next_one(tmp_path, files):
    db, effects = files
    spec = {
        "name": "waits",
        "steps": [
            {"name": "s1", "action": "effect", "inputs": {}},
            {"name": "ci", "type": "wait_event", "event": "ci.done"},
            {"name": "s3", "action": "effect", "inputs": {"prev": "${{ steps.s1.outputs.token }}"}},
        ],
    }
    first = Child(tmp_path, config(db, effects, start=[{"spec": spec}], stop={"at": "paused"}))
    first.expect("stopped paused")
    (wf,) = workflow_statuses(db)
    first.kill()

    # A terminal sends the event while no engine runs: it is recorded with the step's completion.
    cli = airt_nb.Engine(db, registry=Registry(), recover=False, user="ci")
    cli.send(wf, "ci.done", {"build": 7})
    cli.close()
    assert db_rows(db, "SELECT status, lease_owner FROM workflows") == [("RUNNING", None)]

    second = Child(tmp_path, config(db, effects))
    second.finish()
    assert workflow_statuses(db) == {wf: "COMPLETED"}
    does = effects_by_step(read_effects(effects))
    assert [d["pid"] for d in does[(wf, "s1")]] == [first.pid]
    assert [d["pid"] for d in does[(wf, "s3")]] == [second.pid]
    assert step_rows(db, wf)["ci"]["outputs"] == {"build": 7}


def write_child(tmp_path: Path, *, fail: bool = False) -> None:
    child = {
        "name": "inner",
        "steps": [
            {"name": "c1", "action": "effect", "inputs": {}},
            {
                "name": "c2",
                "action": "effect",
                "inputs": {"prev": "${{ steps.c1.outputs.token }}", "fail_always": fail},
            },
        ],
    }
    (tmp_path / "inner.yaml").write_text(json.dumps(child))  # JSON is YAML


PARENT = {
    "name": "outer",
    "steps": [
        {"name": "p1", "action": "effect", "inputs": {}},
        {"name": "sub", "type": "workflow", "uses": "inner.yaml"},
        {"name": "p3", "action": "effect", "inputs": {"prev": "${{ steps.sub.outputs.c2.token }}"}},
    ],
}


@pytest.mark.parametrize("at", ["after", "checkpoint"])
def test_a_crash_inside_a_child_is_recovered_for_the_child_and_its_parent(tmp_path, files, at):
    db, effects = files
    write_child(tmp_path)
    first = Child(tmp_path, config(db, effects, start=[{"spec": PARENT}], stop={"at": at, "step": "c2"}))
    first.expect(f"stopped {at} c2")
    first.kill()
    at_kill = {r[0]: r[1:] for r in db_rows(db, "SELECT name, status, workflow_id FROM workflows")}
    if at == "after":
        assert (at_kill["inner"][0], at_kill["outer"][0]) == ("RUNNING", "RUNNING")
    else:  # the child's last checkpoint settled it and completed the parent's step, in one transaction
        assert (at_kill["inner"][0], at_kill["outer"][0]) == ("COMPLETED", "RUNNING")
        assert step_rows(db, at_kill["outer"][1])["sub"]["status"] == "COMPLETED"

    second = Child(tmp_path, config(db, effects))
    second.finish()

    rows = db_rows(db, "SELECT workflow_id, name, status, parent_id FROM workflows")
    outer = next(r for r in rows if r[1] == "outer")
    inner = next(r for r in rows if r[1] == "inner")
    assert outer[2] == inner[2] == "COMPLETED"
    assert inner[3] == outer[0]
    does = effects_by_step(read_effects(effects))
    assert len(does[(outer[0], "p1")]) == 1
    assert len(does[(inner[0], "c1")]) == 1
    runs_of_c2 = does[(inner[0], "c2")]
    assert len(runs_of_c2) == (2 if at == "after" else 1)  # in flight at the kill: run again
    assert len({d["key"] for d in runs_of_c2}) == 1  # with the same idempotency key
    p3 = does[(outer[0], "p3")]
    if at == "after":
        assert [d["pid"] for d in p3] == [second.pid]
    else:  # the parent went on at once: p3 may have begun (even completed) before the kill
        assert 1 <= len(p3) <= 2
        assert len({d["key"] for d in p3}) == 1
    parent_rows = step_rows(db, outer[0])
    assert parent_rows["p3"]["inputs"]["prev"] == step_rows(db, inner[0])["c2"]["outputs"]["token"]
    assert parent_rows["sub"]["outputs"]["c2"] == step_rows(db, inner[0])["c2"]["outputs"]


@pytest.mark.parametrize(("at", "step"), [("after", "p1"), ("before", "p3"), ("checkpoint", "p3")])
def test_a_crash_in_the_parent_starts_its_child_once_and_finishes_both(tmp_path, files, at, step):
    db, effects = files
    write_child(tmp_path)
    first = Child(tmp_path, config(db, effects, start=[{"spec": PARENT}], stop={"at": at, "step": step}))
    first.expect(f"stopped {at} {step}")
    first.kill()

    second = Child(tmp_path, config(db, effects))
    second.finish()

    rows = db_rows(db, "SELECT workflow_id, name, status FROM workflows ORDER BY name")
    assert [(r[1], r[2]) for r in rows] == [("inner", "COMPLETED"), ("outer", "COMPLETED")]  # one child only
    outer, inner = rows[1][0], rows[0][0]
    does = effects_by_step(read_effects(effects))
    assert len(does[(outer, "p1")]) == (2 if at == "after" else 1)
    assert len(does[(inner, "c1")]) == len(does[(inner, "c2")]) == 1
    assert len(does[(outer, "p3")]) == 1  # killed before its side effect, or after its checkpoint


def test_a_crash_while_a_failing_child_rolls_back_finishes_both_rollbacks(tmp_path, files):
    db, effects = files
    write_child(tmp_path, fail=True)
    first = Child(tmp_path, config(db, effects, start=[{"spec": PARENT}], stop={"at": "undo_after", "step": "c1"}))
    first.expect("stopped undo_after c1")
    first.kill()

    second = Child(tmp_path, config(db, effects))
    second.finish()

    rows = {r[1]: r for r in db_rows(db, "SELECT workflow_id, name, status FROM workflows")}
    assert rows["inner"][2] == "FAILED"
    assert rows["outer"][2] == "FAILED"
    undos = [(e["wf"], e["step"]) for e in read_effects(effects) if e["ev"] == "undo"]
    # The child undid its c1 (once: recorded DONE before the kill, or redone after it), then the parent its p1.
    assert undos[-1] == (rows["outer"][0], "p1")
    assert undos.count((rows["inner"][0], "c1")) in (1, 2)
    assert undos.count((rows["outer"][0], "p1")) == 1
