"""SIGKILL a process running workflows at precise and at random moments; a new process finishes.

On SQLite and on PostgreSQL.

Every test counts side effects (lines a step appends to a file opened with
O_APPEND) and asserts the promise of crash recovery: a completed step never
runs again, the step in flight at the kill runs at most twice (with the same
idempotency key), outputs recorded before the crash feed the later steps, the
final status is right, compensations recorded DONE never run twice, and no
two live processes ever run the same workflow at once.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crashlib
import pytest
from crashlib import (
    Child,
    chain_spec,
    config,
    db_rows,
    effects_by_step,
    overlaps,
    read_effects,
    release_together,
    step_rows,
    wait_for_db,
    workflow_statuses,
)

from airt_nb import Engine
from airt_nb.ownership import MACHINE, parse_owner
from airt_nb.timeutil import to_epoch
from tests.conftest import IN_CI, require_tool

STEPS = [f"s{i}" for i in range(1, 6)]

# On PostgreSQL every child acts as an engine on a machine of its own (crashlib sets
# AIRT_MACHINE_ID): only leases and the engines' session locks protect their workflows.
pytestmark = pytest.mark.both_backends


@pytest.fixture
def files(db: str, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    yield (Path(db) if "://" not in db else db), tmp_path / "effects.jsonl"
    crashlib.kill_leftovers()  # a failed test never leaves a blocked child behind


def only_workflow(db: Path) -> str:
    ids = list(workflow_statuses(db))
    assert len(ids) == 1, ids
    return ids[0]


def assert_chain_consistent(db: Path, wf: str, effects: list[dict]) -> None:
    """Each step's recorded token is its last side effect's, and every run of a step saw the recorded token before it."""
    rows = step_rows(db, wf)
    does = effects_by_step(effects)
    for i, name in enumerate(STEPS):
        if rows[name]["status"] != "COMPLETED":
            continue
        runs = does[(wf, name)]
        assert rows[name]["outputs"]["token"] == runs[-1]["token"], name
        if i:
            before = rows[STEPS[i - 1]]["outputs"]["token"]
            assert [r["prev"] for r in runs] == [before] * len(runs), f"{name} did not get {STEPS[i - 1]}'s output"


# -- at every step boundary -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("at", ["before", "after", "checkpoint"])
def test_kill_at_a_step_boundary_then_a_new_process_finishes_without_repeating_work(tmp_path, files, at, step):
    kill_at_boundary_and_finish(tmp_path, files, at, step)


@pytest.mark.parametrize("at", ["after", "checkpoint"])
def test_kill_with_durability_full_keeps_the_same_guarantees(tmp_path, files, at):
    kill_at_boundary_and_finish(tmp_path, files, at, "s3", durability="full")


def kill_at_boundary_and_finish(tmp_path: Path, files: tuple[Path, Path], at: str, step: str, **kw) -> None:
    db, effects = files
    start = [{"spec": chain_spec()}]
    first = Child(tmp_path, config(db, effects, start=start, stop={"at": at, "step": step}, **kw))
    first.expect(f"stopped {at} {step}")
    wf = only_workflow(db)
    recorded = step_rows(db, wf)[step]["status"]
    # The checkpoint is visible to another process exactly when the step is reported done.  (A step
    # running on its own may show PENDING: its start is implied by the previous step's checkpoint.)
    assert (recorded == "COMPLETED") == (at == "checkpoint"), recorded
    first.kill()

    second = Child(tmp_path, config(db, effects, **kw))
    opened = json.loads(second.expect("opened").split(" ", 1)[1])
    second.finish()

    finished_before_kill = at == "checkpoint" and step == "s5"
    assert opened["resumed"] == ([] if finished_before_kill else [wf])
    assert workflow_statuses(db) == {wf: "COMPLETED"}
    log = read_effects(effects)
    does = effects_by_step(log)
    expected = {s: 2 if (at == "after" and s == step) else 1 for s in STEPS}
    assert {s: len(does[(wf, s)]) for s in STEPS} == expected
    # A step re-run after a crash keeps its idempotency key.
    assert all(len({d["key"] for d in does[(wf, s)]}) == 1 for s in STEPS)
    assert all(r["attempt"] == 1 for r in step_rows(db, wf).values())
    # Who did what: everything up to the kill point in the first process, the rest in the second.
    k = STEPS.index(step)
    done_first = STEPS[: k + (0 if at == "before" else 1)]
    assert [s for s in STEPS if does[(wf, s)][0]["pid"] == first.pid] == done_first
    run_by_second = [s for s in STEPS if s not in done_first] + ([step] if at == "after" else [])
    assert all(does[(wf, s)][-1]["pid"] == second.pid for s in run_by_second)
    assert_chain_consistent(db, wf, log)
    assert overlaps(log) == []


# -- during a retry back-off ---------------------------------------------------------------------------


def test_kill_during_retry_backoff_resumes_the_retry_at_its_stored_time(tmp_path, files):
    db, effects = files
    retry = {"max_attempts": 3, "backoff": "fixed", "initial_delay": 1.0, "jitter": False}
    spec = chain_spec(s3={"retry": retry, "inputs": {"fail_first": 1}})
    first = Child(tmp_path, config(db, effects, start=[{"spec": spec}], stop={"at": "retrying", "step": "s3"}))
    first.expect("stopped retrying s3")
    wf = only_workflow(db)
    (due_text,) = db_rows(
        db,
        "SELECT next_attempt_at FROM workflow_steps WHERE workflow_id = ? AND step_name = 's3' AND status = 'RETRYING'",
        (wf,),
    )[0]
    first.kill()

    second = Child(tmp_path, config(db, effects))
    second.finish()
    assert workflow_statuses(db) == {wf: "COMPLETED"}
    log = read_effects(effects)
    does = effects_by_step(log)
    assert {s: len(does[(wf, s)]) for s in STEPS} == {"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}
    first_try, second_try = does[(wf, "s3")]
    assert (first_try["attempt"], first_try["pid"]) == (1, first.pid)
    assert (second_try["attempt"], second_try["pid"]) == (2, second.pid)
    assert second_try["key"] == f"{wf}/s3/2"
    # Not forgotten, and not run early: the second attempt waited for the deadline stored before the kill.
    assert second_try["t"] >= to_epoch(due_text)
    assert step_rows(db, wf)["s3"]["attempt"] == 2
    assert db_rows(db, "SELECT attempt, status FROM step_attempts WHERE workflow_id = ?", (wf,)) == [(1, "FAILED")]
    assert_chain_consistent(db, wf, log)


# -- while paused ---------------------------------------------------------------------------------------


def approval_spec() -> dict:
    spec = chain_spec("with-approval")
    spec["steps"][2] = {"name": "s3", "type": "human_approval", "message": "go on after ${{ steps.s2.outputs.token }}?"}
    spec["steps"][3]["inputs"]["prev"] = "${{ steps.s2.outputs.token }}"
    return spec


def test_kill_while_paused_keeps_the_approval_and_a_new_process_continues_after_it(tmp_path, files):
    db, effects = files
    first = Child(tmp_path, config(db, effects, start=[{"spec": approval_spec()}], stop={"at": "paused"}))
    first.expect("stopped paused")
    wf = only_workflow(db)
    first.kill()
    # A paused workflow holds no lease, and its approval is in the database, not in the dead process.
    assert db_rows(db, "SELECT status, lease_owner FROM workflows") == [("PAUSED", None)]
    assert db_rows(db, "SELECT step_name, status FROM approvals") == [("s3", "PENDING")]

    second = Child(tmp_path, config(db, effects, approve=True))
    opened = json.loads(second.expect("opened").split(" ", 1)[1])
    second.finish()
    assert opened["restored"] == [wf]
    assert workflow_statuses(db) == {wf: "COMPLETED"}
    does = effects_by_step(read_effects(effects))
    assert {s: [d["pid"] for d in does[(wf, s)]] for s in ("s1", "s2", "s4", "s5")} == {
        "s1": [first.pid],
        "s2": [first.pid],
        "s4": [second.pid],
        "s5": [second.pid],
    }
    assert db_rows(db, "SELECT status, decided_by FROM approvals") == [("APPROVED", "crash")]
    rows = step_rows(db, wf)
    assert does[(wf, "s4")][0]["prev"] == rows["s2"]["outputs"]["token"]


# -- in the middle of a rollback ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "step"), [("undo_before", "s4"), ("undo_after", "s3"), ("undo_before", "s2"), ("undo_after", "s1")]
)
def test_kill_during_rollback_continues_it_and_never_repeats_a_done_compensation(tmp_path, files, at, step):
    db, effects = files
    spec = chain_spec("failing", s5={"inputs": {"fail_always": True}})
    first = Child(tmp_path, config(db, effects, start=[{"spec": spec}], stop={"at": at, "step": step}))
    first.expect(f"stopped {at} {step}")
    wf = only_workflow(db)
    assert workflow_statuses(db) == {wf: "ROLLING_BACK"}
    first.kill()

    second = Child(tmp_path, config(db, effects))
    opened = json.loads(second.expect("opened").split(" ", 1)[1])
    second.finish()
    assert opened["resumed"] == [wf], (opened, second.stderr())
    assert workflow_statuses(db) == {wf: "FAILED"}
    (error,) = db_rows(db, "SELECT error FROM workflows")[0]
    assert error.startswith("step 's5' failed: RuntimeError: s5 fails on attempt 1")
    log = read_effects(effects)
    assert Counter(e["step"] for e in log if e["ev"] == "do") == {s: 1 for s in STEPS}
    undos = [(e["step"], e["pid"]) for e in log if e["ev"] == "undo"]
    # Newest first, each exactly once, except the one in flight at the kill (twice when its effect happened).
    order = ["s4", "s3", "s2", "s1"]
    k = order.index(step)
    expected = [(s, first.pid) for s in order[:k]]
    if at == "undo_after":
        expected.append((step, first.pid))
    expected += [(s, second.pid) for s in order[k:]]
    assert undos == expected
    # Each undo saw the outputs its step recorded.
    tokens = {e["step"]: e["token"] for e in log if e["ev"] == "do"}
    assert all(e["token"] == tokens[e["step"]] for e in log if e["ev"] == "undo")
    comp = db_rows(db, "SELECT step_name, status FROM compensation_log ORDER BY compensation_id")
    assert comp == [("s1", "DONE"), ("s2", "DONE"), ("s3", "DONE"), ("s4", "DONE")]
    statuses = {s: r["status"] for s, r in step_rows(db, wf).items()}
    assert statuses == {
        "s1": "COMPENSATED",
        "s2": "COMPENSATED",
        "s3": "COMPENSATED",
        "s4": "COMPENSATED",
        "s5": "FAILED",
    }


# -- several engines at once after a crash ------------------------------------------------------------


@pytest.mark.parametrize("engines", [2, 3])
def test_engines_opening_a_crashed_database_at_once_never_run_one_workflow_twice(tmp_path, files, engines):
    db, effects = files
    count = 12
    start = [{"spec": chain_spec(f"wf{i}", s4={"inputs": {"hold": 0.02}})} for i in range(count)]
    first = Child(tmp_path, config(db, effects, start=start, stop={"at": "before", "step": "s3"}))
    for _ in range(count):
        first.expect("stopped before s3")
    first.kill()
    ids = set(workflow_statuses(db))

    children = [Child(tmp_path, config(db, effects, barrier=True), name=f"engine{i}") for i in range(engines)]
    release_together(children)  # all take up work at the same moment
    summaries = [json.loads(child.expect("opened").split(" ", 1)[1]) for child in children]
    for child in children:
        child.finish()

    assert workflow_statuses(db) == dict.fromkeys(ids, "COMPLETED")
    resumed = [set(s["resumed"]) for s in summaries]
    assert set().union(*resumed) == ids
    assert sum(len(r) for r in resumed) == count  # each claimed by exactly one engine
    log = read_effects(effects)
    does = effects_by_step(log)
    assert all(len(does[(wf, s)]) == 1 for wf in ids for s in STEPS)
    assert overlaps(log) == []
    pids = {child.pid for child in children}
    for wf in ids:
        after_crash = {does[(wf, s)][0]["pid"] for s in ("s3", "s4", "s5")}
        assert len(after_crash) == 1
        assert after_crash <= pids
        assert next(w for w, r in zip(children, resumed, strict=True) if wf in r).pid in after_crash
    print("workflows per engine:", [len(r) for r in resumed])


def test_three_engines_recovering_a_crashed_database_share_its_work_fairly(tmp_path, files):
    """3,000 workflows left by a killed engine: three engines (three notebooks or workers) opening the
    database at once each take about a third, and no workflow runs twice."""
    db, effects = files
    count, engines = 3000, 3
    start = [{"spec": chain_spec(f"wf{i}", steps=1)} for i in range(count)]
    first = Child(tmp_path, config(db, effects, start=start, stop={"at": "before", "step": "*"}, session="crashed"))
    started = 0
    while started < count:  # the first workflows stop in their step meanwhile: that is the crash we want
        started += first.next_message(timeout=120).startswith("started")
    first.kill()
    assert set(workflow_statuses(db).values()) == {"RUNNING"}

    children = [
        Child(tmp_path, config(db, effects, barrier=True, session=f"worker{i}", home_grace=0), name=f"engine{i}")
        for i in range(engines)
    ]
    release_together(children)
    summaries = [json.loads(child.expect("opened", timeout=120).split(" ", 1)[1]) for child in children]
    for child in children:
        child.finish(timeout=120)
    assert set(workflow_statuses(db).values()) == {"COMPLETED"}
    does = effects_by_step(read_effects(effects))
    pids = [child.pid for child in children]
    ran_after = [d["pid"] for runs in does.values() for d in runs if d["pid"] in pids]
    assert len(ran_after) == count  # no workflow's step ran twice after the crash
    taken = [ran_after.count(pid) for pid in pids]
    print("workflows per engine:", taken, "at open:", [len(s["resumed"]) for s in summaries])
    # A share each, about a third (engines open a little apart, so not exactly): never one engine doing
    # almost everything while another gets a handful.
    assert min(taken) >= count // 10, taken
    assert max(taken) <= count * 6 // 10, taken
    assert sum(len(s["resumed"]) for s in summaries) <= count


def test_an_engine_in_another_pid_namespace_is_not_taken_for_dead_while_it_runs(tmp_path, files):
    """Same host name, another process table (a container with the host's network, a sidecar): its
    pid means nothing here, so only its lease decides; a live one is left alone, a killed one is
    taken over once its lease runs out."""
    unshare = require_tool("unshare", "the pid-namespace ownership test")
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root so that unshare --pid works; run .ci/run as root")
        pytest.skip("unshare --pid needs root")
    db, effects = files
    spec = chain_spec("namespaced")
    inside = Child(
        tmp_path,
        config(db, effects, start=[{"spec": spec}], stop={"at": "before", "step": "s3"}, lease_ttl=1.0),
        wrap=[unshare, "--pid", "--fork", "--kill-child"],
    )
    inside.expect("stopped before s3")
    wf = only_workflow(db)
    [(owner,)] = db_rows(db, "SELECT lease_owner FROM workflows")
    info = parse_owner(owner)
    assert info is not None
    assert info.machine != MACHINE
    assert info.pid < 10  # a pid of its own namespace, which means nothing (or someone else) here
    with Engine(db, registry=crashlib.registry(effects), lease_ttl=1.0, poll_interval=0.1, home_grace=0) as here:
        time.sleep(3.5)  # three lease periods and many sweeps: the live engine keeps renewing
        assert db_rows(db, "SELECT lease_owner FROM workflows") == [(owner,)]
        assert not here.is_local(wf)
        inside.kill()
        assert here.get(wf).wait(timeout=30) == "COMPLETED"  # once its lease ran out
    does = effects_by_step(read_effects(effects))
    assert {s: len(does[(wf, s)]) for s in STEPS} == {"s1": 1, "s2": 1, "s3": 1, "s4": 1, "s5": 1}
    assert does[(wf, "s3")][0]["pid"] == os.getpid()


# -- killed at random moments ------------------------------------------------------------------------


def random_spec(rng: random.Random, kind: str, n: int) -> dict:
    hold = {"inputs": {"hold": round(rng.uniform(0, 0.03), 3)}}
    a = {"name": "a", "action": "effect", "inputs": dict(hold["inputs"])}
    if kind in ("approval", "reject"):
        return {
            "name": f"{kind}-{n}",
            "steps": [
                a,
                {"name": "d", "action": "effect", "inputs": {"prev": "${{ steps.a.outputs.token }}"}},
                {"name": "gate", "type": "human_approval", "message": "ok?"},
                {"name": "b", "action": "effect", "inputs": {"prev": "${{ steps.a.outputs.token }}"}},
            ],
        }
    prev = {"prev": "${{ steps.a.outputs.token }}"}
    retry = {"max_attempts": 3, "backoff": "fixed", "initial_delay": 0.05, "jitter": False}
    steps = [
        a,
        {
            "name": "b",
            "action": "effect",
            "inputs": {**prev, "hold": round(rng.uniform(0, 0.03), 3)},
            "depends_on": ["a"],
        },
        {"name": "c", "action": "effect", "inputs": {**prev, "fail_first": 1}, "depends_on": ["a"], "retry": retry},
        {"name": "d", "action": "effect", "inputs": {**prev, **hold["inputs"]}, "depends_on": ["a"]},
        {
            "name": "e",
            "action": "effect",
            "inputs": {"prev": "${{ steps.b.outputs.token }}"},
            "depends_on": ["b", "c", "d"],
        },
    ]
    if kind == "failing":
        steps.append({"name": "f", "action": "effect", "inputs": {"fail_always": True}, "depends_on": ["e"]})
    return {"name": f"{kind}-{n}", "max_parallel": 3, "steps": steps}


FINAL = {"dag": "COMPLETED", "approval": "COMPLETED", "failing": "FAILED", "reject": "ROLLED_BACK"}
PREV_OF = {"b": "a", "c": "a", "d": "a", "e": "b"}


def check_invariants(db: Path, log: list[dict], killed: set[int]) -> None:
    problems = overlaps(log)
    workflows = db_rows(db, "SELECT workflow_id, name, status FROM workflows")
    for wf, name, status in workflows:
        kind = name.split("-")[0]
        if status != FINAL[kind]:
            problems.append(f"{wf} ({name}) ended {status}, expected {FINAL[kind]}")
        rows = step_rows(db, wf)
        for step, row in rows.items():
            runs = [e for e in log if e["ev"] == "do" and e["wf"] == wf and e["step"] == step]
            by_key: dict[str, list[dict]] = {}
            for r in runs:
                by_key.setdefault(r["key"], []).append(r)
            for key, same in by_key.items():
                pids = [r["pid"] for r in same]
                if len(set(pids)) != len(pids):
                    problems.append(f"{key} ran twice in one process {pids}")
                if any(p not in killed for p in pids[:-1]):
                    problems.append(f"{key} ran again although process {pids[:-1]} was not killed")
            recorded = row["outputs"] if row["status"] in ("COMPLETED", "COMPENSATED") else None
            if recorded is not None and runs and recorded.get("token") != runs[-1]["token"]:
                problems.append(f"{wf}/{step}: recorded output is not the last run's")
            if step in PREV_OF and rows[PREV_OF[step]]["outputs"]:
                want = rows[PREV_OF[step]]["outputs"]["token"]
                if any(r["prev"] != want for r in runs):
                    problems.append(f"{wf}/{step} ran with an input that is not {PREV_OF[step]}'s recorded output")
            if row["status"] == "COMPLETED" and not runs and step != "gate":
                problems.append(f"{wf}/{step} COMPLETED without running")
        undos = [e for e in log if e["ev"] == "undo" and e["wf"] == wf]
        order = [u["step"] for i, u in enumerate(undos) if i == 0 or undos[i - 1]["step"] != u["step"]]
        comp = db_rows(
            db,
            "SELECT step_name, status FROM compensation_log WHERE workflow_id = ? ORDER BY compensation_id DESC",
            (wf,),
        )
        if kind in ("failing", "reject"):
            if order != [c[0] for c in comp]:
                problems.append(f"{wf}: undone in order {order}, compensation log says {[c[0] for c in comp]}")
            if any(c[1] != "DONE" for c in comp):
                problems.append(f"{wf}: compensations not all DONE: {comp}")
            for step in {u["step"] for u in undos}:
                pids = [u["pid"] for u in undos if u["step"] == step]
                if any(p not in killed for p in pids[:-1]):
                    problems.append(f"{wf}/{step} undone again although {pids[:-1]} was not killed")
        elif undos:
            problems.append(f"{wf} ({name}) was rolled back")
    assert problems == []


def test_random_kills_never_lose_or_repeat_completed_work(tmp_path, files, backend):
    seed = int(os.environ.get("AIRT_CRASH_SEED") or random.randrange(2**32))
    print(f"AIRT_CRASH_SEED={seed}")
    rng = random.Random(seed)
    db, effects = files
    killed: set[int] = set()
    rounds = 60 if backend == "sqlite" else 30  # the second backend shares the suite's time budget
    n = 0
    for round_no in range(rounds):
        start = []
        if round_no < rounds * 2 // 3:
            for _ in range(rng.choice([0, 1, 1, 2])):
                n += 1
                kind = rng.choice(["dag", "dag", "failing", "approval", "reject"])
                start.append({"spec": random_spec(rng, kind, n)})
        child = Child(tmp_path, config(db, effects, start=start, approve=True), name=f"round{round_no}")
        # Now and then a second engine runs alongside, and is killed at another moment.
        other = (
            Child(tmp_path, config(db, effects, approve=True), name=f"other{round_no}") if rng.random() < 0.25 else None
        )
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.05, 0.3))  # possibly while it imports, opens or recovers
        else:
            child.expect("opened")
            time.sleep(rng.uniform(0, 0.25))
        child.kill()
        killed.add(child.pid)
        if other is not None:
            time.sleep(rng.uniform(0, 0.1))
            other.kill()
            killed.add(other.pid)
    final = Child(tmp_path, config(db, effects, approve=True), name="final")
    final.finish()
    log = read_effects(effects)
    assert n >= rounds // 3
    assert len(killed) >= rounds
    print(
        f"{n} workflows, {sum(e['ev'] == 'do' for e in log)} side effects, "
        f"{sum(e['ev'] == 'undo' for e in log)} undos over {len(killed)} kills"
    )
    try:
        check_invariants(db, log, killed)
    except AssertionError as exc:
        raise AssertionError(f"replay with AIRT_CRASH_SEED={seed}: {exc}") from None


def test_kill_during_rollback_while_a_sibling_step_was_in_flight_reruns_it_and_undoes_it(tmp_path, files):
    db, effects = files
    spec = {
        "name": "sibling",
        "steps": [
            {"name": "a", "action": "effect"},
            {"name": "b", "action": "effect", "depends_on": ["a"]},
            {"name": "c", "action": "effect", "depends_on": ["a"], "inputs": {"fail_always": True, "after": "b"}},
        ],
    }
    first = Child(tmp_path, config(db, effects, start=[{"spec": spec}], stop={"at": "after", "step": "b"}))
    first.expect("stopped after b")
    wait_for_db(db, "SELECT 1 FROM workflows WHERE status = 'ROLLING_BACK'")  # c failed; the rollback waits for b
    wf = only_workflow(db)
    first.kill()

    second = Child(tmp_path, config(db, effects))
    second.finish()
    assert workflow_statuses(db) == {wf: "FAILED"}
    log = read_effects(effects)
    does = effects_by_step(log)
    # b's side effect may have happened before the kill: it runs again (same key) so that it can be undone.
    assert [(d["pid"], d["key"]) for d in does[(wf, "b")]] == [(first.pid, f"{wf}/b/1"), (second.pid, f"{wf}/b/1")]
    assert [(e["step"], e["pid"]) for e in log if e["ev"] == "undo"] == [("b", second.pid), ("a", second.pid)]
    statuses = {s: r["status"] for s, r in step_rows(db, wf).items()}
    assert statuses == {"a": "COMPENSATED", "b": "COMPENSATED", "c": "FAILED"}


@pytest.mark.parametrize("request_", ["rollback", "cancel"])
def test_a_rollback_or_cancel_asked_for_just_before_a_kill_is_not_forgotten(tmp_path, files, request_):
    db, effects = files
    stop = {"at": "after", "step": "s3", "request": request_}
    first = Child(tmp_path, config(db, effects, start=[{"spec": chain_spec()}], stop=stop))
    first.expect("stopped after s3")  # asked while s3 runs: it must finish (or be re-run) first
    wf = only_workflow(db)
    first.kill()

    second = Child(tmp_path, config(db, effects))
    second.finish()
    log = read_effects(effects)
    does = effects_by_step(log)
    assert not does[(wf, "s4")]
    assert not does[(wf, "s5")]
    undone = [e["step"] for e in log if e["ev"] == "undo"]
    statuses = {s: r["status"] for s, r in step_rows(db, wf).items()}
    if request_ == "rollback":
        assert workflow_statuses(db) == {wf: "ROLLED_BACK"}
        assert undone == ["s3", "s2", "s1"]  # s3 ran again so that its completion records what to undo
        assert [d["key"] for d in does[(wf, "s3")]] == [f"{wf}/s3/1", f"{wf}/s3/1"]
        assert statuses == {
            "s1": "COMPENSATED",
            "s2": "COMPENSATED",
            "s3": "COMPENSATED",
            "s4": "SKIPPED",
            "s5": "SKIPPED",
        }
    else:
        assert workflow_statuses(db) == {wf: "CANCELLED"}
        assert undone == []
        assert statuses == {
            "s1": "COMPLETED",
            "s2": "COMPLETED",
            "s3": "CANCELLED",
            "s4": "CANCELLED",
            "s5": "CANCELLED",
        }
