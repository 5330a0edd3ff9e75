"""Approvals: the durable request, decisions with identity and authorisation, the first
decision winning (threads and processes), timeouts (also across restarts), and engines
that record decisions without running the workflow (recover=False); on SQLite and PostgreSQL."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

import airt_nb
from airt_nb import ApprovalError, NotFoundError, PolicyError, Registry
from airt_nb.policy import AllowAll, Verdict
from airt_nb.store.records import TERMINAL
from airt_nb.timeutil import to_epoch
from tests.conftest import poll_until

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.both_backends

SPEC = """
name: publish
inputs: {target: out}
steps:
  - name: write_a
    action: file.write
    inputs: {path: "${{ inputs.target }}/a.txt", content: hello}
  - name: note
    action: note
    inputs: {text: "${{ steps.write_a.outputs.path }}"}
  - name: write_c
    action: file.write
    depends_on: [write_a]
    inputs: {path: "${{ inputs.target }}/c.txt", content: more}
  - name: review
    type: human_approval
    depends_on: [write_a, note, write_c]
    message: "Publish ${{ inputs.target }}? a.txt has ${{ steps.write_a.outputs.bytes }} bytes"
    approvers: [ann, reviewers]
    timeout: 1h
  - name: write_b
    action: file.write
    inputs: {path: "${{ inputs.target }}/b.txt", content: world}
"""

SHORT = """
name: short
inputs: {target: out}
steps:
  - name: write_a
    action: file.write
    inputs: {path: "${{ inputs.target }}/a.txt", content: hello}
  - name: review
    type: human_approval
    message: "Go on?"
    approvers: [ann]
    timeout: 0.3
    on_timeout: ON_TIMEOUT
  - name: write_b
    action: file.write
    inputs: {path: "${{ inputs.target }}/b.txt", content: world}
"""


@pytest.fixture
def registry() -> Registry:
    reg = Registry()

    @reg.action("note")
    def note(text: str) -> dict:  # no compensation: a rejection cannot undo it
        return {"noted": text}

    return reg


def paused(eng: airt_nb.Engine, spec: str, target: Path) -> airt_nb.Run:
    run = eng.start(spec, inputs={"target": str(target)})
    assert run.wait(10) == "PAUSED"
    return run


def wait_final(run: airt_nb.Run, timeout: float = 15) -> str:
    assert poll_until(lambda: run.status in TERMINAL, timeout), run.status
    return run.status


def short(on_timeout: str) -> str:
    return SHORT.replace("ON_TIMEOUT", on_timeout)


def sleep_past(deadline: str | None) -> None:
    """Let an approval's deadline pass (a timeout can only be tested by letting time pass)."""
    assert deadline is not None
    time.sleep(max(0.0, to_epoch(deadline) - time.time()) + 0.05)


# -- the request ---------------------------------------------------------------------------------------


def test_the_request_records_what_the_approver_needs(engine: airt_nb.Engine, tmp_path: Path) -> None:
    target = tmp_path / "out"
    run = paused(engine, SPEC, target)
    a = run.pending_approval
    assert a is not None
    assert (a.workflow_id, a.step_name, a.status, a.on_timeout) == (run.id, "review", "PENDING", "reject")
    assert a.message == f"Publish {target}? a.txt has 5 bytes"
    assert a.approver_list == ["ann", "reviewers"]
    assert abs(to_epoch(a.deadline) - to_epoch(a.requested_at) - 3600) < 1
    context = json.loads(a.context)
    assert context["depends_on"] == {
        "write_a": {"path": str(target / "a.txt"), "bytes": 5},
        "note": {"noted": str(target / "a.txt")},
        "write_c": {"path": str(target / "c.txt"), "bytes": 4},
    }
    # What a rejection undoes, newest completion first, and what it cannot undo.
    undo = [u["step"] for u in context["undo"]]
    assert sorted(undo) == ["write_a", "write_c"]
    assert undo[-1] == "write_a"
    assert context["undo"][-1]["inputs"] == {"path": str(target / "a.txt"), "content": "hello"}
    assert context["not_undone"] == ["note"]
    assert context["started_by"] == "tester"
    assert {s.step_name: s.status for s in run.steps()}["review"] == "WAITING"
    assert run.record.lease_owner is None  # a paused workflow holds no lease

    frame = airt_nb.approvals(engine)
    row = frame.iloc[0]
    assert row["approval_id"] == a.approval_id
    assert row["workflow_id"] == run.id
    assert row["step_name"] == "review"
    assert row["status"] == "PENDING"
    assert row["message"] == a.message
    assert row["approvers"] == ["ann", "reviewers"]
    assert row["context"]["not_undone"] == ["note"]
    assert sorted(row["undo"]) == ["write_a", "write_c"]
    assert row["on_timeout"] == "reject"
    assert row["deadline"] > row["requested_at"]
    assert row["webhook_attempts"] == 0
    for column in ("requested_at", "deadline", "decided_at", "decided_by", "reason"):
        assert column in frame.columns


def test_an_approval_continues_the_workflow_and_records_who_when_why(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, SPEC, tmp_path / "out")
    decided = run.approve(by="ann", reason="looks good")
    assert (decided.status, decided.decided_by, decided.reason) == ("APPROVED", "ann", "looks good")
    assert decided.decided_at is not None
    assert run.wait(10) == "COMPLETED"
    assert (tmp_path / "out" / "b.txt").read_text() == "world"
    assert run.outputs["review"]["approved"] is True
    assert run.outputs["review"]["decided_by"] == "ann"
    assert run.progress == (5, 5)
    audit = airt_nb.audit(engine, workflow_id=run.id)
    rows = audit[audit["event"] == "approval"]
    assert rows[["user", "decision", "rule"]].values.tolist() == [["ann", "allow", "approvers"]]
    # The name is recorded as typed, and who typed it (the engine's user, tester) with it.
    assert rows["detail"].tolist() == ["asserted by tester"]
    mine = paused(engine, SPEC.replace("approvers: [ann, reviewers]", "approvers: [tester]"), tmp_path / "mine")
    mine.approve()
    audit = airt_nb.audit(engine, workflow_id=mine.id)
    assert audit[audit["event"] == "approval"][["user", "detail"]].values.tolist() == [["tester", "asserted"]]


def test_a_rejection_rolls_back_the_completed_steps(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, SPEC, tmp_path / "out")
    decided = engine.reject(run.id, by="ann", reason="not today")
    assert (decided.status, decided.decided_by, decided.reason) == ("REJECTED", "ann", "not today")
    assert wait_final(run) == "ROLLED_BACK"
    assert not (tmp_path / "out" / "a.txt").exists()
    assert not (tmp_path / "out" / "c.txt").exists()
    assert run.error == "rejected by ann at step 'review': not today"
    steps = {s.step_name: s.status for s in run.steps()}
    assert steps == {
        "write_a": "COMPENSATED",
        "note": "COMPLETED",
        "write_c": "COMPENSATED",
        "review": "REJECTED",
        "write_b": "SKIPPED",
    }


# -- who decides --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "by", "expected"),
    [
        ({"AIRT_USER": "alice", "JUPYTERHUB_USER": "hubby"}, "ann", "ann"),
        ({"AIRT_USER": "alice", "JUPYTERHUB_USER": "hubby"}, None, "alice"),
        ({"JUPYTERHUB_USER": "hubby"}, None, "hubby"),
        ({}, None, getpass.getuser()),
    ],
)
def test_the_decider_is_by_else_airt_user_else_jupyterhub_user_else_the_os_user(
    db: str,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    by: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with airt_nb.Engine(db, registry=registry) as eng:
        run = paused(eng, SPEC.replace("approvers: [ann, reviewers]", "approvers: []"), tmp_path / "out")
        assert run.approve(by=by).decided_by == expected


def test_someone_not_among_the_approvers_is_refused_and_nothing_changes(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, SPEC, tmp_path / "out")
    before = (run.record, run.steps(), run.approvals())
    with pytest.raises(PolicyError) as info:
        run.approve(by="mallory", reason="me")
    assert str(info.value) == (
        f"workflow {run.id}, step 'review': user 'mallory' (roles: none) may not decide this approval; "
        "refused by rule 'approvers': only ann, reviewers may decide this approval. Approvers: ann, reviewers; "
        "ask one of them to decide"
    )
    assert (info.value.user, info.value.step) == ("mallory", "review")
    with pytest.raises(PolicyError):
        run.reject(by="mallory")
    assert (run.record, run.steps(), run.approvals()) == before
    assert run.status == "PAUSED"
    denied = airt_nb.audit(engine, workflow_id=run.id)
    assert denied[denied["event"] == "approval"]["decision"].tolist() == ["deny", "deny"]
    # The request is still open to the right person.
    run.approve(by="ann")
    assert run.wait(10) == "COMPLETED"


class RolePolicy(AllowAll):
    """A small policy: roles by user, and approvers may name roles."""

    enforcing = True
    roles: ClassVar[dict[str, tuple[str, ...]]] = {"rita": ("reviewers",), "ann": ("admins",)}

    def roles_of(self, user: str) -> tuple[str, ...]:
        return self.roles.get(user, ())

    def check_action(self, user: str, action: str, inputs: Mapping[str, Any]) -> Verdict:
        return Verdict(True, "test")

    def check_approval(self, user: str, approvers: Sequence[str]) -> Verdict:
        if user in approvers or set(self.roles_of(user)) & set(approvers):
            return Verdict(True, "approvers")
        return Verdict(False, "approvers", f"only {', '.join(approvers)} may decide")


def test_members_of_an_approver_role_may_decide(db: str, registry: Registry, tmp_path: Path) -> None:
    with airt_nb.Engine(db, registry=registry, user="rita", policy=RolePolicy()) as eng:
        run = paused(eng, SPEC, tmp_path / "out")
        assert run.approve().decided_by == "rita"
        assert run.wait(10) == "COMPLETED"
    with airt_nb.Engine(db, registry=registry, user="bob", policy=RolePolicy()) as eng:
        run = paused(eng, SPEC, tmp_path / "out2")
        with pytest.raises(PolicyError, match=r"user 'bob' \(roles: none\) may not decide this approval"):
            run.approve()


def test_system_is_reserved_for_the_engine(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, SPEC, tmp_path / "out")
    with pytest.raises(PolicyError, match="by='system' is reserved for what the engine decides itself"):
        run.approve(by="system")
    with pytest.raises(PolicyError, match="by= is empty"):
        run.approve(by="  ")
    assert run.pending_approval is not None


# -- the first decision wins ---------------------------------------------------------------------------------


def test_racing_threads_record_exactly_one_decision(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, SPEC.replace("approvers: [ann, reviewers]", "approvers: []"), tmp_path / "out")
    n = 8
    barrier = threading.Barrier(n)
    results: dict[int, Any] = {}

    def decide(i: int) -> None:
        barrier.wait()
        try:
            if i % 2:
                results[i] = run.approve(by=f"user{i}")
            else:
                results[i] = run.reject(by=f"user{i}")
        except ApprovalError as exc:
            results[i] = exc

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [r for r in results.values() if not isinstance(r, Exception)]
    losers = [r for r in results.values() if isinstance(r, ApprovalError)]
    assert len(winners) == 1
    assert len(losers) == n - 1
    [winner] = winners
    [stored] = run.approvals()
    assert (stored.status, stored.decided_by) == (winner.status, winner.decided_by)
    verb = winner.status.lower()
    for exc in losers:
        assert str(exc) == (
            f"approval {stored.approval_id} of workflow {run.id} (step 'review') was already {verb} by "
            f"{stored.decided_by} at {stored.decided_at}; the first decision stands"
        )
    final = wait_final(run)
    assert final == ("COMPLETED" if winner.status == "APPROVED" else "ROLLED_BACK")
    audit = airt_nb.audit(engine, workflow_id=run.id)
    assert (audit["event"] == "approval").sum() == 1


CHILD_DECIDER = """
import json, sys
import airt_nb
db, user, verb = sys.argv[1:4]
eng = airt_nb.Engine(db, recover=False, user=user, registry=airt_nb.Registry())
print("ready", flush=True)
sys.stdin.readline()
try:
    record = getattr(eng, verb)(sys.argv[4])
    print(json.dumps({"ok": record.status, "by": record.decided_by}), flush=True)
except airt_nb.AirtError as exc:
    print(json.dumps({"error": type(exc).__name__, "text": str(exc)}), flush=True)
finally:
    eng.close()
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_racing_processes_record_exactly_one_decision(engine: airt_nb.Engine, db: str, tmp_path: Path) -> None:
    run = paused(engine, SPEC.replace("approvers: [ann, reviewers]", "approvers: [ann, rita]"), tmp_path / "out")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_DECIDER, db, user, verb, run.id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for user, verb in (("ann", "approve"), ("rita", "reject"))
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [json.loads(child.communicate(timeout=30)[0]) for child in children]
    finally:
        for child in children:
            child.kill()
    oks = [o for o in outputs if "ok" in o]
    errors = [o for o in outputs if "error" in o]
    assert len(oks) == 1, outputs
    assert len(errors) == 1, outputs
    [stored] = run.approvals()
    assert stored.decided_by == oks[0]["by"]
    assert errors[0]["error"] == "ApprovalError"
    assert errors[0]["text"] == (
        f"approval {stored.approval_id} of workflow {run.id} (step 'review') was already "
        f"{stored.status.lower()} by {stored.decided_by} at {stored.decided_at}; the first decision stands"
    )
    # The children recorded the decision without running anything; this engine carries it on.
    assert wait_final(run) == ("COMPLETED" if stored.status == "APPROVED" else "ROLLED_BACK")


def test_deciding_twice_says_who_decided_and_when(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, SPEC, tmp_path / "out")
    first = run.reject(by="ann", reason="no")
    with pytest.raises(ApprovalError) as info:
        run.approve(by="ann")
    assert str(info.value) == (
        f"approval {first.approval_id} of workflow {run.id} (step 'review') was already rejected by ann at "
        f"{first.decided_at} (no); the first decision stands"
    )


def test_nothing_to_decide(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = engine.start("name: plain\nsteps:\n  - {name: w, action: file.write, inputs: {path: x.txt, content: x}}")
    assert run.wait(10) == "COMPLETED"
    with pytest.raises(ApprovalError) as info:
        run.approve()
    assert str(info.value) == f"workflow {run.id} has no pending approval (it is COMPLETED); nothing to decide"
    other = paused(engine, SPEC, tmp_path / "out")
    with pytest.raises(NotFoundError):
        engine.approve(run.id, approval_id=other.pending_approval.approval_id)


def test_a_decision_is_refused_while_the_workflow_rolls_back(
    engine: airt_nb.Engine, registry: Registry, tmp_path: Path
) -> None:
    undoing = threading.Event()
    release = threading.Event()

    @registry.action("slow_undo")
    def slow_undo() -> dict:
        return {}

    @slow_undo.compensate
    def _(inputs: dict, outputs: dict) -> None:
        undoing.set()
        release.wait(30)

    @registry.action("boom")
    def boom() -> dict:
        raise RuntimeError("boom")

    spec = """
name: parallel
steps:
  - {name: first, action: slow_undo}
  - {name: review, type: human_approval, message: "ok?", depends_on: [first]}
  - {name: fails, action: boom, depends_on: [first]}
"""
    run = engine.start(spec)
    assert undoing.wait(10)
    assert run.status == "ROLLING_BACK"
    with pytest.raises(ApprovalError) as info:
        run.approve(by="ann")
    assert str(info.value) == (
        f"workflow {run.id} is ROLLING_BACK: step 'review' can no longer be approved or rejected "
        "(its approval is cancelled when the workflow settles)"
    )
    release.set()
    assert wait_final(run) == "FAILED"
    [approval] = run.approvals()
    assert (approval.status, approval.decided_by, approval.reason) == ("CANCELLED", "system", "workflow rolled back")


# -- timeouts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("on_timeout", "final"), [("reject", "ROLLED_BACK"), ("approve", "COMPLETED")])
def test_a_timeout_decides_as_the_system(engine: airt_nb.Engine, tmp_path: Path, on_timeout: str, final: str) -> None:
    run = paused(engine, short(on_timeout), tmp_path / "out")
    assert wait_final(run) == final
    [approval] = run.approvals()
    assert (approval.status, approval.decided_by, approval.reason) == (
        "APPROVED" if on_timeout == "approve" else "REJECTED",
        "system",
        "timed out",
    )
    assert approval.decided_at >= approval.deadline
    assert (tmp_path / "out" / "b.txt").exists() == (on_timeout == "approve")
    assert (tmp_path / "out" / "a.txt").exists() == (on_timeout == "approve")


@pytest.mark.parametrize(("on_timeout", "final"), [("reject", "ROLLED_BACK"), ("approve", "COMPLETED")])
def test_a_timeout_that_passes_while_no_engine_runs_is_applied_by_the_next_engine(
    db: str, registry: Registry, tmp_path: Path, on_timeout: str, final: str
) -> None:
    with airt_nb.Engine(db, registry=registry, user="tester") as first:
        run = paused(first, short(on_timeout), tmp_path / "out")
        deadline = run.pending_approval.deadline
    sleep_past(deadline)
    with airt_nb.Engine(db, registry=registry, user="tester") as second:
        run = second.get(run.id)
        assert wait_final(run) == final
        [approval] = run.approvals()
        assert (approval.decided_by, approval.reason) == ("system", "timed out")


def test_a_decision_after_the_deadline_finds_the_timeout_applied(db: str, registry: Registry, tmp_path: Path) -> None:
    with airt_nb.Engine(db, registry=registry, user="tester") as first:
        run = paused(first, short("reject"), tmp_path / "out")
        deadline = run.pending_approval.deadline
    sleep_past(deadline)
    with airt_nb.Engine(db, registry=registry, user="ann", recover=False) as late:
        with pytest.raises(ApprovalError) as refused:
            late.approve(run.id)
        # It says what happened: the deadline had passed, and this attempt applied it (nobody else did).
        (approval,) = late.store.approvals(workflow_id=run.id)
        assert str(refused.value) == (
            f"approval {approval.approval_id} of workflow {run.id} (step 'review') timed out at {deadline}, before "
            f"this decision (on_timeout: reject: rejected by system at {approval.decided_at}); your decision was "
            "not recorded"
        )
        assert late.get(run.id).status == "ROLLING_BACK"  # left to an engine that runs workflows
    with airt_nb.Engine(db, registry=registry, user="tester") as third:
        assert wait_final(third.get(run.id)) == "ROLLED_BACK"


# -- engines that do not run the workflow -------------------------------------------------------------------


def test_an_engine_without_recovery_leaves_a_decided_workflow_to_the_engines_that_run_it(
    db: str, registry: Registry, tmp_path: Path
) -> None:
    with airt_nb.Engine(db, registry=registry, user="tester") as first:
        run = paused(first, SPEC, tmp_path / "out")
    with airt_nb.Engine(db, registry=registry, user="ann", recover=False) as client:
        client.approve(run.id, reason="ok")
        record = client.get(run.id).record
        assert (record.status, record.lease_owner) == ("RUNNING", None)
        client._recovery.sweep()  # its housekeeping does not take it either
        assert client.get(run.id).record.lease_owner is None
        assert not client.is_local(run.id)
    assert not (tmp_path / "out" / "b.txt").exists()
    with airt_nb.Engine(db, registry=registry, user="tester") as runner:
        assert wait_final(runner.get(run.id)) == "COMPLETED"
    assert (tmp_path / "out" / "b.txt").read_text() == "world"


def test_an_engine_without_recovery_still_runs_what_it_started(db: str, registry: Registry, tmp_path: Path) -> None:
    with airt_nb.Engine(db, registry=registry, user="ann", recover=False) as eng:
        run = paused(eng, SPEC, tmp_path / "out")
        run.approve()
        assert run.wait(10) == "COMPLETED"


POLICY = """
users:
  ann: [author]
  bob: [author]
  rita: [reviewer]
roles:
  author:
    allow: ["file.*", note]
    paths: ["."]
  reviewer:
    approve: true
"""


def test_a_policy_file_decides_who_may_approve(
    db: str, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    monkeypatch.setenv("AIRT_POLICY", str(tmp_path / "policy.yaml"))
    with (
        airt_nb.Engine(db, registry=registry, user="ann") as eng,
        airt_nb.Engine(db, registry=registry, user="bob", recover=False) as bobs,
        airt_nb.Engine(db, registry=registry, user="rita", recover=False) as ritas,
    ):
        run = paused(eng, SPEC.replace("approvers: [ann, reviewers]", "approvers: [reviewer]"), tmp_path / "out")
        with pytest.raises(PolicyError, match=r"user 'bob' \(roles: author\) may not decide this approval; "):
            bobs.approve(run.id)
        with pytest.raises(PolicyError, match="refused by rule 'approvers'"):
            run.approve()  # ann started it, but is no reviewer
        with pytest.raises(PolicyError, match=r"user 'ann' \(roles: author\) may not decide as 'rita'"):
            run.approve(by="rita")  # a name is not a right: deciding as rita needs an act_as right
        assert run.pending_approval is not None
        decided = ritas.approve(run.id, reason="checked")
        assert (decided.decided_by, decided.reason, decided.auth) == ("rita", "checked", "asserted")
        assert run.wait(10) == "COMPLETED"
        audit = airt_nb.audit(eng, workflow_id=run.id)
        rows = audit[audit["event"].isin(["approval", "act_as"])]
        assert rows[["user", "event", "decision", "rule"]].values.tolist() == [
            ["bob", "approval", "deny", "approvers"],
            ["ann", "approval", "deny", "approvers"],
            ["ann", "act_as", "deny", "default deny"],
            ["rita", "approval", "allow", "reviewer: approve"],
        ]
