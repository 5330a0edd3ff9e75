"""Recovery when an engine opens a database a crashed process left behind (SQLite and PostgreSQL).

A child process (tests/crashlib.py) runs a workflow and is SIGKILLed at a
precise point; then an engine in this process opens the same file and the
tests look at what it resumes, what waits, what it warns about and which
deadlines it honours.  Side effects are counted in an O_APPEND file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crashlib
import pytest
from conftest import IN_CI, require_tool
from crashlib import Child, chain_spec, config, db_rows, effects_by_step, read_effects, workflow_statuses

import airt_nb
from airt_nb import Engine, WaitTimeoutError
from airt_nb.ownership import describe_owner
from airt_nb.store.migrations import LATEST
from airt_nb.timeutil import to_epoch

STEPS = [f"s{i}" for i in range(1, 6)]

# On PostgreSQL the children act as engines on other machines (crashlib): a dead one is found
# by its released session lock, never by its pid.
pytestmark = pytest.mark.both_backends
sqlite_only = pytest.mark.sqlite_only


@pytest.fixture
def files(db: str, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    yield (Path(db) if "://" not in db else db), tmp_path / "effects.jsonl"
    crashlib.kill_leftovers()  # a failed test never leaves a blocked child behind


def crash(
    tmp_path: Path, db: Path, effects: Path, spec: dict, at: str, step: str | None = None, **kw
) -> tuple[str, int]:
    """Start ``spec`` in a child, SIGKILL it at the stop point; return (workflow_id, pid of the dead child)."""
    child = Child(tmp_path, config(db, effects, start=[{"spec": spec}], stop={"at": at, "step": step}, **kw))
    child.expect(f"stopped {at}")
    child.kill()
    (wf,) = workflow_statuses(db)
    return wf, child.pid


def do_counts(effects: Path, wf: str) -> dict[str, int]:
    does = effects_by_step(read_effects(effects))
    return {s: len(does[(wf, s)]) for s in STEPS}


# -- 1. recovery on open -------------------------------------------------------------------------------


def test_engine_opened_after_a_crash_resumes_at_once_and_reports_it(tmp_path, files, caplog):
    db, effects = files
    wf, dead_pid = crash(tmp_path, db, effects, chain_spec(), "after", "s3", lease_ttl=3600)
    (owner,) = db_rows(db, "SELECT lease_owner FROM workflows")[0]
    assert owner.split("|")[1] == str(dead_pid)
    caplog.set_level("INFO", logger="airt_nb")
    # The dead process's lease runs for an hour; the engine must not wait for it.
    with Engine(db, registry=crashlib.registry(effects), lease_ttl=3600) as eng:
        # What an operator reads in a worker's log: who took what over, and what runs again.
        assert any(
            f"workflow {wf} (" in r.message
            and f"taken over from {describe_owner(owner)}, which is gone" in r.message
            and "s3 may have been in flight: it runs again with the same idempotency key" in r.message
            for r in caplog.records
        ), [r.message for r in caplog.records]
        assert eng.last_recovery is not None
        assert eng.last_recovery.resumed == [wf]
        assert str(eng.last_recovery) == "1 resumed, 0 waiting for approval"
        run = eng.get(wf)
        assert run.wait(timeout=30) == "COMPLETED"
        assert do_counts(effects, wf) == {"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}
        assert run.outputs["s5"]["token"] == effects_by_step(read_effects(effects))[(wf, "s5")][0]["token"]
    assert db_rows(db, "SELECT lease_owner FROM workflows") == [(None,)]


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_recover_false_leaves_a_crashed_workflow_alone_until_recover_is_called(tmp_path, files, monkeypatch, how):
    db, effects = files
    wf, dead_pid = crash(tmp_path, db, effects, chain_spec(), "before", "s2")
    if how == "environment":
        monkeypatch.setenv("AIRT_RECOVER", "0")
        eng = Engine(db, registry=crashlib.registry(effects))
    else:
        eng = Engine(db, registry=crashlib.registry(effects), recover=False)
    try:
        assert eng.last_recovery is None
        eng._recovery.sweep()  # one housekeeping pass: it must not take the dead process's workflow either
        assert not eng.is_local(wf)
        (owner,) = db_rows(db, "SELECT lease_owner FROM workflows")[0]
        assert owner.split("|")[1] == str(dead_pid)
        summary = eng.recover()
        assert summary.resumed == [wf]
        assert eng.get(wf).wait(timeout=30) == "COMPLETED"
    finally:
        eng.close()
    assert do_counts(effects, wf) == dict.fromkeys(STEPS, 1)


def test_recover_by_hand_restores_a_paused_workflow_that_this_engine_can_then_continue(tmp_path, files):
    db, effects = files
    spec = chain_spec("with-approval")
    spec["steps"][2] = {"name": "s3", "type": "human_approval"}
    spec["steps"][3]["inputs"]["prev"] = "${{ steps.s2.outputs.token }}"
    wf, _ = crash(tmp_path, db, effects, spec, "paused")
    with Engine(db, registry=crashlib.registry(effects), recover=False) as eng:
        assert eng.recover().restored == [wf]
        eng.approve(wf, by="ann")
        assert eng.get(wf).wait(timeout=30) == "COMPLETED"
    assert do_counts(effects, wf) == {"s1": 1, "s2": 1, "s3": 0, "s4": 1, "s5": 1}


# -- 2. ownership -------------------------------------------------------------------------------------------


def test_close_releases_leases_and_a_paused_workflow_holds_none(files):
    db, effects = files
    spec = {
        "name": "mixed",
        "steps": [{"name": "a", "action": "effect"}, {"name": "ok", "type": "human_approval"}],
    }
    eng = Engine(db, registry=crashlib.registry(effects))
    paused = eng.start(spec)
    assert paused.wait(timeout=10) == "PAUSED"
    retrying = eng.start(chain_spec(s1={"retry": {"initial_delay": 60, "jitter": False}, "inputs": {"fail_first": 1}}))
    crashlib.wait_for_db(
        db, "SELECT 1 FROM workflow_steps WHERE workflow_id = ? AND status = 'RETRYING'", (retrying.id,)
    )
    rows = dict(db_rows(db, "SELECT workflow_id, lease_owner FROM workflows"))
    assert rows[paused.id] is None
    assert rows[retrying.id] == eng.owner_id
    eng.close()
    assert db_rows(db, "SELECT status, lease_owner FROM workflows ORDER BY status") == [
        ("PAUSED", None),
        ("RUNNING", None),
    ]


def test_two_engines_that_both_saw_a_workflow_free_cannot_both_claim_it(tmp_path, files):
    db, effects = files
    wf, dead_pid = crash(tmp_path, db, effects, chain_spec(), "before", "s2")
    one = Engine(db, registry=crashlib.registry(effects), recover=False)
    two = Engine(db, registry=crashlib.registry(effects), recover=False)
    try:
        now = one.store.now()
        dead = sorted(one._recovery.gone_engines(now)[2])
        assert dead == sorted(two._recovery.gone_engines(now)[2])
        assert [o.split("|")[1] for o in dead] == [str(dead_pid)]

        def claim(eng: Engine) -> list[str]:
            return eng.store.write(lambda tx: tx.claim(eng.owner_id, [wf], dead, now))

        # Both looked at the database and found the dead process's workflow; the claim is the fence.
        assert claim(one) == [wf]
        assert claim(two) == []
        one._adopt(wf)
        assert one.get(wf).wait(timeout=30) == "COMPLETED"
        assert not two.is_local(wf)
    finally:
        two.close()
        one.close()
    assert do_counts(effects, wf) == dict.fromkeys(STEPS, 1)


@sqlite_only
def test_engine_durability_sets_how_sqlite_syncs_commits(files):
    db, _ = files
    with Engine(db) as eng:
        assert eng.store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with Engine(db, durability="full") as eng:
        assert eng.store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync every commit


def test_a_frozen_owner_is_taken_over_after_its_lease_expires_and_then_fenced_out(tmp_path, files):
    db, effects = files
    first = Child(
        tmp_path, config(db, effects, start=[{"spec": chain_spec()}], stop={"at": "after", "step": "s3"}, lease_ttl=2.0)
    )
    first.expect("stopped after s3")
    (wf,) = workflow_statuses(db)
    os.kill(first.pid, signal.SIGSTOP)  # alive (not taken over at once) but no longer renewing its lease
    try:
        with Engine(db, registry=crashlib.registry(effects), lease_ttl=1.0) as eng:
            assert eng.last_recovery.resumed == []
            assert eng.last_recovery.skipped == {wf: f"running in {os.uname().nodename} pid {first.pid}"}
            assert eng.get(wf).wait(timeout=30) == "COMPLETED"
    finally:
        os.kill(first.pid, signal.SIGCONT)
    # The old owner wakes up, finishes its step and tries to record it: the lease fence refuses.
    os.kill(first.pid, signal.SIGUSR1)
    first.finish()
    does = effects_by_step(read_effects(effects))
    assert [d["pid"] for d in does[(wf, "s3")]] == [first.pid, os.getpid()]
    assert [d["pid"] for d in does[(wf, "s4")]] == [os.getpid()]
    ends = [e for e in read_effects(effects) if e["ev"] == "end" and e["step"] == "s3"]
    assert [e["pid"] for e in ends] == [os.getpid(), first.pid]
    rows = crashlib.step_rows(db, wf)
    assert rows["s3"]["outputs"]["token"] == does[(wf, "s3")][1]["token"]
    assert workflow_statuses(db) == {wf: "COMPLETED"}


# -- 3. deferred actions ------------------------------------------------------------------------------------


def test_workflow_waits_visibly_for_an_action_not_yet_defined_and_resumes_when_it_is(tmp_path, files):
    db, effects = files
    wf, _ = crash(tmp_path, db, effects, chain_spec(), "before", "s3")
    registry = airt_nb.Registry()  # a restarted kernel that has not run the cell defining "effect" yet
    with Engine(db, registry=registry) as eng:
        assert eng.last_recovery.waiting_for_action == {wf: "effect"}
        assert eng.last_recovery.resumed == []
        assert str(eng.last_recovery) == "0 resumed, 0 waiting for approval, 1 waiting for an action to be defined"
        run = eng.get(wf)
        assert run.status == "RUNNING"
        assert run.waiting_for == "action effect"
        frame = airt_nb.runs(db)
        assert frame.loc[0, "waiting_for"] == "action effect"
        assert frame.loc[0, "status"] == "RUNNING"
        with pytest.raises(WaitTimeoutError, match=f"workflow {wf} is still RUNNING, waiting for action effect after"):
            run.wait(timeout=0.2)
        # The cell runs: the action appears in the registry and the workflow carries on by itself.
        seen: list = []
        eng.subscribe(
            lambda e: seen.append(eng.store.workflow(wf).waiting_for) if type(e).__name__ == "StepStarted" else None
        )
        crashlib.registry(effects, into=registry)
        assert run.wait(timeout=30) == "COMPLETED"
        assert seen == [None, None, None]  # not shown as waiting once it runs again (s3, s4, s5 started)
        assert run.waiting_for is None
    assert do_counts(effects, wf) == dict.fromkeys(STEPS, 1)
    assert airt_nb.runs(db)["waiting_for"].isna().all()  # a missing text is NaN in pandas' text dtype


def test_a_later_step_whose_action_is_missing_waits_without_failing(tmp_path, files):
    db, effects = files
    spec = chain_spec()
    spec["steps"][4]["action"] = "late"
    wf, _ = crash(tmp_path, db, effects, spec, "before", "s3", late=True)
    registry = crashlib.registry(effects)  # "effect" is defined again, "late" not yet
    with Engine(db, registry=registry) as eng:
        # Resumed (s3 and s4 run); it may already be reported waiting if s5 was reached during the open.
        summary = eng.last_recovery
        assert summary.resumed == [wf] or summary.waiting_for_action == {wf: "late"}, summary
        run = eng.get(wf)
        crashlib.wait_for_db(db, "SELECT 1 FROM workflows WHERE waiting_for IS NOT NULL")
        assert run.waiting_for == "action late"
        assert db_rows(db, "SELECT status, waiting_for, lease_owner FROM workflows") == [
            ("RUNNING", "action late", None)
        ]
        # s5 never ran: its start was implied by s4's checkpoint and is not recorded.
        assert {s: r["status"] for s, r in crashlib.step_rows(db, wf).items()}["s5"] == "PENDING"
        registry.action("late")(lambda prev=None: {"token": "late"})
        assert run.wait(timeout=30) == "COMPLETED"
        assert run.outputs["s5"] == {"token": "late"}
    assert do_counts(effects, wf) == {"s1": 1, "s2": 1, "s3": 1, "s4": 1, "s5": 0}


def test_rollback_waits_for_a_missing_compensation_and_finishes_when_it_is_defined(tmp_path, files):
    db, effects = files
    wf, _ = crash(
        tmp_path, db, effects, chain_spec("failing", s5={"inputs": {"fail_always": True}}), "undo_before", "s3"
    )
    registry = airt_nb.Registry()
    with Engine(db, registry=registry) as eng:
        assert eng.last_recovery.waiting_for_action == {wf: "effect"}
        run = eng.get(wf)
        assert run.status == "ROLLING_BACK"
        assert run.waiting_for == "action effect"
        crashlib.registry(effects, into=registry)
        assert run.wait(timeout=30) == "FAILED"
    undone = [e["step"] for e in read_effects(effects) if e["ev"] == "undo"]
    assert undone == ["s4", "s3", "s2", "s1"]


# -- 4. changed code ---------------------------------------------------------------------------------------


def test_code_changed_between_crash_and_resume_carries_on_with_a_warning(tmp_path, files):
    db, effects = files
    wf, _ = crash(tmp_path, db, effects, chain_spec(), "after", "s3")
    fingerprints = {r[0] for r in db_rows(db, "SELECT fingerprint FROM workflow_steps WHERE status = 'COMPLETED'")}
    assert len(fingerprints) == 1
    with Engine(db, registry=crashlib.registry(effects, "v2")) as eng:
        run = eng.get(wf)
        assert run.wait(timeout=30) == "COMPLETED"
        expected = [
            f"the code of action 'effect' changed since step {s!r} ran; the workflow continues with the new code"
            for s in ("s1", "s2")
        ]
        assert run.warnings == expected
    assert airt_nb.runs(db).loc[0, "warnings"] == expected
    new = {r[0] for r in db_rows(db, "SELECT fingerprint FROM workflow_steps WHERE step_name IN ('s3', 's4', 's5')")}
    assert len(new) == 1
    assert new != fingerprints


def test_unchanged_code_gives_no_warning(tmp_path, files):
    db, effects = files
    wf, _ = crash(tmp_path, db, effects, chain_spec(), "after", "s3")
    with Engine(db, registry=crashlib.registry(effects)) as eng:
        run = eng.get(wf)
        assert run.wait(timeout=30) == "COMPLETED"
        assert run.warnings == []


def history(db: Any, wf: str) -> list[str]:
    rows = db_rows(db, "SELECT event FROM workflow_events WHERE workflow_id = ? ORDER BY event_id", (wf,))
    return [r[0] for r in rows]


def test_a_takeover_is_in_the_history_before_what_the_resumed_run_did(tmp_path, files):
    db, effects = files
    wf, _ = crash(tmp_path, db, effects, chain_spec(), "after", "s1")
    with Engine(db, registry=crashlib.registry(effects)) as eng:
        assert eng.get(wf).wait(timeout=30) == "COMPLETED"
    assert history(db, wf) == ["started", "resumed", "engine_lost", "completed"]
    attempts = db_rows(db, "SELECT step_name, attempt, status FROM step_attempts WHERE workflow_id = ?", (wf,))
    assert attempts == [("s1", 1, "INTERRUPTED")]


def test_a_takeover_is_recorded_even_when_the_step_it_resumes_writes_nothing(tmp_path, files):
    """The notes of an adoption ride with the checkpoint of the step it runs again (its start is written:
    the first step's is); a step that ends without one (interrupted again) must not take them with it."""
    db, effects = files
    wf, _ = crash(tmp_path, db, effects, chain_spec(), "after", "s1")
    reg = airt_nb.Registry()
    ran = threading.Event()

    @reg.action("effect")
    def effect(ctx: airt_nb.StepContext, prev: Any = None) -> dict:
        ran.set()
        raise airt_nb.StepInterrupted()

    with Engine(db, registry=reg) as eng:
        assert ran.wait(30)
        crashlib.wait_for_db(
            db, "SELECT 1 FROM workflow_events WHERE workflow_id = ? AND event = 'engine_lost'", (wf,), timeout=10
        )
        assert eng.get(wf).status == "RUNNING"
    assert history(db, wf) == ["started", "resumed", "engine_lost"]
    attempts = db_rows(db, "SELECT step_name, attempt, status FROM step_attempts WHERE workflow_id = ?", (wf,))
    assert attempts == [("s1", 1, "INTERRUPTED")]
    assert db_rows(db, "SELECT status FROM workflow_steps WHERE workflow_id = ? AND step_name = 's1'", (wf,)) == [
        ("RUNNING",)
    ]


# -- 5. durable timers ---------------------------------------------------------------------------------------


def test_retry_backoff_survives_a_clean_close_and_runs_at_its_stored_time(files):
    db, effects = files
    retry = {"max_attempts": 2, "backoff": "fixed", "initial_delay": 1.0, "jitter": False}
    spec = chain_spec(s2={"retry": retry, "inputs": {"fail_first": 1}})
    eng = Engine(db, registry=crashlib.registry(effects))
    run = eng.start(spec)
    ((due,),) = crashlib.wait_for_db(
        db, "SELECT next_attempt_at FROM workflow_steps WHERE step_name = 's2' AND status = 'RETRYING'"
    )
    eng.close()
    with Engine(db, registry=crashlib.registry(effects)) as again:
        assert again.last_recovery.resumed == [run.id]
        assert again.get(run.id).wait(timeout=30) == "COMPLETED"
    attempts = effects_by_step(read_effects(effects))[(run.id, "s2")]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[1]["t"] >= to_epoch(due)


def approval_spec(timeout: float, on_timeout: str = "reject") -> dict:
    spec = chain_spec("timed")
    spec["steps"][2] = {"name": "s3", "type": "human_approval", "timeout": timeout, "on_timeout": on_timeout}
    spec["steps"][3]["inputs"]["prev"] = "${{ steps.s2.outputs.token }}"
    return spec


@pytest.mark.parametrize(("on_timeout", "final"), [("reject", "ROLLED_BACK"), ("approve", "COMPLETED")])
def test_approval_deadline_that_passed_while_no_engine_ran_is_honoured_on_open(tmp_path, files, on_timeout, final):
    db, effects = files
    wf, _ = crash(tmp_path, db, effects, approval_spec(0.5, on_timeout), "paused")
    ((deadline,),) = db_rows(db, "SELECT deadline FROM approvals")
    time.sleep(max(0.0, to_epoch(deadline) - time.time()) + 0.05)  # the deadline passes while nothing runs
    with Engine(db, registry=crashlib.registry(effects)) as eng:
        # Decided right after the open (possibly before recover() lists it as restored), without anyone
        # asking: wait() returns at the pause, so wait for the decision.
        crashlib.wait_for_db(db, "SELECT 1 FROM approvals WHERE status != 'PENDING'")
        assert eng.get(wf).wait(timeout=30) == final
    frame = airt_nb.approvals(db)
    assert frame.loc[0, "status"] == ("REJECTED" if on_timeout == "reject" else "APPROVED")
    assert (frame.loc[0, "decided_by"], frame.loc[0, "reason"]) == ("system", "timed out")
    if final == "ROLLED_BACK":
        assert [e["step"] for e in read_effects(effects) if e["ev"] == "undo"] == ["s2", "s1"]


def test_approval_deadline_still_ahead_after_a_restart_is_not_expired_early(tmp_path, files):
    db, effects = files
    wf, _ = crash(tmp_path, db, effects, approval_spec(1.5), "paused")
    ((deadline,),) = db_rows(db, "SELECT deadline FROM approvals")
    with Engine(db, registry=crashlib.registry(effects)) as eng:
        assert eng.last_recovery.restored == [wf]
        run = eng.get(wf)
        assert run.status == "PAUSED"
        assert run.wait(timeout=30) == "PAUSED"
        crashlib.wait_for_db(db, "SELECT 1 FROM approvals WHERE status = 'REJECTED'")
        assert run.wait(timeout=30) == "ROLLED_BACK"
    ((decided_at,),) = db_rows(db, "SELECT decided_at FROM approvals")
    assert decided_at >= deadline


# -- 6. database trouble ---------------------------------------------------------------------------------

ONE_STEP = {"name": "one", "steps": [{"name": "a", "action": "effect"}]}
HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT OR REPLACE INTO airt_meta (key, value) VALUES ('held', 'by another tool')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


class LockHolder:
    """Another process holding a write transaction on the database until released."""

    def __init__(self, db: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout.readline() == b"locked\n"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.flush()
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def no_new_engine_threads() -> Iterator[None]:
    """Fail if the block leaves airt_nb threads running that were not there before it."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before and t.name.startswith("airt")]
    assert left == [], f"threads left behind: {left}"


def test_missing_folder_is_one_clear_store_error(tmp_path):
    path = tmp_path / "no-such-folder" / "airt.db"
    with no_new_engine_threads(), pytest.raises(airt_nb.StoreError) as info:
        Engine(path)
    assert str(info.value) == (
        f"cannot open database {path}: folder {path.parent} does not exist; create it or set AIRT_DB "
        "to a path in an existing folder"
    )
    assert info.value.path == str(path)
    assert not path.parent.exists()


def test_corrupted_file_is_one_clear_store_error(tmp_path):
    path = tmp_path / "airt.db"
    path.write_bytes(b"this is not a database\n" * 500)
    with no_new_engine_threads(), pytest.raises(airt_nb.StoreError) as info:
        Engine(path)
    assert str(info.value) == (
        f"database {path} is not a valid SQLite database or is corrupted (file is not a database); "
        "restore it from a backup, or move it away to start a new one"
    )


@sqlite_only
def test_database_with_damaged_pages_is_one_clear_store_error(tmp_path, files):
    db, effects = files
    with Engine(db, registry=crashlib.registry(effects)) as eng:
        for _ in range(20):
            eng.start(ONE_STEP).wait(timeout=10)
    data = bytearray(db.read_bytes())
    data[4096:] = b"\x55" * (len(data) - 4096)  # every page after the first overwritten
    db.write_bytes(bytes(data))
    with no_new_engine_threads(), pytest.raises(airt_nb.StoreError) as info:
        Engine(db)
    assert str(info.value).startswith(f"database {db} is not a valid SQLite database or is corrupted (")
    assert str(info.value).endswith("); restore it from a backup, or move it away to start a new one")


@sqlite_only
def test_database_written_by_a_newer_version_is_refused_with_what_to_do(tmp_path, files):
    db, _ = files
    Engine(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.commit()
    conn.close()
    with no_new_engine_threads(), pytest.raises(airt_nb.StoreError) as info:
        Engine(db)
    assert str(info.value) == (
        f"database {db} was written by a newer airt_nb (schema version {LATEST + 1}, this one knows up to "
        f"{LATEST}); upgrade airt_nb (pip install -U airt_nb) to use it"
    )


def run_without_root_powers(code: str, *args: str) -> str:
    """Run ``code`` in a child whose file permissions apply (as root: without CAP_DAC_OVERRIDE)."""
    cmd = [sys.executable, "-c", code, *args]
    if os.geteuid() == 0:
        setpriv = require_tool("setpriv", "to drop root's permission override for the read-only database test")
        drop = "-dac_override,-dac_read_search"
        cmd = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--", *cmd]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


OPEN_AND_REPORT = """
import sys, airt_nb
try:
    eng = airt_nb.Engine(sys.argv[1])
except airt_nb.StoreError as exc:
    print("StoreError:", exc)
else:
    eng.close()
    print("opened")
"""


REFUSE_TWENTY_TIMES = """
import os, sys, airt_nb
before = len(os.listdir("/proc/self/fd"))
for _ in range(20):
    try:
        airt_nb.Engine(sys.argv[1]).close()
    except airt_nb.AirtError as exc:
        error = type(exc).__name__
print(error, len(os.listdir("/proc/self/fd")) - before)
"""


@pytest.mark.parametrize("why", ["read-only file", "newer schema"])
def test_a_refused_engine_leaves_no_open_file_and_no_wal_files(tmp_path, why):
    db = tmp_path / "airt.db"
    Engine(db).close()
    assert not (tmp_path / "airt.db-wal").exists()  # the last connection to close removes them
    if why == "read-only file":
        db.chmod(0o444)
    else:
        sqlite3.connect(db).execute("PRAGMA user_version = 99").connection.close()
    try:
        out = run_without_root_powers(REFUSE_TWENTY_TIMES, str(db))
    finally:
        db.chmod(0o644)
    assert out == "StoreError 0"  # twenty refusals, not one file descriptor more
    assert not (tmp_path / "airt.db-wal").exists()
    assert not (tmp_path / "airt.db-shm").exists()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_database_is_one_clear_store_error_when_opening(tmp_path, what):
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "airt.db"
    Engine(db).close()
    if what == "file":
        db.chmod(0o444)
    else:
        folder.chmod(0o555)
    try:
        out = run_without_root_powers(OPEN_AND_REPORT, str(db))
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)
    assert out.startswith(f"StoreError: database {db} is read-only (")
    assert out.endswith(
        "); make the file and its folder writable (the -wal and -shm files live next to it), or point AIRT_DB elsewhere"
    )


@pytest.fixture
def locker(files):
    """Locks the database on demand (``locker.lock()``), from another process; released at the end."""
    db, _ = files
    Engine(db).close()

    class Locker:
        holder: LockHolder | None = None

        def lock(self) -> None:
            self.holder = LockHolder(db)

        def release(self) -> None:
            if self.holder is not None:
                self.holder.release()

    locker = Locker()
    yield locker
    locker.release()


@sqlite_only
def test_database_locked_longer_than_busy_timeout_is_one_clear_store_error(files, locker):
    db, effects = files
    with Engine(db, registry=crashlib.registry(effects), busy_timeout=0.1) as eng:
        locker.lock()  # an engine opens a database only when it can write it (it records itself)
        with pytest.raises(airt_nb.StoreError) as info:
            eng.start(ONE_STEP)
        message = str(info.value)
        head = f"database {db} stayed locked by another process for more than "
        tail = (
            " s while trying to start a transaction; close the process holding it "
            "(a long transaction in another tool?) and try again"
        )
        assert message.startswith(head)
        assert message.endswith(tail)
        # It waited busy_timeout several times (with jittered pauses) before giving up, and says how long.
        assert float(message[len(head) : -len(tail)]) >= 0.5
        locker.release()
        assert eng.list() == []


@sqlite_only
def test_database_locked_for_less_than_busy_timeout_waits_and_goes_on(files, locker):
    db, effects = files
    with Engine(db, registry=crashlib.registry(effects), busy_timeout=20) as eng:
        locker.lock()
        result: list = []
        starter = threading.Thread(target=lambda: result.append(eng.start(ONE_STEP)))
        starter.start()
        starter.join(0.3)
        assert starter.is_alive()  # waiting for the lock, not failing
        locker.release()
        starter.join(30)
        assert result[0].wait(timeout=10) == "COMPLETED"


@sqlite_only
def test_database_locked_while_recovering_fails_cleanly_without_leaving_threads(tmp_path, files):
    db, effects = files
    crash(tmp_path, db, effects, chain_spec(), "before", "s2")
    holder = LockHolder(db)  # recovery must write to claim the dead process's workflow
    try:
        with no_new_engine_threads(), pytest.raises(airt_nb.StoreError, match="stayed locked by another process"):
            # With a webhook sender too: its thread starts before recovery does.
            Engine(db, registry=crashlib.registry(effects), busy_timeout=0.1, webhook_url="http://127.0.0.1:9/hook")
    finally:
        holder.release()


@sqlite_only
def test_sqlite_error_inside_a_write_is_a_store_error_naming_the_file(files):
    db, _ = files
    with Engine(db) as eng:
        # A step row for a workflow that does not exist: the foreign key refuses it.
        bad_row = [("a", 0, "action", "effect")]
        with pytest.raises(airt_nb.StoreError) as info:
            eng.store.write(lambda tx: tx.insert_steps("nope", bad_row))
        assert str(info.value) == f"database {db}: FOREIGN KEY constraint failed while trying to write"
        assert type(info.value.__cause__).__name__ == "IntegrityError"


# -- a real kernel restart ------------------------------------------------------------------------------


def kernel_run(kc, code: str) -> str:
    """Execute ``code`` in the kernel; return its stdout, or fail with the kernel's traceback."""
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=60, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


KERNEL_SETUP = """
import sys
sys.path.insert(0, {tests!r})
import airt_nb, crashlib
registry = crashlib.registry({effects!r}, **{cfg!r})
eng = airt_nb.Engine({db!r}, registry=registry, lease_ttl=3600)
"""


@pytest.mark.kernel
def test_kernel_restart_recovers_the_workflow_at_once_without_waiting_for_its_lease(tmp_path, files):
    jupyter_client = pytest.importorskip("jupyter_client")
    db, effects = files
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    km = jupyter_client.KernelManager(kernel_name="python3")
    try:
        km.start_kernel(env=env, cwd=str(tmp_path))
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
    except Exception as exc:
        km.shutdown_kernel(now=True) if km.has_kernel else None
        if IN_CI:
            pytest.fail(f"a Jupyter kernel must start in CI: {exc}")
        pytest.skip(f"no Jupyter kernel here: {exc}")
    try:
        cfg = {"stop": {"at": "after", "step": "s3"}}
        kernel_run(kc, KERNEL_SETUP.format(tests=tests, effects=str(effects), db=str(db), cfg=cfg))
        old_pid = int(kernel_run(kc, "import os; print(os.getpid())"))
        wf = kernel_run(kc, "run = eng.start(crashlib.chain_spec()); print(run.id)").strip()
        # The step in flight has done its side effect and blocks: restart the kernel right there.
        deadline = time.monotonic() + 30
        while not any(e["ev"] == "do" and e["step"] == "s3" for e in read_effects(effects)):
            assert time.monotonic() < deadline, "the kernel never reached step s3"
            time.sleep(0.01)
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        new_pid = int(kernel_run(kc, "import os; print(os.getpid())"))
        assert new_pid != old_pid
        (owner,) = db_rows(db, "SELECT lease_owner FROM workflows")[0]
        assert owner.split("|")[1] == str(old_pid)  # still held by the dead kernel, for an hour
        out = kernel_run(
            kc,
            KERNEL_SETUP.format(tests=tests, effects=str(effects), db=str(db), cfg={})
            + f"print(eng.last_recovery.resumed); print(eng.get({wf!r}).wait(timeout=30)); eng.close()",
        )
        assert out.split("\n")[:2] == [f"['{wf}']", "COMPLETED"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    does = effects_by_step(read_effects(effects))
    assert {s: [d["pid"] for d in does[(wf, s)]] for s in STEPS} == {
        "s1": [old_pid],
        "s2": [old_pid],
        "s3": [old_pid, new_pid],
        "s4": [new_pid],
        "s5": [new_pid],
    }
    assert does[(wf, "s3")][0]["key"] == does[(wf, "s3")][1]["key"] == f"{wf}/s3/1"


@sqlite_only
def test_a_checkpoint_that_failed_on_a_locked_database_is_retried_once_it_is_free(files):
    db, _ = files
    registry = airt_nb.Registry()
    gate = threading.Event()
    ran: list[str] = []

    @registry.action("blocking")
    def blocking(ctx: airt_nb.StepContext) -> dict:
        ran.append(ctx.idempotency_key)
        if len(ran) == 1:
            gate.wait(30)
        return {"n": len(ran)}

    spec = {"name": "locked", "steps": [{"name": "a", "action": "blocking"}, {"name": "b", "action": "blocking"}]}
    with Engine(db, registry=registry, busy_timeout=0.1) as eng:
        run = eng.start(spec)
        deadline = time.monotonic() + 10
        while not ran:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        holder = LockHolder(db)
        try:
            gate.set()  # step a returns; its checkpoint cannot be written while the lock is held
            deadline = time.monotonic() + 20
            while eng.is_local(run.id):
                assert time.monotonic() < deadline, "the failed checkpoint was never noticed"
                time.sleep(0.01)
        finally:
            holder.release()
        assert run.wait(timeout=30) == "COMPLETED"
    # a's completion was never recorded, so it ran again, with the same idempotency key.
    assert ran == [f"{run.id}/a/1", f"{run.id}/a/1", f"{run.id}/b/1"]


def test_the_engines_holding_work_are_each_named_once_and_only_while_a_workflow_they_hold_is_active(files):
    db, _ = files
    registry = airt_nb.Registry()
    gates = {"a": threading.Event(), "b": threading.Event()}

    @registry.action("held")
    def held(which: str) -> dict:
        gates[which].wait(30)
        return {}

    def spec(which: str) -> dict:
        return {"name": f"held-{which}", "steps": [{"name": "s", "action": "held", "inputs": {"which": which}}]}

    with Engine(db, registry=registry, recover=False) as a, Engine(db, registry=registry, recover=False) as b:
        first = [a.start(spec("a")) for _ in range(3)]
        second = b.start(spec("b"))
        assert sorted(a.store.lease_holders()) == sorted([a.owner_id, b.owner_id])
        gates["a"].set()
        assert all(r.wait(timeout=30) == "COMPLETED" for r in first)
        assert a.store.lease_holders() == [b.owner_id]
        gates["b"].set()
        assert second.wait(timeout=30) == "COMPLETED"
        assert a.store.lease_holders() == []


@sqlite_only
def test_finding_and_claiming_work_reads_only_the_rows_it_wants_not_every_active_workflow(files):
    # SQLite has no statistics to go by: left to itself it reads the recovery queries through the status
    # index, every active workflow for each batch (quadratic over thousands). The plans are checked on
    # the statements the store really runs, as SQLite's trace gives them with their values.
    db, _ = files
    store = airt_nb.store.open_store(str(db))
    statements: list[str] = []
    try:
        store._read().set_trace_callback(statements.append)
        store._conn.set_trace_callback(statements.append)
        store.candidates(["gone|1|host|key"], limit=8)
        store.lease_holders()
        batch = [f"w{i}" for i in range(64)]  # a batch as recovery claims them: with two ids SQLite chose well
        store.write(lambda tx: tx.claim("me|1|host|key", batch, ["gone|1|host|key"], store.now()))
        store._read().set_trace_callback(None)
        store._conn.set_trace_callback(None)
        explain = sqlite3.connect(db)
        plans = {
            s: [row[3] for row in explain.execute("EXPLAIN QUERY PLAN " + s)]
            for s in statements
            if s.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH"))
        }
        assert len(plans) == 4, statements
        for sql, plan in plans.items():
            assert not any("workflows_by_status" in step for step in plan), (sql, plan)
        claim = next(p for s, p in plans.items() if s.startswith("UPDATE workflows SET lease_owner"))
        assert claim == ["SEARCH workflows USING INDEX sqlite_autoindex_workflows_1 (workflow_id=?)"], claim
        free = next(p for s, p in plans.items() if "lease_owner IS NULL AND" in s)
        assert free == ["SCAN workflows USING INDEX workflows_free"], free  # oldest first, stops at the limit
        holders = next(p for s, p in plans.items() if s.startswith("WITH RECURSIVE"))
        assert not any("TEMP B-TREE" in step for step in holders), holders
    finally:
        store.close()


@sqlite_only
def test_an_engine_whose_leases_are_only_on_finished_workflows_holds_no_work(files):
    db, _ = files
    store = airt_nb.store.open_store(str(db))
    try:
        conn = sqlite3.connect(db)
        columns = "workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, total_steps, lease_owner"
        rows = [
            ("w1", "x", "COMPLETED", "{}", "h", "{}", "t1", "t1", 0, "stale|1|host|key"),
            ("w2", "x", "ROLLING_BACK", "{}", "h", "{}", "t2", "t2", 0, "live|2|host|key"),
            ("w3", "x", "RUNNING", "{}", "h", "{}", "t3", "t3", 0, "live|2|host|key"),
            ("w4", "x", "PAUSED", "{}", "h", "{}", "t4", "t4", 0, "another|3|host|key"),
        ]
        conn.executemany(f"INSERT INTO workflows ({columns}) VALUES ({', '.join('?' * 10)})", rows)
        conn.commit()
        assert store.lease_holders() == ["live|2|host|key"]
    finally:
        store.close()


def test_a_workflow_paused_on_an_event_is_reported_on_open_and_in_the_banner(db: str) -> None:
    from airt_nb.commands import banner

    spec = "name: ev\nsteps:\n  - name: ci\n    type: wait_event\n    event: ci.done\n"
    with Engine(db) as first:
        run = first.start(spec)
        assert run.wait(timeout=10) == "PAUSED"
    with Engine(db) as eng:  # the kernel restarted: what does it say it found?
        assert eng.last_recovery.waiting_for_event == {run.id: "ci"}
        assert str(eng.last_recovery) == "0 resumed, 0 waiting for approval, 1 waiting for an event"
        text = repr(banner(eng))
        assert (
            f"  waiting for an event: ev ({run.id}) waits for event 'ci.done'; "
            "send one with %workflow send ID EVENT --data ..."
        ) in text, text
        eng.send(run.id, "ci.done")
        assert eng.wait(run.id, timeout=10) == "COMPLETED"
    with Engine(db) as after:
        assert after.last_recovery.waiting_for_event == {}
