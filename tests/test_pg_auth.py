"""Authenticated decisions: people connect to PostgreSQL with roles of their own.

``airt db grant`` gives a login role the group's privileges; an engine on such
a role records every decision under the server's ``session_user`` (whatever
``by=`` says), through the SECURITY DEFINER functions of migration 7, which
apply the approval's rules again (approvers, exclude_requester, one approval
per person, N of M); direct writes to ``approvals`` and ``approval_decisions``
are refused, and an approval step cannot be completed without a recorded
decision (of its run, or of the run it was forked from).
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
