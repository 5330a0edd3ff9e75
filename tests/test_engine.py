"""The engine end to end on a real SQLite file and a real PostgreSQL database: pauses, decisions,
failures, compensation order, retries, parallel DAGs and bad actions."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest
from conftest import poll_until
from shared_specs import SEED_SPEC

import airt_nb
from airt_nb import ActionError, Engine, Registry, SpecError, StepContext, WaitTimeoutError, WorkflowStateError

pytestmark = pytest.mark.both_backends

SEED = SEED_SPEC


def test_seed_scenario_pause_reopen_approve(db: str, registry: Registry, tmp_path: Path) -> None:
    target = tmp_path / "out"
    eng = Engine(db, registry=registry)
    run = eng.start(SEED, inputs={"target": str(target)})
    assert run.wait(timeout=10) == "PAUSED"
    assert (target / "a.txt").read_text() == "hello"
    assert run.pending_approval is not None
    assert run.pending_approval.message == f"Publish B next to {target}/a.txt?"
    eng.close()

    eng = Engine(db, registry=registry)
    try:
        again = eng.get(run.id)
        assert again.status == "PAUSED"
        assert eng.last_recovery is not None
        assert eng.last_recovery.restored == [run.id]
        assert (target / "a.txt").exists()
        assert not (target / "b.txt").exists()
        again.approve(by="ann", reason="looks good")
        assert again.wait(timeout=10) == "COMPLETED"
        assert (target / "b.txt").read_text() == "5"
        assert again.outputs["write_b"] == {"path": str(target / "b.txt"), "bytes": 1}
        approval = again.approvals()[0]
        assert (approval.status, approval.decided_by, approval.reason) == ("APPROVED", "ann", "looks good")
    finally:
        eng.close()


def test_seed_scenario_reject_rolls_back_file_a(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "out"
    run = engine.start(SEED, inputs={"target": str(target)})
    assert run.wait(timeout=10) == "PAUSED"
    run.reject(by="ann", reason="not now")
    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert not (target / "a.txt").exists()
    assert not target.exists(), "the folder file.write created is removed too"
    statuses = {s.step_name: s.status for s in run.steps()}
    assert statuses == {"write_a": "COMPENSATED", "review": "REJECTED", "write_b": "SKIPPED"}
    assert [(c.step_name, c.status) for c in run.compensations()] == [("write_a", "DONE")]
    assert run.error == "rejected by ann at step 'review': not now"


def test_file_write_rollback_restores_previous_content(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("original")
    run = engine.start(SEED, inputs={"target": str(target)})
    assert run.wait(timeout=10) == "PAUSED"
    assert (target / "a.txt").read_text() == "hello"
    run.reject(by="ann")
    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert (target / "a.txt").read_text() == "original"


def _recording_registry(journal: list[str], *, fail_at: str | None = None, undo_fails: int = 0) -> Registry:
    reg = Registry()
    undo_failures = {"left": undo_fails}

    @reg.action("rec")
    def rec(tag: str) -> dict:
        journal.append(f"do {tag}")
        if tag == fail_at:
            raise ValueError(f"{tag} exploded")
        return {"tag": tag}

    @rec.compensate
    def _(inputs: dict, outputs: dict) -> None:
        if outputs["tag"] == "s1" and undo_failures["left"] > 0:
            undo_failures["left"] -= 1
            raise OSError("undo of s1 failed")
        journal.append(f"undo {outputs['tag']}")

    return reg


FIVE = {"name": "five", "steps": [{"name": f"s{i}", "action": "rec", "inputs": {"tag": f"s{i}"}} for i in range(1, 6)]}


def test_failure_in_step_3_compensates_2_then_1(db: str) -> None:
    journal: list[str] = []
    with Engine(db, registry=_recording_registry(journal, fail_at="s3")) as eng:
        run = eng.start(FIVE)
        assert run.wait(timeout=10) == "FAILED"
        assert journal == ["do s1", "do s2", "do s3", "undo s2", "undo s1"]
        assert run.error == "step 's3' failed: ValueError: s3 exploded"
        comps = airt_nb.compensations(eng, run.id)
        assert list(comps["step_name"]) == ["s1", "s2"]
        assert list(comps["status"]) == ["DONE", "DONE"]
        assert comps.sort_values("executed_at")["step_name"].tolist() == ["s2", "s1"]
        statuses = {s.step_name: s.status for s in run.steps()}
        assert statuses == {"s1": "COMPENSATED", "s2": "COMPENSATED", "s3": "FAILED", "s4": "SKIPPED", "s5": "SKIPPED"}


def test_compensation_failing_twice_leaves_workflow_failed_with_the_reason(db: str) -> None:
    journal: list[str] = []
    with Engine(db, registry=_recording_registry(journal, fail_at="s3", undo_fails=2)) as eng:
        run = eng.start(FIVE)
        assert run.wait(timeout=10) == "FAILED"
        assert journal == ["do s1", "do s2", "do s3", "undo s2"]
        assert run.error == (
            "step 's3' failed: ValueError: s3 exploded; compensation failed for s1 (rec): OSError: undo of s1 failed "
            "(fix the cause, then roll back again)"
        )
        comp = {c.step_name: (c.status, c.attempts, c.error) for c in run.compensations()}
        assert comp == {"s1": ("FAILED", 2, "OSError: undo of s1 failed"), "s2": ("DONE", 1, None)}
        # the cause is fixed (the undo no longer fails): rolling back again finishes the job
        assert run.rollback() == "ROLLING_BACK"
        assert run.wait(timeout=10) == "FAILED", "the workflow failed; its rollback is now complete"
        assert run.error == "step 's3' failed: ValueError: s3 exploded"
        assert journal[-1] == "undo s1"
        assert {c.step_name: c.status for c in run.compensations()} == {"s1": "DONE", "s2": "DONE"}


def test_a_step_that_fails_twice_then_succeeds_records_three_attempts_with_growing_delays(
    engine: Engine, registry: Registry
) -> None:
    calls: list[float] = []

    @registry.action("flaky")
    def flaky() -> dict:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)} failed")
        return {"tries": len(calls)}

    spec = {
        "name": "retry",
        "steps": [{"name": "f", "action": "flaky", "retry": {"max_attempts": 3, "initial_delay": 0.1}}],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10) == "COMPLETED"
    step = run.steps()[0]
    assert (step.status, step.attempt) == ("COMPLETED", 3)
    attempts = airt_nb.attempts(engine, run.id)
    assert attempts["attempt"].tolist() == [1, 2]
    assert attempts["error"].tolist() == ["ConnectionError: try 1 failed", "ConnectionError: try 2 failed"]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.08
    assert gaps[1] > gaps[0], f"back-off must grow: {gaps}"


def test_retries_exhausted_fail_the_workflow_with_the_attempt_count(engine: Engine, registry: Registry) -> None:
    @registry.action("always_fails")
    def always_fails() -> None:
        raise RuntimeError("nope")

    spec = {
        "name": "r",
        "steps": [{"name": "f", "action": "always_fails", "retry": {"max_attempts": 2, "initial_delay": 0.01}}],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10) == "FAILED"
    assert run.error == "step 'f' failed after 2 attempts: RuntimeError: nope"
    # The step's own error stays the exception's text: the attempt count is a column of its own.
    step = run.steps()[0]
    assert (step.error, step.attempt) == ("RuntimeError: nope", 2)
    assert "Traceback" in (step.traceback or "")
    assert "nope" in (step.traceback or "")


def test_parallel_steps_overlap_respect_max_parallel_and_the_join_waits(engine: Engine, registry: Registry) -> None:
    spans: dict[str, tuple[float, float]] = {}
    running = {"now": 0, "max": 0}
    lock = threading.Lock()

    @registry.action("slow")
    def slow(tag: str) -> dict:
        start = time.monotonic()
        with lock:
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(0.2)
        with lock:
            running["now"] -= 1
        spans[tag] = (start, time.monotonic())
        return {"tag": tag}

    spec = {
        "name": "dag",
        "max_parallel": 2,
        "steps": [
            {"name": "a", "action": "slow", "inputs": {"tag": "a"}},
            {"name": "b", "action": "slow", "inputs": {"tag": "b"}, "depends_on": []},
            {"name": "c", "action": "slow", "inputs": {"tag": "c"}, "depends_on": []},
            {"name": "join", "action": "slow", "inputs": {"tag": "join"}, "depends_on": ["a", "b", "c"]},
        ],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10) == "COMPLETED"
    assert running["max"] == 2
    steps = airt_nb.steps(engine, run.id).set_index("step_name")
    a, b = steps.loc["a"], steps.loc["b"]
    assert a["started_at"] < b["finished_at"], "a and b overlap"
    assert b["started_at"] < a["finished_at"], "a and b overlap"
    assert steps.loc["join", "started_at"] >= steps.loc[["a", "b", "c"], "finished_at"].max()
    assert spans["join"][0] >= max(spans[t][1] for t in "abc")


def test_outputs_that_are_not_json_fail_the_step_clearly(engine: Engine, registry: Registry) -> None:
    @registry.action("returns_a_set")
    def returns_a_set() -> object:
        return {"ids": {1, 2}}

    run = engine.start({"name": "bad-out", "steps": [{"name": "s", "action": "returns_a_set"}]})
    assert run.wait(timeout=10) == "FAILED"
    assert run.error == (
        "step 's' failed: action 'returns_a_set' returned outputs that are not JSON (Object of type set is not "
        "JSON serializable); return a dict, list, str, number, bool or None"
    )
    step = run.steps()[0]
    assert step.outputs is None
    assert run.compensations() == []


def test_an_action_that_raises_fails_the_step_with_its_error(engine: Engine, registry: Registry) -> None:
    @registry.action("boom")
    def boom(x: int) -> None:
        raise KeyError(x)

    run = engine.start({"name": "boom", "steps": [{"name": "s", "action": "boom", "inputs": {"x": 7}}]})
    assert run.wait(timeout=10) == "FAILED"
    assert run.error == "step 's' failed: KeyError: 7"
    assert airt_nb.steps(engine, run.id)["inputs"].tolist() == [{"x": 7}]


@pytest.mark.parametrize("broken", ["raises", "not text"])
def test_an_exception_whose_text_cannot_be_read_still_fails_its_step_once(
    engine: Engine, registry: Registry, broken: str
) -> None:
    calls = []

    class Unprintable(Exception):
        def __str__(self) -> str:
            if broken == "raises":
                raise RuntimeError("no text")
            return 42  # type: ignore[return-value]

    @registry.action("unprintable")
    def unprintable() -> None:
        calls.append(1)
        raise Unprintable()

    run = engine.start({"name": "unprintable", "steps": [{"name": "s", "action": "unprintable"}]})
    assert run.wait(timeout=10) == "FAILED"
    assert run.error == "step 's' failed: Unprintable: <its text could not be read: its __str__ failed>"
    assert calls == [1]  # never run again as if the engine had stopped half-way


def test_a_step_that_keeps_breaking_the_engine_fails_instead_of_running_again_forever(
    engine: Engine, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection into our own code: whatever breaks after an action ran, the engine continues from
    the last checkpoint, so the action runs again; the third time the step fails and is rolled back."""
    calls = []

    @registry.action("effect")
    def effect() -> dict:
        calls.append(time.monotonic())
        return {"n": len(calls)}

    def broken(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(airt_nb.execution.Execution, "_complete", broken)
    run = engine.start({"name": "breaks", "steps": [{"name": "s", "action": "effect"}]})
    assert run.wait(timeout=30) == "FAILED"
    assert len(calls) == airt_nb.execution.MAX_BREAKS == 3
    assert run.error is not None
    assert "airt_nb failed 3 times while running this step (RuntimeError: injected fault)" in run.error
    (step,) = run.steps()
    assert step.status == "FAILED"
    time.sleep(1.5)  # no further attempt after the failure
    assert len(calls) == 3


def test_a_workflow_input_that_does_not_fit_its_action_is_refused_at_start(engine: Engine, registry: Registry) -> None:
    @registry.action("needs_int")
    def needs_int(n: int) -> None:
        raise AssertionError("never runs")

    spec = {
        "name": "types",
        "inputs": {"n": 3},
        "steps": [{"name": "s", "action": "needs_int", "inputs": {"n": "${{ inputs.n }}"}}],
    }
    with pytest.raises(SpecError) as info:
        engine.start(spec, inputs={"n": "three"})
    assert info.value.field == "steps[0].inputs.n"
    assert "Input should be a valid integer" in str(info.value)
    assert "(from inputs.n = 'three'); start it with a value that fits action 'needs_int'" in str(info.value)
    assert engine.list() == []


def test_input_of_the_wrong_type_at_run_time_fails_before_the_action_runs(engine: Engine, registry: Registry) -> None:
    ran = []

    @registry.action("say_three")
    def say_three() -> dict:
        return {"n": "three"}

    @registry.action("needs_int")
    def needs_int(n: int) -> None:
        ran.append(n)

    spec = {
        "name": "types",
        "steps": [
            {"name": "a", "action": "say_three"},
            {"name": "s", "action": "needs_int", "inputs": {"n": "${{ steps.a.outputs.n }}"}},
        ],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10) == "FAILED"
    assert ran == []
    assert run.error.startswith("step 's' failed: action 'needs_int': bad inputs: n: Input should be a valid integer")


def test_unknown_action_at_start_writes_nothing(engine: Engine) -> None:
    with pytest.raises(SpecError, match=r"line 4, steps\[0\]\.action: unknown action 'ghost'"):
        engine.start("name: g\nsteps:\n  - name: s\n    action: ghost\n")
    assert engine.list() == []


def test_unknown_input_at_start_is_refused(engine: Engine) -> None:
    with pytest.raises(SpecError) as info:
        engine.start(SEED, inputs={"taget": "x"})
    assert str(info.value) == (
        "workflow 'publish-report': invalid workflow spec: inputs.taget: the workflow declares no input "
        "'taget' (declared: target)"
    )
    assert engine.list() == []


def test_expression_keeps_json_type_and_formats_inside_text(engine: Engine, registry: Registry) -> None:
    seen = []

    @registry.action("emit")
    def emit() -> dict:
        return {"items": [1, 2], "n": 3}

    @registry.action("show")
    def show(value: object, text: str) -> None:
        seen.append((value, text))

    spec = {
        "name": "expr",
        "steps": [
            {"name": "e", "action": "emit"},
            {
                "name": "s",
                "action": "show",
                "inputs": {
                    "value": "${{ steps.e.outputs.items }}",
                    "text": "n=${{ steps.e.outputs.n }} of ${{ workflow.name }}",
                },
            },
        ],
    }
    assert engine.start(spec).wait(timeout=10) == "COMPLETED"
    assert seen == [([1, 2], "n=3 of expr")]


def test_step_context_gives_the_idempotency_key_and_durable_state(engine: Engine, registry: Registry) -> None:
    keys = []

    @registry.action("keyed")
    def keyed(ctx: StepContext) -> dict:
        keys.append(ctx.idempotency_key)
        ctx.save("token", "abc")
        return {"saved": ctx.saved("token")}

    run = engine.start({"name": "keys", "steps": [{"name": "k", "action": "keyed"}]})
    assert run.wait(timeout=10) == "COMPLETED"
    assert keys == [f"{run.id}/k/1"]
    assert json.loads(run.steps()[0].state) == {"token": "abc"}


def test_wait_times_out_with_a_clear_error(engine: Engine, registry: Registry) -> None:
    gate = threading.Event()

    @registry.action("blocked")
    def blocked() -> None:
        gate.wait(10)

    run = engine.start({"name": "slow", "steps": [{"name": "s", "action": "blocked"}]})
    with pytest.raises(WaitTimeoutError, match=f"workflow {run.id} is still RUNNING after 0.2 s"):
        run.wait(timeout=0.2)
    gate.set()
    assert run.wait(timeout=10) == "COMPLETED"


def test_cancel_stops_before_the_next_step_and_undoes_nothing(engine: Engine, registry: Registry) -> None:
    gate = threading.Event()
    done = []

    @registry.action("step")
    def step(tag: str) -> dict:
        if tag == "a":
            gate.wait(10)
        done.append(tag)
        return {"tag": tag}

    spec = {"name": "c", "steps": [{"name": t, "action": "step", "inputs": {"tag": t}} for t in "abc"]}
    run = engine.start(spec)
    run.cancel(by="ann")
    gate.set()
    assert run.wait(timeout=10) == "CANCELLED"
    assert done == ["a"]
    assert {s.step_name: s.status for s in run.steps()} == {"a": "COMPLETED", "b": "CANCELLED", "c": "CANCELLED"}


def test_rollback_of_a_completed_workflow_undoes_every_step(engine: Engine, tmp_path: Path) -> None:
    spec = {
        "name": "two-files",
        "steps": [
            {"name": "one", "action": "file.write", "inputs": {"path": str(tmp_path / "1.txt"), "content": "1"}},
            {"name": "two", "action": "file.write", "inputs": {"path": str(tmp_path / "2.txt"), "content": "2"}},
        ],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10) == "COMPLETED"
    run.rollback()
    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert not (tmp_path / "1.txt").exists()
    assert not (tmp_path / "2.txt").exists()
    with pytest.raises(WorkflowStateError, match="is ROLLED_BACK: it cannot be rolled back"):
        run.rollback()


def test_reopened_engine_sees_every_workflow_as_left(db: str, registry: Registry, tmp_path: Path) -> None:
    with Engine(db, registry=registry) as eng:
        done = eng.start({"name": "w", "steps": [{"name": "s", "action": "wait", "inputs": {"seconds": 0}}]})
        assert done.wait(timeout=10) == "COMPLETED"
        paused = eng.start(SEED, inputs={"target": str(tmp_path)})
        assert paused.wait(timeout=10) == "PAUSED"
    with Engine(db, registry=registry) as eng:
        statuses = {r.workflow_id: r.status for r in eng.list()}
        assert statuses == {done.id: "COMPLETED", paused.id: "PAUSED"}
        assert eng.get(done.id[:6]).id == done.id, "a unique id prefix is enough"


def test_engine_refuses_to_start_after_close(db: str) -> None:
    eng = Engine(db)
    eng.close()
    with pytest.raises(WorkflowStateError, match="is closed"):
        eng.start({"name": "w", "steps": [{"name": "s", "action": "wait", "inputs": {"seconds": 0}}]})


def test_action_validates_its_inputs_when_called_directly_too() -> None:
    reg = Registry()

    @reg.action
    def typed(n: int) -> int:
        return n * 2

    assert typed(2) == 4
    assert reg.get("typed") is typed
    with pytest.raises(ActionError, match="action 'typed': bad inputs: n: Input should be a valid integer"):
        typed.validate({"n": "x"})


def test_durability_full_sets_synchronous_full(tmp_path: Path) -> None:
    with Engine(tmp_path / "full.db", durability="full") as eng:
        conn = eng.store._conn
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Engine(tmp_path / "normal.db") as eng:
        assert eng.store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_a_long_workflow_writes_each_steps_record_on_its_own_row(engine: Engine, registry: Registry) -> None:
    # Its step rows are inserted a hundred at a time; each step's checkpoint must still land on its own.
    @registry.action
    def echo(i: int) -> dict:
        return {"i": i}

    steps = [{"name": f"s{i}", "action": "echo", "inputs": {"i": i}} for i in range(250)]
    short = engine.start({"name": "short", "steps": steps[:3]})  # the long run's rows do not start at id 1
    assert short.wait(timeout=60) == "COMPLETED"
    run = engine.start({"name": "long", "steps": steps})
    assert run.wait(timeout=120) == "COMPLETED"
    records = run.steps()
    assert [(r.step_name, r.status, r.attempt) for r in records] == [(f"s{i}", "COMPLETED", 1) for i in range(250)]
    assert run.outputs == {f"s{i}": {"i": i} for i in range(250)}
    assert [json.loads(r.inputs or "{}") for r in records] == [{"i": i} for i in range(250)]
    assert len({r.step_id for r in records}) == 250


def test_a_new_runs_step_rows_are_written_in_order_with_its_first_starts(db: str) -> None:
    # 250 rows: three statements on SQLite, a started row in each (the first, one in the middle, the last).
    names = [f"s{i}" for i in range(250)]
    started = {"s0": "2026-01-01T00:00:00.000000Z", "s120": "2026-01-01T00:00:01.000000Z", "s249": "x"}
    now = "2026-01-01T00:00:00.000000Z"

    def op(tx):
        tx.insert_workflow(
            {"workflow_id": "w1", "name": "w", "status": "RUNNING", "spec": "{}", "spec_hash": "h", "inputs": "{}",
             "created_at": now, "updated_at": now, "started_by": "sam", "total_steps": 250, "lease_owner": None,
             "workdir": "/tmp", "session": "s"}
        )  # fmt: skip
        return tx.insert_steps("w1", [(n, i, "action", "noop") for i, n in enumerate(names)], started)

    with Engine(db) as eng:
        ids = eng.store.write(op)
        rows = eng.store.query(
            "SELECT step_id, step_name, position, type, action, status, attempt, started_at FROM workflow_steps "
            "WHERE workflow_id = 'w1' ORDER BY position"
        )
    assert [r[0] for r in rows] == ids
    assert ids == sorted(ids)
    assert [r[1:5] for r in rows] == [(n, i, "action", "noop") for i, n in enumerate(names)]
    assert {r[1]: r[5:] for r in rows if r[5] != "PENDING"} == {n: ("RUNNING", 1, at) for n, at in started.items()}
    assert {r[5:] for r in rows if r[1] not in started} == {("PENDING", 0, None)}


def test_a_deadline_due_as_the_engine_closes_is_left_for_the_next_engine_quietly(
    db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # `airt list` opens an engine, which arms the deadlines it finds, and closes it within a second: a
    # deadline due then ran into the closed engine half-way and printed a traceback.
    import airt_nb.housekeeping as housekeeping

    caplog.set_level("DEBUG", logger="airt_nb")
    spec = "name: due\nsteps:\n  - name: ok\n    type: human_approval\n    timeout: 0.3\n"
    with Engine(db) as first:
        run = first.start(spec)
        assert run.wait(timeout=10) == "PAUSED"
    time.sleep(0.4)  # due now, and nobody ran its timer
    closing_engines: list[Engine] = []
    real_expire = housekeeping.expire

    def closes_first(host, approval_id):  # close() begins between the check and the decision
        assert poll_until(lambda: closing_engines, 5)  # the timer may fire before Engine() returns
        closing_engines[0]._closing = True
        return real_expire(host, approval_id)

    monkeypatch.setattr(housekeeping, "expire", closes_first)
    second = Engine(db)
    closing_engines.append(second)
    try:
        assert poll_until(lambda: any("timer fired while the engine closed" in r.message for r in caplog.records), 5)
    finally:
        second.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.message for r in caplog.records]
    with Engine(db) as third:  # the next engine applies the deadline
        assert third.wait(run.id, timeout=10, until="done") == "ROLLED_BACK"
