"""Behaviour that keeps airt_nb fast at scale (the speed itself is measured in benchmarks/).

One commit per step, specs stored once, filters that use an index, and long
chains of steps validated without quadratic work.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

import airt_nb
from airt_nb import Registry, SpecError, load_spec
from airt_nb.store.sqlite import SQLiteStore


def _chain(n: int, name: str = "chain") -> dict:
    return {"name": name, "steps": [{"name": f"s{i}", "action": "noop"} for i in range(n)]}


@pytest.fixture
def noop_registry(registry: Registry) -> Registry:
    @registry.action("noop")
    def noop() -> dict:
        return {"ok": True}

    return registry


def _count_commits(store: SQLiteStore) -> list[int]:
    batches: list[int] = []
    group = store._gc
    original = group._run_batch

    def counting(batch):  # type: ignore[no-untyped-def]
        batches.append(len(batch))
        return original(batch)

    group._run_batch = counting  # type: ignore[method-assign]
    return batches


def test_each_step_of_a_sequential_run_is_one_commit(db_path: Path, noop_registry: Registry) -> None:
    with airt_nb.Engine(db_path, registry=noop_registry) as eng:
        batches = _count_commits(eng.store)
        run = eng.start(_chain(5))
        assert run.wait(timeout=10) == "COMPLETED"
        # the start (with step 1 recorded RUNNING), then one per step (its completion, which implies the
        # next step's start; the last one also settles the workflow)
        assert batches == [1] * (1 + 5)
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT status, attempt FROM workflow_steps ORDER BY position").fetchall()
    assert rows == [("COMPLETED", 1)] * 5
    assert conn.execute("SELECT done_steps, status FROM workflows").fetchone() == (5, "COMPLETED")


def test_a_spec_is_stored_once_for_all_its_runs(db_path: Path, noop_registry: Registry) -> None:
    with airt_nb.Engine(db_path, registry=noop_registry) as eng:
        runs = [eng.start(_chain(3)) for _ in range(4)]
        for run in runs:
            assert run.wait(timeout=10) == "COMPLETED"
        other = eng.start(_chain(2, name="other"))
        assert other.wait(timeout=10) == "COMPLETED"
        record = eng.store.workflow(runs[0].id)
        assert record is not None
        assert json.loads(record.spec)["name"] == "chain"
        assert [s["name"] for s in json.loads(record.spec)["steps"]] == ["s0", "s1", "s2"]
        assert json.loads(eng.store.workflow(other.id).spec)["name"] == "other"  # type: ignore[union-attr]
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM workflow_specs").fetchone()[0] == 2
    assert conn.execute("SELECT COUNT(*) FROM workflows WHERE spec <> ''").fetchone()[0] == 0


def test_rows_that_keep_their_spec_inline_still_resume(db_path: Path, noop_registry: Registry) -> None:
    # A workflow written before specs had their own table: the spec is in the row itself.
    with airt_nb.Engine(db_path, registry=noop_registry) as eng:
        run = eng.start(_chain(2))
        assert run.wait(timeout=10) == "COMPLETED"
        spec_json = eng.store.workflow(run.id).spec  # type: ignore[union-attr]
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("DELETE FROM workflow_specs")
        conn.execute(
            "UPDATE workflows SET spec = ?, status = 'RUNNING', finished_at = NULL, lease_owner = NULL, "
            "done_steps = 1 WHERE workflow_id = ?",
            (spec_json, run.id),
        )
        conn.execute("UPDATE workflow_steps SET status = 'PENDING', attempt = 0 WHERE step_name = 's1'")
    conn.close()
    with airt_nb.Engine(db_path, registry=noop_registry) as eng:
        assert eng.get(run.id).wait(timeout=10) == "COMPLETED"


@pytest.mark.parametrize(
    ("table", "status"),
    [("workflow_steps", None), ("workflow_steps", "COMPLETED"), ("workflows", None), ("approvals", None)],
)
def test_filtering_by_workflow_uses_an_index(db_path: Path, table: str, status: str | None) -> None:
    store = SQLiteStore(db_path)
    plans: list[str] = []
    conn = store._read()
    original = conn.execute

    class Spy:
        def execute(self, sql, params=()):  # type: ignore[no-untyped-def]
            plans.extend(r[-1] for r in original("EXPLAIN QUERY PLAN " + sql, params).fetchall())
            return original(sql, params)

    reader = store._local.reader
    reader.conn = Spy()
    try:
        store.all_rows(table, workflow_id="abc", status=status)
    finally:
        reader.conn = conn
        store.close()
    assert plans
    assert not any(p.startswith("SCAN") for p in plans), plans


def test_filtered_frames_rows_match_the_filter(db_path: Path, noop_registry: Registry) -> None:
    with airt_nb.Engine(db_path, registry=noop_registry) as eng:
        first = eng.start(_chain(3))
        second = eng.start(_chain(2))
        first.wait(timeout=10)
        second.wait(timeout=10)
        _, rows = eng.store.all_rows("workflow_steps", workflow_id=second.id)
        assert [(r[0], r[1]) for r in rows] == [(second.id, "s0"), (second.id, "s1")]
        _, rows = eng.store.all_rows("workflow_steps", status="COMPLETED")
        assert len(rows) == 5
        _, rows = eng.store.all_rows("workflows")
        assert {r[0] for r in rows} == {first.id, second.id}
        assert eng.store.approvals(workflow_id=first.id) == []


def test_a_long_chain_validates_and_still_refuses_bad_references(noop_registry: Registry) -> None:
    @noop_registry.action("takes")
    def takes(value: int = 0) -> dict:
        return {"value": value}

    steps = [{"name": f"s{i}", "action": "noop"} for i in range(5000)]
    steps.append({"name": "last", "action": "takes", "inputs": {"value": "${{ steps.s0.outputs.ok }}"}})
    spec = load_spec({"name": "long", "steps": steps}, registry=noop_registry)
    assert len(spec.steps) == 5001

    bad = {
        "name": "bad",
        "steps": [
            {"name": "a", "action": "noop"},
            {"name": "b", "action": "takes", "inputs": {"value": "${{ steps.c.outputs.value }}"}},
            {"name": "c", "action": "takes", "depends_on": []},
            {"name": "d", "action": "takes", "depends_on": ["a"], "inputs": {"value": "${{ steps.c.outputs.value }}"}},
        ],
    }
    with pytest.raises(SpecError) as info:
        load_spec(bad, registry=noop_registry)
    text = str(info.value)
    assert "${{ steps.c.outputs.value }}: step 'c' comes later; add it to depends_on of 'b'" in text
    assert "${{ steps.c.outputs.value }}: step 'c' is not one of its dependencies; add it to depends_on of 'd'" in text


def test_builtin_actions_build_their_input_model_on_first_use() -> None:
    registry = Registry()
    write = registry.get("file.write")
    assert write is not None
    assert write._built is None  # nothing built by Registry() itself: import and start-up stay quick
    with pytest.raises(airt_nb.ActionError, match="bad inputs"):
        write.validate({"path": "x.txt", "content": "hi", "append": "maybe"})
    assert write._built is not None
    assert write.validate({"path": "x.txt", "content": "hi"})["content"] == "hi"


def test_user_actions_build_their_input_model_when_defined(registry: Registry) -> None:
    @registry.action("typed")
    def typed(count: int) -> dict:
        return {"count": count}

    assert typed._built is not None


def test_an_engines_own_checkpoints_never_wake_it_and_another_engines_decision_does(
    db_path: Path, noop_registry: Registry
) -> None:
    with airt_nb.Engine(db_path, registry=noop_registry) as eng:
        woken: list[float] = []
        original = eng._on_signal

        def counting() -> None:
            woken.append(time.monotonic())
            original()

        eng._store._listener = None  # listen again, through the counter
        eng._store._stop_listening.set()
        time.sleep(0.2)
        eng._store._stop_listening.clear()
        eng._store.listen(eng.owner_id, counting)
        run = eng.start(_chain(300))
        assert run.wait(timeout=30) == "COMPLETED"
        time.sleep(0.2)  # a few polls of the listener after the last commit
        assert woken == []
        paused = eng.start({"name": "ask", "steps": [{"name": "ok", "type": "human_approval"}]})
        assert paused.wait(timeout=10) == "PAUSED"
        with airt_nb.Engine(db_path, registry=noop_registry, recover=False, user="ann") as other:
            other.approve(paused.id)
        assert paused.wait(timeout=10) == "COMPLETED"
        assert len(woken) >= 1


def _audit_row() -> dict:
    return {
        "at": "2025-01-01T00:00:00.000000+00:00",
        "user": "u",
        "roles": "[]",
        "event": "test",
        "decision": "allow",
        "rule": None,
        "workflow_id": None,
        "step_name": None,
        "action": None,
        "target": None,
        "detail": None,
    }


def test_an_engine_carries_on_after_another_engine_decides(db_path: Path, noop_registry: Registry) -> None:
    spec = {
        "name": "review",
        "steps": [
            {"name": "before", "action": "noop"},
            {"name": "review", "type": "human_approval", "message": "go?"},
            {"name": "after", "action": "noop"},
        ],
    }
    with airt_nb.Engine(db_path, registry=noop_registry) as runner:
        run = runner.start(spec)
        assert run.wait(timeout=10) == "PAUSED"
        # The deciding engine does not know "noop": it records the decision and leaves the rest.
        with airt_nb.Engine(db_path, registry=Registry(builtins=False), recover=False) as decider:
            decider.approve(run.id, by="ann")
        assert run.wait(timeout=10) == "COMPLETED"
        assert [s.status for s in run.steps()] == ["COMPLETED"] * 3
