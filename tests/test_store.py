"""The SQLite store: pragmas, migrations, group commit and isolation of failed ops."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from airt_nb.store import SQLiteStore
from airt_nb.store.migrations import LATEST, MIGRATIONS
from airt_nb.store.sqlite import _split_sql


def test_empty_file_is_migrated_to_the_latest_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    try:
        assert store.schema_version == LATEST
        tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"workflows", "workflow_steps", "compensation_log", "approvals", "step_attempts"} <= tables
        assert store.query("SELECT value FROM airt_meta WHERE key = 'schema_version'") == [(str(LATEST),)]
        assert store.query("PRAGMA journal_mode") == [("wal",)]
        assert store.query("PRAGMA foreign_keys") == [(1,)]
    finally:
        store.close()


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "a.db").close()
    before = sqlite3.connect(tmp_path / "a.db").execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    SQLiteStore(tmp_path / "a.db").close()
    after = sqlite3.connect(tmp_path / "a.db").execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert before == after


def test_an_older_database_upgrades_with_its_data_intact(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    first = MIGRATIONS[0]
    for statement in _split_sql(first.sqlite):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {first.number}")
    conn.execute(
        "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, total_steps) "
        "VALUES ('w1', 'old', 'COMPLETED', '{}', 'h', '{}', '2026-01-01T00:00:00.000000+00:00', "
        "'2026-01-01T00:00:00.000000+00:00', 0)"
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version == LATEST
        record = store.workflow("w1")
        assert record is not None
        assert (record.name, record.status) == ("old", "COMPLETED")
    finally:
        store.close()


def test_a_version_3_database_keeps_its_runs_steps_attempts_and_deliveries(tmp_path: Path) -> None:
    """Migration 4 rebuilds three tables: every row, its order and its links survive."""
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path)
    for m in MIGRATIONS[:3]:
        for statement in _split_sql(m.sqlite):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    t = "2026-01-01T00:00:00.000000+00:00"
    conn.execute(
        "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, "
        "total_steps, done_steps, lease_owner, lease_expires) VALUES ('w1', 'old', 'RUNNING', '', 'h', '{}', ?, ?, "
        "3, 1, 'host|1|2|abcd', ?)",
        (t, t, t),
    )
    for i, name in enumerate(["s10", "s2", "s1"]):  # position order differs from name order
        status = "COMPLETED" if i == 0 else "PENDING"
        conn.execute(
            "INSERT INTO workflow_steps (workflow_id, step_name, position, type, action, status, attempt, outputs) "
            "VALUES ('w1', ?, ?, 'action', 'wait', ?, ?, ?)",
            (name, i, status, 1 if i == 0 else 0, '{"waited": 0}' if i == 0 else None),
        )
    conn.execute(
        "INSERT INTO step_attempts (workflow_id, step_name, attempt, status, started_at, finished_at, error) "
        "VALUES ('w1', 's10', 1, 'FAILED', ?, ?, 'boom')",
        (t, t),
    )
    for i, event in enumerate(["approval.requested", "approval.approved"]):
        conn.execute(
            "INSERT INTO webhook_deliveries (delivery_id, approval_id, workflow_id, event, payload, status, "
            "created_at, url) VALUES (?, 'a1', 'w1', ?, '{}', 'DELIVERED', ?, 'http://x')",
            (f"d{i}", event, t),
        )
        conn.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, finished_at, outcome) "
            "VALUES (?, 1, ?, ?, 'DELIVERED')",
            (f"d{i}", t, t),
        )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version == LATEST
        steps = store.steps("w1")
        assert [s.step_name for s in steps] == ["s10", "s2", "s1"]
        assert [s.step_id for s in steps] == sorted(s.step_id for s in steps)
        assert steps[0].step_id > 0
        assert steps[0].outputs == '{"waited": 0}'
        assert steps[0].status == "COMPLETED"
        assert store.attempts("w1")[0][:7] == ("w1", "s10", 1, "FAILED", t, t, "boom")
        assert [d.event for d in store.deliveries(workflow_id="w1")] == ["approval.requested", "approval.approved"]
        assert [a[0] for a in store.delivery_attempts("d1")] == [1]  # the rebuild cascaded nothing away
        record = store.workflow("w1")
        assert record is not None
        # Leases belong to engines now: the old lease is free, its holder stays the workflow's home.
        assert (record.lease_owner, record.home) == (None, "host|1|2|abcd")
    finally:
        store.close()


def test_a_version_4_database_keeps_its_decisions_as_one_row_each(tmp_path: Path) -> None:
    """Migration 5 adds the individual decisions: each decision made before becomes one of them."""
    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path)
    for m in MIGRATIONS[:4]:
        for statement in _split_sql(m.sqlite):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    t = "2026-01-01T00:00:00.000000+00:00"
    conn.execute(
        "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, "
        "total_steps) VALUES ('w1', 'old', 'COMPLETED', '', 'h', '{}', ?, ?, 3)",
        (t, t),
    )
    for approval_id, status, by in (("a1", "APPROVED", "ann"), ("a2", "REJECTED", "bob"), ("a3", "PENDING", None)):
        conn.execute(
            "INSERT INTO approvals (approval_id, workflow_id, step_name, status, requested_at, decided_at, "
            "decided_by, reason, auth) VALUES (?, 'w1', 'review', ?, ?, ?, ?, 'why', 'asserted')",
            (approval_id, status, t, t if by else None, by),
        )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version == LATEST
        decided = [(d.approval_id, d.decision, d.decided_by, d.reason, d.auth) for d in store.decisions()]
        assert decided == [("a1", "APPROVED", "ann", "why", "asserted"), ("a2", "REJECTED", "bob", "why", "asserted")]
        approvals = {a.approval_id: a for a in store.approvals()}
        assert [(a.approved_count, a.min_approvals) for a in approvals.values()] == [(1, 1), (0, 1), (0, 1)]
        assert approvals["a3"].field_specs == {}
        assert approvals["a3"].preview_data == {}
    finally:
        store.close()


def test_a_new_database_file_is_private(tmp_path: Path) -> None:
    import os
    import stat

    store = SQLiteStore(tmp_path / "a.db")
    try:
        store.write(lambda tx: tx.announce_work())  # the -wal and -shm files exist once something is written
        for name in ("a.db", "a.db-wal", "a.db-shm"):
            mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
            assert mode == 0o600, f"{name} is {oct(mode)}"
    finally:
        store.close()


def test_migrations_are_numbered_in_order() -> None:
    numbers = [m.number for m in MIGRATIONS]
    assert numbers == list(range(1, len(MIGRATIONS) + 1))


def test_a_failing_op_in_a_batch_does_not_undo_the_others(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    barrier = threading.Barrier(8)
    results: list[str] = []

    def writer(i: int) -> None:
        barrier.wait()

        def op(tx):
            tx._c.execute("INSERT INTO airt_meta (key, value) VALUES (?, ?)", (f"k{i}", "v"))
            if i % 2:
                raise ValueError(f"op {i} fails")

        try:
            store.write(op)
            results.append(f"ok {i}")
        except ValueError:
            results.append(f"failed {i}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = {r[0] for r in store.query("SELECT key FROM airt_meta WHERE key LIKE 'k%'")}
    assert keys == {"k0", "k2", "k4", "k6"}
    assert sorted(results) == sorted([f"ok {i}" for i in range(0, 8, 2)] + [f"failed {i}" for i in range(1, 8, 2)])
    store.close()


def test_readers_do_not_wait_for_an_open_write_transaction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO airt_meta (key, value) VALUES ('x', 'y')")
    try:
        assert store.query("SELECT COUNT(*) FROM workflows") == [(0,)]
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()


def test_in_memory_database_is_refused_with_a_reason() -> None:
    from airt_nb import StoreError

    with pytest.raises(StoreError, match="in-memory database cannot be shared"):
        SQLiteStore(":memory:")


def test_a_thread_that_ends_leaves_no_read_connection_behind(tmp_path: Path) -> None:
    import gc

    store = SQLiteStore(tmp_path / "a.db")
    try:
        for _ in range(20):
            t = threading.Thread(target=lambda: store.query("SELECT COUNT(*) FROM workflows"))
            t.start()
            t.join()
        gc.collect()
        assert len(store._readers) <= 1
    finally:
        store.close()


def test_both_dialects_reach_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    """Each migration has a SQLite and a PostgreSQL text: applied in full, they give one schema."""
    from airt_nb.store.postgres import PostgresStore

    lite = SQLiteStore(tmp_path / "a.db")
    pg = PostgresStore(pg_url)
    try:
        tables = [r[0] for r in lite.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        tables = [t for t in tables if not t.startswith("sqlite_")]
        sqlite_schema = {t: sorted(r[1] for r in lite.query(f'PRAGMA table_info("{t}")')) for t in tables}
        rows = pg.query(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "ORDER BY table_name, column_name"
        )
        pg_schema: dict[str, list[str]] = {}
        for table, column in rows:
            pg_schema.setdefault(table, []).append(column)
        assert pg_schema == sqlite_schema
        assert pg.schema_version == lite.schema_version == LATEST
    finally:
        lite.close()
        pg.close()


def _one_step_workflow(store: SQLiteStore, owner: str) -> int:
    def op(tx):
        tx._c.execute(
            "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, "
            "total_steps, lease_owner) VALUES ('w1', 'w', 'RUNNING', '{}', 'h', '{}', 't', 't', 1, ?)",
            (owner,),
        )
        return tx.insert_steps("w1", [("a", 0, "action", "noop")], {"a": "t"})[0]

    return store.write(op)


def _completion(step_id: int, owner: str):
    from airt_nb.store.base import Completion

    return Completion("w1", owner, step_id, 1, "t0", "t1", "{}", '{"n": 1}', "f")


def test_a_lone_completion_commits_by_itself_before_complete_returns(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    step_id = _one_step_workflow(store, "me")
    other = sqlite3.connect(tmp_path / "a.db")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    try:
        assert store.complete(_completion(step_id, "me")) is None
        store._conn.set_trace_callback(None)
        assert [s.split()[0] for s in statements] == ["UPDATE"]  # no BEGIN, no COMMIT: one statement
        # Seen by another connection at once: committed, and no transaction left open on the writer.
        assert other.execute("SELECT status, outputs FROM workflow_steps WHERE step_id = ?", (step_id,)).fetchall() == [
            ("COMPLETED", '{"n": 1}')
        ]
        assert not store._conn.in_transaction
        other.execute("BEGIN IMMEDIATE")  # the write lock is free
        other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


def test_a_lone_completion_of_a_workflow_held_by_another_engine_writes_nothing(tmp_path: Path) -> None:
    from airt_nb.store.base import LeaseLostError

    store = SQLiteStore(tmp_path / "a.db")
    step_id = _one_step_workflow(store, "someone-else")
    try:
        with pytest.raises(LeaseLostError):
            store.complete(_completion(step_id, "me"))
        assert store.query("SELECT status FROM workflow_steps WHERE step_id = ?", (step_id,)) == [("RUNNING",)]
        assert not store._conn.in_transaction
    finally:
        store.close()


def test_a_lone_completion_waits_for_another_process_holding_the_write_lock(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db", busy_timeout=5)
    step_id = _one_step_workflow(store, "me")
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
    released.start()
    try:
        assert store.complete(_completion(step_id, "me")) is None
        assert store.query("SELECT status FROM workflow_steps WHERE step_id = ?", (step_id,)) == [("COMPLETED",)]
    finally:
        released.join()
        other.close()
        store.close()


def test_a_completion_that_fails_in_a_batch_leaves_the_others_written(tmp_path: Path) -> None:
    from airt_nb.store.base import LeaseLostError

    store = SQLiteStore(tmp_path / "a.db")
    step_id = _one_step_workflow(store, "me")
    gate, started = threading.Event(), threading.Event()

    def hold(tx):  # keeps the writer busy so that the next writes queue up and commit as one batch
        started.set()
        gate.wait(5)
        tx._c.execute("INSERT INTO airt_meta (key, value) VALUES ('held', 'x')")

    results: dict[str, object] = {}

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as exc:  # recorded for the assertions
            results[name] = exc

    holder = threading.Thread(target=run, args=("hold", lambda: store.write(hold)))
    holder.start()
    started.wait(5)
    lost = threading.Thread(target=run, args=("lost", lambda: store.complete(_completion(step_id, "not-me"))))
    ok = threading.Thread(target=run, args=("ok", lambda: store.complete(_completion(step_id, "me"))))
    other = threading.Thread(target=run, args=("other", lambda: store.write(lambda tx: tx._c.execute(
        "INSERT INTO airt_meta (key, value) VALUES ('other', 'y')"))))  # fmt: skip
    for t in (lost, ok, other):
        t.start()
    time.sleep(0.3)  # all three queued behind the holder
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    gate.set()
    for t in (holder, lost, ok, other):
        t.join()
    store._conn.set_trace_callback(None)
    try:
        # One batch of three: only the op that is not a single statement has a savepoint of its own.
        assert sum(1 for s in statements if s.startswith("SAVEPOINT")) == 1
        assert isinstance(results["lost"], LeaseLostError)
        assert results["ok"] is None
        assert store.query("SELECT status FROM workflow_steps WHERE step_id = ?", (step_id,)) == [("COMPLETED",)]
        assert {r[0] for r in store.query("SELECT key FROM airt_meta WHERE key IN ('held', 'other')")} == {
            "held",
            "other",
        }
    finally:
        store.close()
