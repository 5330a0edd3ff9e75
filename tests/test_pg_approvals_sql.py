"""The SQL of approvals worth trusting runs on PostgreSQL as written: migration 5's PostgreSQL text, and
every statement it added to the shared writes and reads, on a real server (placeholders translated as
the PostgreSQL store translates them)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from conftest import IN_CI

from airt_nb.store.base import to_pyformat
from airt_nb.store.migrations import MIGRATIONS
from airt_nb.store.reads import Reads
from airt_nb.store.writes import Tx

psycopg = importlib.import_module("psycopg") if IN_CI else pytest.importorskip("psycopg")

T = "2026-01-01T00:00:00.000000+00:00"


class _Cursor:
    """A psycopg cursor that takes the shared SQL's ``?`` / ``:name`` placeholders."""

    def __init__(self, cursor: Any):
        self._c = cursor

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self._c.execute(to_pyformat(sql), params)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self._c.executemany(to_pyformat(sql), rows)


class _Reads(Reads):
    dialect = "postgresql"
    path = "pg"

    def __init__(self, conn: Any):
        self._conn = conn

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(to_pyformat(sql), params)
            return cur.fetchall()


@pytest.fixture
def conn(pg_url: str) -> Iterator[Any]:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        for migration in MIGRATIONS:
            with connection.transaction(), connection.cursor() as cur:
                cur.execute(migration.postgres)
        yield connection


def write(conn: Any, op: Any) -> Any:
    with conn.transaction(), conn.cursor() as cur:
        return op(Tx(_Cursor(cur), "postgresql"))


def test_migration_5_and_the_approval_statements_run_on_postgresql(conn: Any) -> None:
    def setup(tx: Tx) -> None:
        tx.insert_workflow(
            {"workflow_id": "w1", "name": "w", "status": "PAUSED", "spec": "{}", "spec_hash": "h", "inputs": "{}",
             "created_at": T, "updated_at": T, "started_by": "sam", "total_steps": 2, "lease_owner": None,
             "workdir": "/tmp", "session": "s"}
        )  # fmt: skip
        tx.insert_steps("w1", [("review", 0, "human_approval", None), ("go", 1, "action", "wait")])
        tx.insert_approval(
            {"approval_id": "a1", "workflow_id": "w1", "step_name": "review", "message": "go?", "context": "{}",
             "approvers": '["ann"]', "requested_at": T, "deadline": None, "on_timeout": "reject",
             "fields": json.dumps({"n": {"type": "integer", "required": True}}), "min_approvals": 2,
             "exclude_requester": True, "authenticated": True, "preview": '{"steps": []}', "preview_hash": "p",
             "remind_every": 1.5, "next_reminder_at": T, "escalate_at": T, "escalate_to": '["lead"]'}
        )  # fmt: skip

    write(conn, setup)
    reads = _Reads(conn)
    assert sorted(reads.approval_timers()) == [("a1", "escalate", T), ("a1", "remind", T)]

    def first(tx: Tx) -> None:
        locked = tx.lock_approval("a1")
        assert locked is not None
        assert (locked.min_approvals, locked.exclude_requester, locked.authenticated) == (2, 1, 1)
        assert locked.remind_every == 1.5
        tx.insert_decision({"approval_id": "a1", "workflow_id": "w1", "step_name": "review", "decision": "APPROVED",
                            "decided_by": "ann", "decided_at": T, "reason": "ok", "field_values": '{"n": 3}',
                            "auth": "jupyter", "preview_hash": "p"})  # fmt: skip
        assert tx.count_approval("a1", 1, '{"n": 3}')
        assert [d.decided_by for d in tx.decisions_of("a1")] == ["ann"]
        assert tx.remind_approval("a1", T, "2026-01-01T00:01:00.000000+00:00")
        assert not tx.remind_approval("a1", T, "2026-01-01T00:02:00.000000+00:00")  # once
        assert tx.escalate_approval("a1", '["ann", "lead"]', T)
        assert not tx.escalate_approval("a1", '["ann", "lead"]', T)

    write(conn, first)
    with pytest.raises(psycopg.errors.UniqueViolation):  # one approval per person, also in the database
        write(conn, lambda tx: tx.insert_decision(
            {"approval_id": "a1", "workflow_id": "w1", "step_name": "review", "decision": "APPROVED",
             "decided_by": "ann", "decided_at": T}
        ))  # fmt: skip

    def final(tx: Tx) -> None:
        assert tx.decide_approval("a1", "APPROVED", "bob", None, T, "jupyterhub", values='{"n": 3}', approved_count=2)
        tx.skip_step("w1", "go", T)

    write(conn, final)
    (approval,) = reads.approvals(workflow_id="w1")
    assert (approval.status, approval.approved_count, approval.values, approval.reminders) == (
        "APPROVED", 2, {"n": 3}, 1,
    )  # fmt: skip
    assert approval.approver_list == ["ann", "lead"]
    assert [d.decided_by for d in reads.decisions(workflow_id="w1")] == ["ann"]
    assert reads.approval_timers() == []
    assert {s.step_name: s.status for s in reads.steps("w1")} == {"review": "PENDING", "go": "SKIPPED"}
    (step,) = [s for s in reads.steps("w1") if s.step_name == "review"]
    write(conn, lambda tx: tx.hold_step(step.step_id, 0))
    assert {s.step_name: s.status for s in reads.steps("w1")}["review"] == "WAITING"


def test_a_decided_approval_becomes_one_decision_when_postgresql_migrates(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        for migration in MIGRATIONS[:4]:
            with connection.transaction(), connection.cursor() as cur:
                cur.execute(migration.postgres)
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, "
                "total_steps) VALUES ('w1', 'w', 'COMPLETED', '', 'h', '{}', %s, %s, 1)",
                (T, T),
            )
            cur.execute(
                "INSERT INTO approvals (approval_id, workflow_id, step_name, status, requested_at, decided_at, "
                "decided_by, reason) VALUES ('a1', 'w1', 'review', 'APPROVED', %s, %s, 'ann', 'ok')",
                (T, T),
            )
        with connection.transaction(), connection.cursor() as cur:
            cur.execute(MIGRATIONS[4].postgres)
        reads = _Reads(connection)
        assert [(d.decided_by, d.decision, d.reason) for d in reads.decisions()] == [("ann", "APPROVED", "ok")]
        assert reads.approvals()[0].approved_count == 1


def test_migration_8_applies_to_a_database_with_decided_runs(pg_url: str) -> None:
    """Migration 8 replaces migration 7's functions and trigger in place: a database with runs on it upgrades,
    and for its owner (who may write approvals) nothing changes."""
    with psycopg.connect(pg_url, autocommit=True) as connection:
        for migration in MIGRATIONS[:7]:
            with connection.transaction(), connection.cursor() as cur:
                cur.execute(migration.postgres)
        with connection.transaction(), connection.cursor() as cur:
            cur.execute(
                "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, "
                "total_steps, started_by) VALUES ('w1', 'w', 'COMPLETED', '', 'h', '{}', %s, %s, 1, 'sam')",
                (T, T),
            )
            cur.execute(
                "INSERT INTO approvals (approval_id, workflow_id, step_name, status, requested_at, decided_at, "
                "decided_by) VALUES ('a1', 'w1', 'review', 'APPROVED', %s, %s, 'ann')",
                (T, T),
            )
            cur.execute(
                "INSERT INTO workflow_steps (workflow_id, step_name, position, type, status, outputs) "
                "VALUES ('w1', 'review', 0, 'human_approval', 'COMPLETED', '{\"values\": {}}')"
            )
        with connection.transaction(), connection.cursor() as cur:
            cur.execute(MIGRATIONS[7].postgres)
        triggers = {r[0] for r in connection.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        assert triggers == {
            "airt_decided_steps", "airt_approval_steps_kept", "airt_approval_steps_new", "airt_kept_runs",
            "airt_kept_requesters",
        }  # fmt: skip
        connection.execute("UPDATE workflows SET started_by = 'ann' WHERE workflow_id = 'w1'")
        connection.execute("UPDATE workflow_steps SET outputs = '{}' WHERE workflow_id = 'w1'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a recorded decision completes it"):
            connection.execute("UPDATE workflow_steps SET step_name = 'other' WHERE workflow_id = 'w1'")
        connection.execute("DELETE FROM workflows WHERE workflow_id = 'w1'")
        assert connection.execute("SELECT count(*) FROM approvals").fetchone() == (0,)
