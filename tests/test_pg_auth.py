"""Authenticated decisions: people connect to PostgreSQL with roles of their own.

``airt db grant`` gives a login role the group's privileges; an engine on such
a role records every decision under the server's ``session_user`` (whatever
``by=`` says), through the SECURITY DEFINER functions of migration 7, which
apply the approval's rules again (approvers, exclude_requester, one approval
per person, N of M); direct writes to ``approvals`` and ``approval_decisions``
are refused, and an approval step cannot be completed without a recorded
decision (of its run, or of the run it was forked from).

What the group may still write cannot undo that record (migration 8): a
member's plain SQL cannot delete a run with decisions on record, change who
started a run, rewrite or delete an approval step a decision settled, or
change whether a step is an approval; the functions time decisions,
cancellations and escalations by the server's clock, refuse a decision after
the deadline, and record who cancelled as the calling role.  The owner of the
tables still may do all of it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pg_server import PgServer

import airt_nb
from airt_nb import Engine, PolicyError, Registry, StoreError, cli
from airt_nb.store import redact
from airt_nb.store.pg_roles import READ_ONLY, TABLES

ROOT = Path(__file__).resolve().parents[1]

GATED = """
name: gated
steps:
  - name: write
    action: file.write
    inputs: {path: out/a.txt, content: hello}
  - name: review
    type: human_approval
    message: "Ship it?"
    approvers: [APPROVERS]
  - name: after
    action: file.write
    inputs: {path: out/b.txt, content: world}
"""


def gated(*approvers: str) -> str:
    return GATED.replace("APPROVERS", ", ".join(approvers))


def grant(owner_url: str, user: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["--db", owner_url, "db", "grant", user]) == 0
    return capsys.readouterr().out


@pytest.fixture
def people(pg_db: str, pg_role: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Login roles alice and bob on the migrated database, each granted airt_nb's group."""
    urls = {}
    for name in ("alice", "bob"):
        url = pg_role(name)
        urls[name] = url.rsplit("/", 1)[0] + "/" + pg_db.rsplit("/", 1)[1]
        grant(pg_db, name, capsys)
    return urls


def paused(url: str, spec: str, tmp_path: Path, **kw: Any) -> tuple[Engine, airt_nb.Run]:
    eng = Engine(url, registry=Registry(), **kw)
    try:
        run = eng.start(spec, workdir=tmp_path)
        assert run.wait(timeout=10) == "PAUSED"
    except BaseException:
        eng.close()
        raise
    return eng, run


def test_a_decision_is_recorded_under_the_database_role_whatever_by_says(
    people: dict[str, str], tmp_path: Path
) -> None:
    eng, run = paused(people["alice"], gated("alice"), tmp_path, user="someone-else")
    try:
        assert eng.store.authenticated_user == "alice"
        decided = run.approve(by="the-boss", reason="fine")
        assert (decided.decided_by, decided.auth, decided.reason) == ("alice", "database", "fine")
        assert run.wait(timeout=10) == "COMPLETED"
        assert run.outputs["review"]["decided_by"] == "alice"
        assert (tmp_path / "out" / "b.txt").read_text() == "world"
        frame = airt_nb.approvals(eng)
        assert frame[["decided_by", "auth"]].values.tolist() == [["alice", "database"]]
    finally:
        eng.close()


def test_a_role_that_is_not_an_approver_is_refused_by_the_database(
    people: dict[str, str], pg_db: str, tmp_path: Path
) -> None:
    import psycopg

    eng, run = paused(people["alice"], gated("alice"), tmp_path)
    try:
        approval_id = run.pending_approval.approval_id
        denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="role bob is not one of the approvers")
        with psycopg.connect(people["bob"], autocommit=True) as bob, denied:
            bob.execute("SELECT airt_decide(%s, 'APPROVED', 'me', '2030-01-01', NULL)", (approval_id,))
        # Through an engine, bob is refused by the engine's own check first, and nothing is recorded.
        with (
            Engine(people["bob"], registry=Registry(), recover=False) as bobs,
            pytest.raises(PolicyError, match="user 'bob'"),
        ):
            bobs.approve(run.id, by="alice")
        assert run.pending_approval is not None
        run.reject(reason="no")
        assert run.wait(timeout=10) == "ROLLED_BACK"
        assert run.approvals()[0].decided_by == "alice"
    finally:
        eng.close()


POLICY = """
users:
  alice: [reviewers]
  bob: [reviewers]
roles:
  reviewers:
    allow: ["*"]
    paths: ["."]
    approve: true
"""


def test_approvers_naming_a_database_role_admit_its_members_only(
    people: dict[str, str], pg_server: PgServer, pg_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy file says both are reviewers; the database, which knows its roles, has the last word."""
    with pg_server.connect() as admin:
        admin.execute("DROP ROLE IF EXISTS reviewers")
        admin.execute("CREATE ROLE reviewers NOLOGIN")
        admin.execute("GRANT reviewers TO alice")
    (tmp_path / "policy.yaml").write_text(POLICY)
    monkeypatch.setenv("AIRT_POLICY", str(tmp_path / "policy.yaml"))
    try:
        eng, run = paused(people["alice"], gated("reviewers"), tmp_path)
        try:
            with (
                Engine(people["bob"], registry=Registry(), recover=False) as bobs,
                pytest.raises(PolicyError, match="database role bob is not one of the approvers"),
            ):
                bobs.approve(run.id)
            assert run.pending_approval is not None
            assert run.approve().decided_by == "alice"
            assert run.wait(timeout=10) == "COMPLETED"
        finally:
            eng.close()
    finally:
        with pg_server.connect() as admin:
            admin.execute("DROP ROLE reviewers")


def test_direct_writes_to_approvals_and_to_approval_steps_are_refused(people: dict[str, str], tmp_path: Path) -> None:
    import psycopg

    eng, run = paused(people["alice"], gated("alice"), tmp_path)
    try:
        approval = run.pending_approval
        with psycopg.connect(people["alice"], autocommit=True) as alice:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                alice.execute("UPDATE approvals SET status = 'APPROVED', decided_by = 'boss'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                alice.execute(
                    "INSERT INTO approvals (approval_id, workflow_id, step_name, status, requested_at, decided_by) "
                    "VALUES ('forged', %s, 'review', 'APPROVED', '2030-01-01', 'boss')",
                    (run.id,),
                )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                alice.execute("DELETE FROM approvals")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a recorded decision completes it"):
                alice.execute(
                    "UPDATE workflow_steps SET status = 'COMPLETED' WHERE workflow_id = %s AND step_name = 'review'",
                    (run.id,),
                )
        assert run.pending_approval == approval
        assert run.status == "PAUSED"
    finally:
        eng.close()


def test_timeouts_and_cancels_go_through_the_database_functions_too(people: dict[str, str], tmp_path: Path) -> None:
    spec = gated("alice").replace(
        'message: "Ship it?"', 'message: "Ship it?"\n    timeout: 1s\n    on_timeout: approve'
    )
    eng, run = paused(people["alice"], spec, tmp_path)
    try:
        assert run.wait(timeout=20, until="done") == "COMPLETED"
        [approval] = run.approvals()
        assert (approval.status, approval.decided_by, approval.auth) == ("APPROVED", "system", "system")
        other = eng.start(gated("alice"), workdir=tmp_path)
        assert other.wait(timeout=10) == "PAUSED"
        other.cancel()
        assert other.wait(timeout=10) == "CANCELLED"
        [cancelled] = other.approvals()
        assert (cancelled.status, cancelled.decided_by) == ("CANCELLED", "alice")
    finally:
        eng.close()


def test_the_owner_of_the_tables_still_decides_under_a_claimed_name(pg_db: str, tmp_path: Path) -> None:
    eng, run = paused(pg_db, gated("ann"), tmp_path, user="ann")
    try:
        assert eng.store.authenticated_user is None
        decided = run.approve(by="ann")
        assert (decided.decided_by, decided.auth) == ("ann", "asserted")
    finally:
        eng.close()


def test_a_role_without_access_is_told_how_to_get_it(pg_db: str, pg_role: Callable[..., str]) -> None:
    url = pg_role("carol")
    url = url.rsplit("/", 1)[0] + "/" + pg_db.rsplit("/", 1)[1]
    with pytest.raises(StoreError) as info:
        Engine(url)
    assert "permission denied" in str(info.value)
    assert "airt --db OWNER_URL db grant" in str(info.value)


def test_db_grant_creates_a_login_role_with_what_it_needs_and_says_so(
    pg_server: PgServer, pg_db: str, tmp_path: Path
) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    dbname = pg_db.rsplit("/", 1)[1]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "airt_nb.cli", "--db", pg_db, "db", "grant", "dave", "--password", "-"],
            input="d4ve-pw\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "created login role dave with the given password" in done.stdout
        assert "granted airt_users to dave" in done.stdout
        assert pg_server.password not in done.stdout + done.stderr
        dave = pg_server.url(dbname, user="dave", password="d4ve-pw")
        with Engine(dave, registry=Registry()) as eng:
            assert eng.store.authenticated_user == "dave"
            privileges = dict(
                eng.store.query(
                    "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
                    "FROM information_schema.role_table_grants WHERE grantee = 'airt_users' "
                    "AND table_schema = current_schema() GROUP BY table_name"
                )
            )
        assert privileges == {
            **dict.fromkeys(TABLES, "DELETE,INSERT,SELECT,UPDATE"),
            **dict.fromkeys(READ_ONLY, "SELECT"),
        }
        again = subprocess.run(
            [sys.executable, "-m", "airt_nb.cli", "--db", pg_db, "db", "grant", "dave"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert again.returncode == 0, again.stderr
        assert "created" not in again.stdout
    finally:
        pg_server.drop_role("dave", dbnames=(dbname,))


def test_every_table_is_named_in_the_grants(pg_db: str) -> None:
    with airt_nb.store.opened(pg_db) as store:
        tables = {r[0] for r in store.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    assert tables == set(TABLES) | set(READ_ONLY)


def test_db_grant_needs_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", str(tmp_path / "a.db"), "db", "grant", "ann"]) == 1
    assert "db grant needs a PostgreSQL database" in capsys.readouterr().err


def test_db_grant_by_a_role_that_may_not_grant_says_who_must_run_it(
    people: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--db", people["alice"], "db", "grant", "mallory"]) == 1
    err = capsys.readouterr().err
    assert "cannot set up role mallory" in err
    assert "run airt db grant with the URL of the role that owns airt_nb's tables" in err
    assert redact(people["alice"]) in err


FOUR_EYES = """
name: four-eyes
steps:
  - name: write
    action: file.write
    inputs: {path: out/a.txt, content: hello}
  - name: review
    type: human_approval
    message: "Ship it?"
    min_approvals: 2
    exclude_requester: true
    escalate: {after: 1s, to: [bob]}
    approvers: [alice, carol]
  - name: after
    action: file.write
    inputs: {path: out/b.txt, content: world}
"""


def test_the_database_applies_the_approvals_rules_to_a_role_that_calls_it_directly(
    people: dict[str, str], pg_role: Callable[..., str], pg_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A role that skips the engine and calls airt_decide itself meets the same rules: the requester may not
    decide, nobody approves twice, one approval of two settles nothing, and escalation adds the step's names."""
    import psycopg

    people["carol"] = pg_role("carol").rsplit("/", 1)[0] + "/" + pg_db.rsplit("/", 1)[1]
    grant(pg_db, "carol", capsys)
    eng, run = paused(people["alice"], FOUR_EYES, tmp_path)  # alice starts it: exclude_requester
    try:
        approval_id = run.pending_approval.approval_id
        with psycopg.connect(people["alice"], autocommit=True) as alice:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="started workflow"):
                alice.execute("SELECT airt_decide(%s, 'APPROVED', NULL, '2030-01-01', NULL)", (approval_id,))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                alice.execute(
                    "INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, "
                    "decided_at) VALUES (%s, %s, 'review', 'APPROVED', 'carol', '2030-01-01')",
                    (approval_id, run.id),
                )
        with psycopg.connect(people["carol"], autocommit=True) as carol:
            found = carol.execute(
                "SELECT airt_decide(%s, 'APPROVED', 'ok', '2030-01-01', '{\"x\": 1}')", (approval_id,)
            ).fetchone()
            assert found == ("partial",)
            with pytest.raises(psycopg.errors.UniqueViolation, match=r"approved approval .* already"):
                carol.execute("SELECT airt_decide(%s, 'APPROVED', NULL, '2030-01-01', NULL)", (approval_id,))
            # Escalation: whatever approvers the caller would like, the database adds the step's own.
            assert carol.execute("SELECT airt_escalate_approval(%s, '2030-01-01')", (approval_id,)).fetchone() == (
                None,  # not due yet by the server's clock
            )
        assert run.pending_approval is not None
        assert run.pending_approval.approved_count == 1
        assert run.status == "PAUSED"
        deadline = time.monotonic() + 15
        while run.pending_approval is not None and run.pending_approval.escalated_at is None:
            assert time.monotonic() < deadline, "the escalation never came"
            time.sleep(0.1)
        assert run.pending_approval.approver_list == ["alice", "carol", "bob"]
        with Engine(people["bob"], registry=Registry(), recover=False) as bobs:
            decided = bobs.approve(run.id, by="someone")
        assert (decided.status, decided.decided_by, decided.approved_count) == ("APPROVED", "bob", 2)
        assert run.wait(timeout=10) == "COMPLETED"
        rows = [(d.decided_by, d.auth) for d in run.decisions()]
        assert rows == [("carol", "database"), ("bob", "database")]
    finally:
        eng.close()


def test_a_fork_carries_an_approved_step_over_and_a_forged_one_is_refused(
    people: dict[str, str], tmp_path: Path
) -> None:
    """The trigger accepts an approval step completed by a decision of its run or of the run it was forked from
    (a fork carries the steps before its fork point, decisions included), and nothing else."""
    import psycopg

    eng, run = paused(people["alice"], gated("alice"), tmp_path)
    try:
        run.approve()
        assert run.wait(timeout=10) == "COMPLETED"
        fork = eng.fork(run.id, "after")
        # out/b.txt exists now, so the step the approval gates is asked for again in the fork; the fork's
        # own approval is decided through the database too.
        assert fork.wait(timeout=10) == "PAUSED"
        assert fork.pending_approval.step_name == "after"
        fork.approve()
        assert fork.wait(timeout=10) == "COMPLETED"
        assert {r[0]: r[1] for r in eng.store.query(
            "SELECT step_name, status FROM workflow_steps WHERE workflow_id = ?", (fork.id,)
        )}["review"] == "COMPLETED"  # fmt: skip
        other = eng.start(gated("alice"), workdir=tmp_path)
        assert other.wait(timeout=10) == "PAUSED"
        with (
            psycopg.connect(people["alice"], autocommit=True) as alice,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a recorded decision"),
        ):
            alice.execute(
                "UPDATE workflow_steps SET status = 'COMPLETED' WHERE workflow_id = %s AND step_name = 'review'",
                (other.id,),
            )
        other.cancel()
    finally:
        eng.close()


def test_a_role_of_ones_own_cannot_start_a_run_as_someone_else(people: dict[str, str], tmp_path: Path) -> None:
    # Who started a run is what exclude_requester checks: with a role of one's own it is proven, not claimed.
    spec = gated("alice", "bob").replace("approvers:", "exclude_requester: true\n    approvers:")
    with Engine(people["bob"], registry=Registry()) as eng:
        for kw in ({"user": "alice"}, {"as_user": "alice"}):
            with pytest.raises(airt_nb.PolicyError, match=r"this database knows you as 'bob'.*cannot change that"):
                eng.start(spec, workdir=tmp_path, **kw)
        assert airt_nb.runs(eng).empty  # nothing was written
        run = eng.start(spec, workdir=tmp_path, user="bob")  # naming oneself is fine
        assert run.wait(timeout=10) == "PAUSED"
        assert eng.store.workflow(run.id).started_by == "bob"
        with pytest.raises(airt_nb.PolicyError, match="started this workflow"):
            run.approve(reason="my own")


def test_as_on_a_role_of_ones_own_is_said_to_have_no_effect(
    people: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eng, run = paused(people["alice"], gated("alice", "bob"), tmp_path)
    eng.close()
    code = cli.main(["--db", people["bob"], "approve", run.id, "--as", "alice", "--reason", "fine"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "airt: --as alice has no effect here: this database knows you as bob" in err
    assert f"approved step 'review' of workflow {run.id} as bob: fine" in out


# -- what a member may no longer rewrite with plain SQL (migration 8) ----------------------------------------------

VALUES = """
name: valued
steps:
  - name: review
    type: human_approval
    message: "How many?"
    approvers: [bob]
    fields:
      replicas: {type: integer, default: 2, minimum: 1, maximum: 10}
  - name: after
    action: file.write
    inputs: {path: out/replicas.txt, content: "${{ steps.review.outputs.values.replicas }}"}
"""

PLAIN = """
name: plain
steps:
  - name: write
    action: file.write
    inputs: {path: out/plain.txt, content: hello}
"""


def owner_of_tables(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'approvals'").fetchone()
    assert found is not None
    return str(found[0])


def counts(url: str, workflow_id: str) -> tuple[int, int]:
    """How many approvals and decisions the run has on record."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM approvals WHERE workflow_id = %s), "
            "(SELECT count(*) FROM approval_decisions WHERE workflow_id = %s)",
            (workflow_id, workflow_id),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_member_cannot_erase_a_runs_decisions_by_deleting_the_run(
    people: dict[str, str], pg_db: str, tmp_path: Path
) -> None:
    """approvals cascade from workflows with the owner's rights: a member's DELETE of the run is refused."""
    import psycopg

    eng, run = paused(people["alice"], gated("bob"), tmp_path)
    try:
        with Engine(people["bob"], registry=Registry(), recover=False) as bobs:
            bobs.reject(run.id, reason="not this one")
        assert run.wait(timeout=10) == "ROLLED_BACK"
        pending = eng.start(gated("bob"), workdir=tmp_path)
        assert pending.wait(timeout=10) == "PAUSED"
        owner = owner_of_tables(pg_db)
        with psycopg.connect(people["alice"], autocommit=True) as alice:
            for workflow_id in (run.id, pending.id):
                with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                    alice.execute("DELETE FROM workflows WHERE workflow_id = %s", (workflow_id,))
                assert f"workflow {workflow_id} has decisions on record" in str(info.value)
                assert f"the owner of airt_nb's tables, {owner}, or a superuser" in str(info.value)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="has decisions on record"):
                alice.execute("DELETE FROM workflows")
        assert counts(pg_db, run.id) == (1, 1)
        assert run.approvals()[0].decided_by == "bob"
        pending.cancel()
        assert pending.wait(timeout=10) == "CANCELLED"
        # A fork carries the settled approval step over, not the approvals: the step is its record there.
        bobs_run = eng.start(gated("bob"), workdir=tmp_path)
        assert bobs_run.wait(timeout=10) == "PAUSED"
        with Engine(people["bob"], registry=Registry(), recover=False) as bobs:
            bobs.approve(bobs_run.id)
        assert bobs_run.wait(timeout=10) == "COMPLETED"
        (tmp_path / "out" / "b.txt").unlink()  # as when it was approved: the fork's gated step is not asked again
        fork = eng.fork(bobs_run.id, "after")
        assert fork.wait(timeout=10) == "COMPLETED"
        assert fork.approvals() == []
        plain = eng.start(PLAIN, workdir=tmp_path)
        assert plain.wait(timeout=10) == "COMPLETED"
        with psycopg.connect(people["alice"], autocommit=True) as alice:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="has decisions on record"):
                alice.execute("DELETE FROM workflows WHERE workflow_id = %s", (fork.id,))
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="settled by a decision"):
                alice.execute("DELETE FROM workflow_steps WHERE workflow_id = %s", (bobs_run.id,))
            # A run with no decision on record is the member's to delete, as before.
            assert alice.execute("DELETE FROM workflows WHERE workflow_id = %s", (plain.id,)).rowcount == 1
    finally:
        eng.close()
    with psycopg.connect(pg_db, autocommit=True) as owner_conn:  # the owner may: the cascade takes the decisions
        owner_conn.execute("DELETE FROM workflows WHERE workflow_id = %s", (run.id,))
    assert counts(pg_db, run.id) == (0, 0)


def test_a_member_cannot_change_who_started_a_run(people: dict[str, str], pg_db: str, tmp_path: Path) -> None:
    """exclude_requester reads workflows.started_by: once the run is inserted, a member cannot change it."""
    import psycopg

    spec = gated("alice", "bob").replace("approvers:", "exclude_requester: true\n    approvers:")
    eng, run = paused(people["alice"], spec, tmp_path)
    try:
        with psycopg.connect(people["alice"], autocommit=True) as alice:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                alice.execute("UPDATE workflows SET started_by = 'bob' WHERE workflow_id = %s", (run.id,))
            assert f"workflow {run.id}: who started it (alice)" in str(info.value)
            assert owner_of_tables(pg_db) in str(info.value)
            # Writing the same name again changes nothing, and is no refusal.
            alice.execute("UPDATE workflows SET started_by = started_by, updated_at = updated_at")
        assert eng.store.workflow(run.id).started_by == "alice"
        with pytest.raises(PolicyError, match="started this workflow"):
            run.approve(reason="my own")
        with Engine(people["bob"], registry=Registry(), recover=False) as bobs:
            assert bobs.approve(run.id).decided_by == "bob"
        assert run.wait(timeout=10) == "COMPLETED"
    finally:
        eng.close()


def test_a_member_cannot_rewrite_an_approval_step_a_decision_settled(people: dict[str, str], tmp_path: Path) -> None:
    """The approved values later steps read are the step's outputs: once decided, a member cannot change them
    (nor the step's status, name, run or type, nor delete it), and cannot make a step stop being an approval."""
    import psycopg

    eng, run = paused(people["alice"], VALUES, tmp_path)
    run_id = run.id
    eng.close()  # nobody runs it: between the decision and the next step, the window of the attack
    with Engine(people["bob"], registry=Registry(), recover=False) as bobs:
        bobs.approve(run_id, values={"replicas": 2}, reason="2 replicas, no more")
    where = "WHERE workflow_id = %s AND step_name = 'review'"
    with psycopg.connect(people["alice"], autocommit=True) as alice:
        (outputs,) = alice.execute(f"SELECT outputs FROM workflow_steps {where}", (run_id,)).fetchone()
        assert '"replicas": 2' in outputs
        for change in (
            "outputs = replace(outputs, '\"replicas\": 2', '\"replicas\": 5')",
            "inputs = '{}'",
            "status = 'WAITING'",
            "step_name = 'review2'",
            "workflow_id = workflow_id || 'x'",
            "error = 'rejected by nobody'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="settled by a decision"):
                alice.execute(f"UPDATE workflow_steps SET {change} {where}", (run_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="whether a step is an approval cannot change"):
            alice.execute(f"UPDATE workflow_steps SET type = 'action' {where}", (run_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="settled by a decision"):
            alice.execute(f"DELETE FROM workflow_steps {where}", (run_id,))
        # Nor may a step become an approval, or stop being one before it is decided.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="whether a step is an approval cannot change"):
            alice.execute(
                "UPDATE workflow_steps SET type = 'human_approval' WHERE workflow_id = %s AND step_name = 'after'",
                (run_id,),
            )
        # Writing the same values again is no change.
        alice.execute(f"UPDATE workflow_steps SET outputs = outputs, status = status {where}", (run_id,))
    with Engine(people["alice"], registry=Registry()) as eng:
        run = eng.get(run_id)
        assert run.wait(timeout=10) == "COMPLETED"
        assert run.outputs["review"]["values"] == {"replicas": 2}
    assert (tmp_path / "out" / "replicas.txt").read_text() == "2"
    eng, other = paused(people["alice"], VALUES, tmp_path)
    try:
        with (
            psycopg.connect(people["alice"], autocommit=True) as alice,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="whether a step is an approval"),
        ):
            alice.execute(f"UPDATE workflow_steps SET type = 'action' {where}", (other.id,))
        with Engine(people["bob"], registry=Registry(), recover=False) as bobs:
            bobs.reject(other.id, reason="no")
        assert other.wait(timeout=10) == "ROLLED_BACK"
        with (
            psycopg.connect(people["alice"], autocommit=True) as alice,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"settled by a decision \(REJECTED\)"),
        ):
            alice.execute(f"UPDATE workflow_steps SET status = 'COMPLETED' {where}", (other.id,))
    finally:
        eng.close()


def test_a_member_cannot_cancel_approvals_as_the_system_or_say_when(
    people: dict[str, str], pg_db: str, tmp_path: Path
) -> None:
    """airt_cancel_approvals records the calling role and the server's clock, whatever the call says."""
    import psycopg

    eng, run = paused(people["alice"], gated("alice"), tmp_path)
    try:
        requested_at = run.pending_approval.requested_at
        with psycopg.connect(people["bob"], autocommit=True) as bob:
            bob.execute(
                "SELECT airt_cancel_approvals(%s, '2020-01-01T00:00:00.000000+00:00', 'system', 'timed out')",
                (run.id,),
            )
        [cancelled] = run.approvals()
        assert (cancelled.status, cancelled.decided_by, cancelled.reason) == ("CANCELLED", "bob", "timed out")
        assert cancelled.decided_at >= requested_at
        run.cancel()
        assert run.wait(timeout=10) == "CANCELLED"
        # The owner may name anyone (it could write approvals itself), system included.
        other = eng.start(gated("alice"), workdir=tmp_path)
        assert other.wait(timeout=10) == "PAUSED"
        with psycopg.connect(pg_db, autocommit=True) as owner:
            owner.execute("SELECT airt_cancel_approvals(%s, NULL, 'system', 'workflow rolled back')", (other.id,))
        assert other.approvals()[0].decided_by == "system"
        other.cancel()
        assert other.wait(timeout=10) == "CANCELLED"
    finally:
        eng.close()


ROLLS_BACK = """
name: rolls-back
steps:
  - {name: first, action: file.write, inputs: {path: out/first.txt, content: hello}}
  - {name: review, type: human_approval, message: "ok?", depends_on: [first]}
  - {name: slow, action: slow, depends_on: [first]}
  - {name: fails, action: boom, depends_on: [slow]}
"""


@pytest.mark.parametrize("who", ["alice", "owner"])
def test_a_rollback_cancels_a_pending_approval_as_the_role_or_as_the_system(
    who: str, people: dict[str, str], pg_db: str, tmp_path: Path
) -> None:
    """The end of a rollback cancels what is still pending as `system` on the owner's role, as the member's
    own role on a role of one's own (the only name the database lets it record)."""
    registry = Registry()

    @registry.action("slow")
    def slow() -> dict:
        time.sleep(0.3)
        return {}

    @registry.action("boom")
    def boom() -> dict:
        raise RuntimeError("boom")

    url = people["alice"] if who == "alice" else pg_db
    with Engine(url, registry=registry, user="alice") as eng:
        run = eng.start(ROLLS_BACK, workdir=tmp_path)
        assert run.wait(timeout=10, until="done") == "FAILED"
        [approval] = run.approvals()
    expected = "alice" if who == "alice" else "system"
    assert (approval.status, approval.decided_by, approval.reason) == ("CANCELLED", expected, "workflow rolled back")


def test_a_member_cannot_say_when_a_decision_was_made_nor_decide_after_the_deadline(
    people: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """airt_decide times a decision by the server's clock, and after the deadline the timeout decides."""
    import psycopg

    import airt_nb.decisions
    import airt_nb.housekeeping

    eng, run = paused(people["alice"], gated("bob"), tmp_path)
    try:
        approval = run.pending_approval
        with psycopg.connect(people["bob"], autocommit=True) as bob:
            found = bob.execute(
                "SELECT airt_decide(%s, 'APPROVED', 'long ago', '2020-01-01T00:00:00.000000+00:00', NULL)",
                (approval.approval_id,),
            ).fetchone()
        assert found == ("final",)
        [decided] = run.approvals()
        [decision] = run.decisions()
        assert decided.decided_at >= approval.requested_at
        assert decision.decided_at == decided.decided_at
        run.cancel()
    finally:
        eng.close()
    spec = gated("bob").replace('message: "Ship it?"', 'message: "Ship it?"\n    timeout: 1s\n    on_timeout: reject')
    eng, run = paused(people["alice"], spec, tmp_path)
    run_id, approval = run.id, run.pending_approval
    eng.close()  # nobody runs it, so nobody applies the timeout when it is due
    assert approval.deadline is not None
    with psycopg.connect(people["bob"], autocommit=True) as bob:
        late = "SELECT %s < to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
        deadline = time.monotonic() + 10
        while not bob.execute(late, (approval.deadline,)).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="timed out at"):
            bob.execute(
                "SELECT airt_decide(%s, 'APPROVED', 'in time, honest', '2020-01-01T00:00:00.000000+00:00', NULL)",
                (approval.approval_id,),
            )
    # An engine whose clock is behind the server's is told the same, and records nothing: the timeout decides.
    monkeypatch.setattr(airt_nb.decisions, "now_iso", lambda: approval.requested_at)
    monkeypatch.setattr(airt_nb.housekeeping, "expire", lambda host, approval_id: None)
    with Engine(people["bob"], registry=Registry(), recover=False) as bobs:
        with pytest.raises(airt_nb.ApprovalError, match=r"timed out at .* by the database server's clock"):
            bobs.approve(run_id, reason="in time, honest")
        assert bobs.store.approvals(approval_id=approval.approval_id)[0].status == "PENDING"
        assert bobs.store.decisions(approval_id=approval.approval_id) == []
    monkeypatch.undo()
    with Engine(people["alice"], registry=Registry(), home_grace=0) as eng:
        assert eng.get(run_id).wait(timeout=10, until="done") == "ROLLED_BACK"
        [expired] = eng.get(run_id).approvals()
        assert (expired.status, expired.decided_by, expired.reason) == ("REJECTED", "system", "timed out")


@pytest.mark.parametrize("name", ["system", "System", " ann"])
def test_db_grant_refuses_a_name_the_engine_reserves(
    name: str, pg_server: PgServer, pg_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A role's decisions are recorded under its name: `system` would read as the engine's own."""
    try:
        assert cli.main(["--db", pg_db, "db", "grant", name]) == 1
        err = capsys.readouterr().err
        assert f"cannot set up role {name!r}" in err
        if name.strip().casefold() == "system":
            assert "is reserved for what the engine decides itself" in err
        with pg_server.connect() as admin:
            assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None
    finally:
        pg_server.drop_role(name, dbnames=(pg_db.rsplit("/", 1)[1],))


@pytest.fixture
def owned(pg_server: PgServer, pg_url: str, pg_role: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> Any:
    """A database whose tables `keeper` owns (not a superuser; CREATEROLE for db grant), and `erin`, whom
    keeper's `db grant` made a member of the group `keeper_users`."""
    from psycopg import sql

    dbname = pg_url.rsplit("/", 1)[1]
    keeper, erin = pg_role("keeper"), pg_role("erin")
    with pg_server.connect() as admin:
        admin.execute("ALTER ROLE keeper CREATEROLE")
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO keeper").format(sql.Identifier(dbname)))
    try:
        Engine(keeper, registry=Registry(), recover=False).close()  # migrates: keeper owns the tables
        assert cli.main(["--db", keeper, "db", "grant", "erin", "--group", "keeper_users"]) == 0
        capsys.readouterr()
        yield {"keeper": keeper, "erin": erin}
    finally:
        pg_server.drop_role("keeper_users", dbnames=(dbname,))
        with pg_server.connect() as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier("postgres"))
            )


def test_the_owner_of_the_tables_still_writes_what_members_may_not(owned: dict[str, str], tmp_path: Path) -> None:
    """A role that may write approvals (here a plain owner, no superuser) decides, cancels, repairs and deletes as
    before; a member of its group meets the new refusals, which name the owner."""
    import psycopg

    eng, run = paused(owned["erin"], VALUES.replace("[bob]", "[erin, kim]"), tmp_path)
    try:
        assert eng.store.authenticated_user == "erin"
        assert run.approve(values={"replicas": 3}).decided_by == "erin"
        assert run.wait(timeout=10) == "COMPLETED"
        with (
            psycopg.connect(owned["erin"], autocommit=True) as erin,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"owner of airt_nb's tables, keeper,"),
        ):
            erin.execute("DELETE FROM workflows WHERE workflow_id = %s", (run.id,))
    finally:
        eng.close()
    with Engine(owned["keeper"], registry=Registry(), user="kim") as eng:
        assert eng.store.authenticated_user is None
        mine = eng.start(VALUES.replace("[bob]", "[kim]"), workdir=tmp_path)
        assert mine.wait(timeout=10) == "PAUSED"
        assert (mine.approve(by="kim", values={"replicas": 4}).auth, mine.wait(timeout=10)) == ("asserted", "COMPLETED")
        cancelled = eng.start(VALUES.replace("[bob]", "[kim]"), workdir=tmp_path)
        assert cancelled.wait(timeout=10) == "PAUSED"
        cancelled.cancel()
        assert cancelled.wait(timeout=10) == "CANCELLED"
        assert cancelled.approvals()[0].decided_by == "kim"
    with psycopg.connect(owned["keeper"], autocommit=True) as keeper:
        keeper.execute("UPDATE workflows SET started_by = 'someone' WHERE workflow_id = %s", (mine.id,))
        keeper.execute(
            "UPDATE workflow_steps SET outputs = outputs || ' ' WHERE workflow_id = %s AND step_name = 'review'",
            (mine.id,),
        )
        assert keeper.execute("DELETE FROM workflows WHERE workflow_id = %s", (run.id,)).rowcount == 1
        assert keeper.execute(
            "SELECT count(*) FROM approval_decisions WHERE workflow_id = %s", (run.id,)
        ).fetchone() == (0,)


def test_a_role_named_system_made_by_hand_cannot_decide_nor_cancel(
    people: dict[str, str], pg_server: PgServer, pg_db: str, tmp_path: Path
) -> None:
    """`db grant` refuses the name; a role given it some other way is refused by the functions themselves."""
    import psycopg
    from psycopg import sql

    dbname = pg_db.rsplit("/", 1)[1]
    with pg_server.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'sys-pw'").format(sql.Identifier("system")))
        admin.execute("GRANT airt_users TO system")
    try:
        eng, run = paused(people["alice"], gated("alice", "airt_users"), tmp_path)  # the group: system is in it
        try:
            approval_id = run.pending_approval.approval_id
            with psycopg.connect(pg_server.url(dbname, user="system", password="sys-pw"), autocommit=True) as system:
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="the name system is reserved"):
                    system.execute(
                        "SELECT airt_decide(%s, 'APPROVED', 'timed out', '2030-01-01', NULL)", (approval_id,)
                    )
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="the name system is reserved"):
                    system.execute("SELECT airt_cancel_approvals(%s, NULL, 'system', 'timed out')", (run.id,))
            assert run.pending_approval is not None
            run.cancel()
        finally:
            eng.close()
    finally:
        pg_server.drop_role("system", dbnames=(dbname,))
