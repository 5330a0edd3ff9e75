"""SQLite storage: every SQL statement airt_nb runs against SQLite.

One write connection, shared by all threads, with **group commit**: a thread
that wants to write queues a function ``op(tx)``; whoever finds no commit in
progress becomes the leader, runs every queued op in one ``BEGIN IMMEDIATE``
transaction (each in its own SAVEPOINT, so one op's failure does not undo the
others), commits once, and hands the results back.  Alone, a writer pays
exactly one commit and no thread hand-off; under load, many checkpoints share
one fsync.

Readers use one connection per thread; in WAL mode they never block the
writer nor wait for it.

Never call user code or HTTP inside an op: ops run while the write lock is held.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from .migrations import LATEST, MIGRATIONS
from .records import (
    ApprovalRecord,
    CompensationRecord,
    DeliveryRecord,
    StepRecord,
    WorkflowRecord,
)

__all__ = ["LeaseLostError", "SQLiteStore", "Tx"]

T = TypeVar("T")

# Rows written since migration 3 keep their spec in workflow_specs (see migrations.py).
_SPEC = (
    "CASE WHEN spec <> '' THEN spec ELSE "
    "(SELECT s.spec FROM workflow_specs s WHERE s.spec_hash = workflows.spec_hash) END"
)
_WF_COLS = (
    f"workflow_id, name, status, {_SPEC}, spec_hash, inputs, created_at, updated_at, finished_at, error, "
    "started_by, total_steps, done_steps, lease_owner, lease_expires, requested, waiting_for, warnings"
)
_STEP_COLS = (
    "workflow_id, step_name, position, type, action, status, attempt, started_at, finished_at, "
    "next_attempt_at, inputs, outputs, error, fingerprint, state"
)
_COMP_COLS = (
    "compensation_id, workflow_id, step_name, action, inputs, outputs, state, status, attempts, "
    "created_at, executed_at, error"
)
_APPROVAL_COLS = (
    "approval_id, workflow_id, step_name, status, message, context, approvers, requested_at, deadline, "
    "on_timeout, decided_at, decided_by, reason"
)
_DELIVERY_COLS = (
    "delivery_id, approval_id, workflow_id, event, payload, status, attempts, created_at, next_attempt_at, "
    "last_attempt_at, last_status, last_error, delivered_at, url"
)
ACTIVE = ("RUNNING", "ROLLING_BACK")


class LeaseLostError(Exception):
    """Raised inside an op when this engine no longer owns the workflow it writes."""


class _Reader:
    """One thread's read connection: closed when that thread ends (its thread-local goes away)
    or when the store closes, so threads that come and go do not pile up connections."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def __del__(self) -> None:
        self.close()


class _Pending:
    __slots__ = ("done", "error", "op", "result")

    def __init__(self, op: Callable[[Tx], Any]):
        self.op = op
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class Tx:
    """The statements a write op may run; every one of them is here, parameterised."""

    __slots__ = ("_c",)

    def __init__(self, conn: sqlite3.Connection):
        self._c = conn

    # -- workflows -------------------------------------------------------------------

    def insert_workflow(self, row: dict[str, Any]) -> None:
        """Insert a workflow; its spec is stored once per ``spec_hash``, not in the row."""
        self._c.execute(
            "INSERT OR IGNORE INTO workflow_specs (spec_hash, spec) VALUES (:spec_hash, :spec)",
            row,
        )
        self._c.execute(
            "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, "
            "updated_at, started_by, total_steps, lease_owner, lease_expires) "
            "VALUES (:workflow_id, :name, :status, '', :spec_hash, :inputs, :created_at, :updated_at, "
            ":started_by, :total_steps, :lease_owner, :lease_expires)",
            row,
        )

    def touch(self, workflow_id: str, owner: str, now: str, done_delta: int = 0) -> None:
        """Bump ``updated_at`` if ``owner`` still holds the lease; else raise LeaseLostError."""
        cur = self._c.execute(
            "UPDATE workflows SET updated_at = ?, done_steps = done_steps + ? "
            "WHERE workflow_id = ? AND lease_owner = ?",
            (now, done_delta, workflow_id, owner),
        )
        if cur.rowcount != 1:
            raise LeaseLostError(workflow_id)

    def set_status(
        self,
        workflow_id: str,
        status: str,
        now: str,
        *,
        owner: str | None = None,
        error: str | None = None,
        finished: bool = False,
        release: bool = False,
        new_owner: str | None = None,
        lease_expires: str | None = None,
    ) -> None:
        """Change a workflow's status (fenced on ``owner`` when given)."""
        params: dict[str, Any] = {
            "wf": workflow_id,
            "status": status,
            "now": now,
            "error": error,
            "finished": now if finished else None,
            "owner": owner,
            "release": 1 if release else 0,
            "new_owner": new_owner,
            "expires": lease_expires,
        }
        cur = self._c.execute(
            "UPDATE workflows SET status = :status, updated_at = :now, "
            "error = COALESCE(:error, error), finished_at = :finished, "
            "requested = CASE WHEN :finished IS NOT NULL THEN NULL ELSE requested END, "
            "lease_owner = CASE WHEN :release THEN NULL WHEN :new_owner IS NOT NULL THEN :new_owner "
            "ELSE lease_owner END, "
            "lease_expires = CASE WHEN :release THEN NULL WHEN :new_owner IS NOT NULL THEN :expires "
            "ELSE lease_expires END, "
            "waiting_for = NULL "
            "WHERE workflow_id = :wf AND (:owner IS NULL OR lease_owner = :owner)",
            params,
        )
        if cur.rowcount != 1:
            raise LeaseLostError(workflow_id)

    def bump_done(self, workflow_id: str, count: int = 1) -> None:
        self._c.execute("UPDATE workflows SET done_steps = done_steps + ? WHERE workflow_id = ?", (count, workflow_id))

    def clear_error(self, workflow_id: str) -> None:
        self._c.execute("UPDATE workflows SET error = NULL WHERE workflow_id = ?", (workflow_id,))

    def claim(self, workflow_id: str, owner: str, expires: str, now: str, takeover: Sequence[str] = ()) -> bool:
        """Take the lease if it is free, expired, or held by one of the ``takeover`` owners."""
        marks = ",".join("?" * len(takeover)) or "NULL"
        cur = self._c.execute(
            "UPDATE workflows SET lease_owner = ?, lease_expires = ?, updated_at = ?, waiting_for = NULL "
            "WHERE workflow_id = ? AND status IN ('RUNNING', 'ROLLING_BACK') "
            f"AND (lease_owner IS NULL OR lease_expires < ? OR lease_owner IN ({marks}))",
            (owner, expires, now, workflow_id, now, *takeover),
        )
        return cur.rowcount == 1

    def renew(self, owner: str, expires: str) -> int:
        return self._c.execute(
            "UPDATE workflows SET lease_expires = ? WHERE lease_owner = ?", (expires, owner)
        ).rowcount

    def release_all(self, owner: str) -> int:
        return self._c.execute(
            "UPDATE workflows SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?", (owner,)
        ).rowcount

    def release(self, workflow_id: str, owner: str, *, waiting_for: str | None = None) -> None:
        self._c.execute(
            "UPDATE workflows SET lease_owner = NULL, lease_expires = NULL, waiting_for = ? "
            "WHERE workflow_id = ? AND lease_owner = ?",
            (waiting_for, workflow_id, owner),
        )

    def set_waiting_for(self, workflow_id: str, waiting_for: str | None) -> None:
        self._c.execute("UPDATE workflows SET waiting_for = ? WHERE workflow_id = ?", (waiting_for, workflow_id))

    def request(self, workflow_id: str, kind: str) -> None:
        """Ask the owner of a running workflow to cancel, roll back, or re-read (``wake``)."""
        self._c.execute(
            "UPDATE workflows SET requested = CASE WHEN ? = 'wake' AND requested IN ('cancel', 'rollback') "
            "THEN requested ELSE ? END WHERE workflow_id = ?",
            (kind, kind, workflow_id),
        )

    def clear_request(self, workflow_id: str) -> None:
        self._c.execute("UPDATE workflows SET requested = NULL WHERE workflow_id = ?", (workflow_id,))

    def add_warning(self, workflow_id: str, warning: str) -> None:
        row = self._c.execute("SELECT warnings FROM workflows WHERE workflow_id = ?", (workflow_id,)).fetchone()
        warnings = json.loads(row[0]) if row and row[0] else []
        if warning not in warnings:
            warnings.append(warning)
            self._c.execute(
                "UPDATE workflows SET warnings = ? WHERE workflow_id = ?", (json.dumps(warnings), workflow_id)
            )

    # -- steps --------------------------------------------------------------------------

    def insert_steps(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows of (workflow_id, step_name, position, type, action, status, attempt, started_at)."""
        self._c.executemany(
            "INSERT INTO workflow_steps (workflow_id, step_name, position, type, action, status, attempt, "
            "started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def start_step(self, workflow_id: str, step_name: str, attempt: int, now: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'RUNNING', attempt = ?, started_at = ?, finished_at = NULL, "
            "next_attempt_at = NULL, error = NULL WHERE workflow_id = ? AND step_name = ?",
            (attempt, now, workflow_id, step_name),
        )

    def complete_step(
        self,
        workflow_id: str,
        step_name: str,
        now: str,
        inputs: str | None,
        outputs: str | None,
        fingerprint: str | None,
        status: str = "COMPLETED",
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, finished_at = ?, inputs = ?, outputs = ?, fingerprint = ?, "
            "error = NULL WHERE workflow_id = ? AND step_name = ?",
            (status, now, inputs, outputs, fingerprint, workflow_id, step_name),
        )

    def wait_step(self, workflow_id: str, step_name: str, now: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'WAITING', started_at = ?, attempt = 1 "
            "WHERE workflow_id = ? AND step_name = ?",
            (now, workflow_id, step_name),
        )

    def save_step_state(self, workflow_id: str, step_name: str, state: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET state = ? WHERE workflow_id = ? AND step_name = ?",
            (state, workflow_id, step_name),
        )

    def record_attempt(
        self,
        workflow_id: str,
        step_name: str,
        attempt: int,
        status: str,
        started_at: str | None,
        finished_at: str,
        error: str | None,
    ) -> None:
        self._c.execute(
            "INSERT OR REPLACE INTO step_attempts (workflow_id, step_name, attempt, status, started_at, "
            "finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (workflow_id, step_name, attempt, status, started_at, finished_at, error),
        )

    def schedule_retry(
        self, workflow_id: str, step_name: str, next_attempt_at: str, error: str, now: str, inputs: str | None
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'RETRYING', next_attempt_at = ?, error = ?, finished_at = ?, "
            "inputs = ? WHERE workflow_id = ? AND step_name = ?",
            (next_attempt_at, error, now, inputs, workflow_id, step_name),
        )

    def fail_step(
        self, workflow_id: str, step_name: str, error: str, now: str, inputs: str | None, status: str = "FAILED"
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, error = ?, finished_at = ?, next_attempt_at = NULL, "
            "inputs = COALESCE(?, inputs) WHERE workflow_id = ? AND step_name = ?",
            (status, error, now, inputs, workflow_id, step_name),
        )

    def set_step_status(self, workflow_id: str, step_name: str, status: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ? WHERE workflow_id = ? AND step_name = ?",
            (status, workflow_id, step_name),
        )

    def skip_unfinished_steps(self, workflow_id: str, status: str = "SKIPPED") -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ? WHERE workflow_id = ? "
            "AND status IN ('PENDING', 'RUNNING', 'RETRYING', 'WAITING')",
            (status, workflow_id),
        )

    # -- compensation ----------------------------------------------------------------------

    def insert_compensation(
        self,
        workflow_id: str,
        step_name: str,
        action: str,
        inputs: str,
        outputs: str,
        state: str | None,
        now: str,
    ) -> None:
        self._c.execute(
            "INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?)",
            (workflow_id, step_name, action, inputs, outputs, state, now),
        )

    def finish_compensation(
        self, compensation_id: int, status: str, attempts: int, error: str | None, now: str
    ) -> None:
        self._c.execute(
            "UPDATE compensation_log SET status = ?, attempts = ?, error = ?, executed_at = ? "
            "WHERE compensation_id = ?",
            (status, attempts, error, now, compensation_id),
        )

    def reopen_failed_compensations(self, workflow_id: str) -> None:
        self._c.execute(
            "UPDATE compensation_log SET status = 'PENDING' WHERE workflow_id = ? AND status = 'FAILED'",
            (workflow_id,),
        )

    # -- approvals ---------------------------------------------------------------------------

    def insert_approval(self, row: dict[str, Any]) -> None:
        self._c.execute(
            "INSERT INTO approvals (approval_id, workflow_id, step_name, status, message, context, approvers, "
            "requested_at, deadline, on_timeout) VALUES (:approval_id, :workflow_id, :step_name, 'PENDING', "
            ":message, :context, :approvers, :requested_at, :deadline, :on_timeout)",
            row,
        )

    def decide_approval(self, approval_id: str, status: str, by: str, reason: str | None, now: str) -> bool:
        """Record a decision if the approval is still pending; the first decision wins."""
        cur = self._c.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, reason = ?, decided_at = ? "
            "WHERE approval_id = ? AND status = 'PENDING'",
            (status, by, reason, now, approval_id),
        )
        return cur.rowcount == 1

    def cancel_approvals(self, workflow_id: str, now: str, by: str, reason: str) -> list[ApprovalRecord]:
        """Cancel the workflow's pending approvals; returns them as cancelled."""
        ids = [
            r[0]
            for r in self._c.execute(
                "SELECT approval_id FROM approvals WHERE workflow_id = ? AND status = 'PENDING'", (workflow_id,)
            ).fetchall()
        ]
        if not ids:
            return []
        self._c.execute(
            "UPDATE approvals SET status = 'CANCELLED', decided_at = ?, decided_by = ?, reason = ? "
            "WHERE workflow_id = ? AND status = 'PENDING'",
            (now, by, reason, workflow_id),
        )
        return [a for a in (self.get_approval(i) for i in ids) if a is not None]

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        row = self._c.execute(
            f"SELECT {_APPROVAL_COLS} FROM approvals WHERE approval_id = ?", (approval_id,)
        ).fetchone()
        return ApprovalRecord(*row) if row else None

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        row = self._c.execute(f"SELECT {_WF_COLS} FROM workflows WHERE workflow_id = ?", (workflow_id,)).fetchone()
        return WorkflowRecord(*row) if row else None

    # -- webhooks and audit ----------------------------------------------------------------------

    def insert_delivery(self, row: dict[str, Any]) -> None:
        """Queue a webhook delivery (the outbox row) to ``row["url"]``."""
        self._c.execute(
            "INSERT INTO webhook_deliveries (delivery_id, approval_id, workflow_id, event, payload, status, "
            "created_at, next_attempt_at, url) VALUES (:delivery_id, :approval_id, :workflow_id, :event, :payload, "
            "'PENDING', :created_at, :created_at, :url)",
            {"url": None, **row},
        )

    def delivery_urls(self, approval_id: str) -> list[str]:
        """The webhook URLs an approval's earlier events were queued for (its decision goes there too)."""
        rows = self._c.execute(
            "SELECT DISTINCT url FROM webhook_deliveries WHERE approval_id = ? AND url IS NOT NULL ORDER BY url",
            (approval_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def claim_delivery(self, delivery_id: str, now: str, hold_until: str) -> bool:
        """Reserve a due delivery for one sender (others skip it until ``hold_until``)."""
        return (
            self._c.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE delivery_id = ? "
                "AND status IN ('PENDING', 'RETRYING') AND next_attempt_at <= ?",
                (hold_until, delivery_id, now),
            ).rowcount
            == 1
        )

    def record_delivery_attempt(
        self,
        delivery_id: str,
        status: str,
        now: str,
        next_attempt_at: str | None,
        http_status: int | None,
        error: str | None,
        *,
        started_at: str | None = None,
    ) -> None:
        """Record one attempt's outcome: the delivery's new status and a row in ``webhook_attempts``."""
        self._c.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_attempt_at = ?, "
            "next_attempt_at = ?, last_status = ?, last_error = ?, "
            "delivered_at = CASE WHEN ? = 'DELIVERED' THEN ? ELSE delivered_at END WHERE delivery_id = ?",
            (status, now, next_attempt_at, http_status, error, status, now, delivery_id),
        )
        self._c.execute(
            "INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, started_at, finished_at, outcome, "
            "http_status, error) SELECT delivery_id, attempts, ?, ?, ?, ?, ? FROM webhook_deliveries "
            "WHERE delivery_id = ?",
            (started_at or now, now, status, http_status, error, delivery_id),
        )

    def insert_audit(self, row: dict[str, Any]) -> None:
        self._c.execute(
            "INSERT INTO audit_log (at, user, roles, event, decision, rule, workflow_id, step_name, action, "
            "target, detail) VALUES (:at, :user, :roles, :event, :decision, :rule, :workflow_id, :step_name, "
            ":action, :target, :detail)",
            row,
        )


class SQLiteStore:
    """All of airt_nb's state in one SQLite file (WAL mode).

    ``durability="normal"`` (``synchronous=NORMAL``): a committed checkpoint
    survives the process being killed at any instant; the last few commits
    may be lost if the machine loses power.  ``durability="full"``
    (``synchronous=FULL``) fsyncs every commit and survives power loss too.
    """

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "normal", busy_timeout: float = 10.0):
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', got {durability!r}", path=str(path))
        self.path = str(path)
        self.durability = durability
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._cv = threading.Condition()
        self._queue: list[_Pending] = []
        self._leading = False
        self._closed = False
        self._check_path()
        self._conn = self._connect()
        self._tx = Tx(self._conn)
        self._migrate()

    # -- opening --------------------------------------------------------------------------------

    def _check_path(self) -> None:
        if self.path == ":memory:":
            raise StoreError(
                "an in-memory database cannot be shared between threads and is lost on exit; give a file path",
                path=self.path,
            )
        folder = Path(self.path).resolve().parent
        if not folder.is_dir():
            raise StoreError(
                f"cannot open database {self.path}: folder {folder} does not exist; create it or set AIRT_DB "
                "to a path in an existing folder",
                path=self.path,
            )
        if Path(self.path).is_dir():
            raise StoreError(f"cannot open database {self.path}: it is a folder; give a file path", path=self.path)

    def _connect(self, *, reader: bool = False) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
            )
            # WAL: readers (frames, dashboards, other kernels) never block the writer nor wait for it.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and not reader:
                raise StoreError(
                    f"database {self.path} cannot use WAL mode (got {mode}); put it on a local disk",
                    path=self.path,
                )
            # NORMAL survives a process crash in WAL mode; FULL also survives power loss (fsync per commit).
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durability == 'full' else 'NORMAL'}")
            # Wait for another writer instead of failing at once with "database is locked".
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            # Steps, compensations and approvals must belong to an existing workflow.
            conn.execute("PRAGMA foreign_keys = ON")
            if reader:
                # A reader never writes by accident.
                conn.execute("PRAGMA query_only = ON")
            return conn
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc, "open") from exc

    def _translate(self, exc: sqlite3.Error, doing: str, *, waited: float | None = None) -> StoreError:
        text = str(exc)
        low = text.lower()
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            msg = (
                f"database {self.path} is not a valid SQLite database or is corrupted ({text}); "
                "restore it from a backup, or move it away to start a new one"
            )
        elif "readonly" in low or "read-only" in low:
            msg = (
                f"database {self.path} is read-only ({text}); make the file and its folder writable "
                "(the -wal and -shm files live next to it), or point AIRT_DB elsewhere"
            )
        elif "locked" in low or "busy" in low:
            seconds = self._busy_ms / 1000 if waited is None else waited
            msg = (
                f"database {self.path} stayed locked by another process for more than "
                f"{seconds:.1f} s while trying to {doing}; close the process holding it "
                "(a long transaction in another tool?) and try again"
            )
        elif "unable to open" in low:
            msg = f"cannot open database {self.path} ({text}); check the path and its permissions"
        elif "disk" in low and "full" in low:
            msg = f"database {self.path}: the disk is full ({text}); free some space and try again"
        else:
            msg = f"database {self.path}: {text} while trying to {doing}"
        return StoreError(msg, path=self.path)

    def _migrate(self) -> None:
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc, "read the schema version") from exc
        if version > LATEST:
            raise StoreError(
                f"database {self.path} was written by a newer airt_nb (schema version {version}, this one "
                f"knows up to {LATEST}); upgrade airt_nb (pip install -U airt_nb) to use it",
                path=self.path,
            )
        for number, title, sql in MIGRATIONS:
            if number <= version:
                continue
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                current = self._conn.execute("PRAGMA user_version").fetchone()[0]
                if current >= number:  # another process migrated meanwhile
                    self._conn.execute("ROLLBACK")
                    continue
                for statement in _split_sql(sql):
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT OR REPLACE INTO airt_meta (key, value) VALUES ('schema_version', ?)", (str(number),)
                )
                self._conn.execute(f"PRAGMA user_version = {int(number)}")
                self._conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise self._translate(exc, f"apply migration {number} ({title})") from exc

    def check_writable(self) -> None:
        """Raise now if this database cannot be written, rather than at the first checkpoint.

        SQLite opens a file it may not write read-only without complaint, so an
        engine would only fail when a workflow first records something.  Checked
        with ``os.access`` on the file and its WAL companions: an SQL write probe
        would wait for any other process's write lock.
        """
        for path in (self.path, f"{self.path}-wal", f"{self.path}-shm"):
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise StoreError(
                    f"database {self.path} is read-only (no permission to write {path}); make the file and its "
                    "folder writable (the -wal and -shm files live next to it), or point AIRT_DB elsewhere",
                    path=self.path,
                )

    @property
    def schema_version(self) -> int:
        return self._read().execute("PRAGMA user_version").fetchone()[0]

    # -- writing ------------------------------------------------------------------------------------

    def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op(tx)`` in a transaction and commit it (possibly together with others)."""
        item = _Pending(op)
        with self._cv:
            if self._closed:
                raise StoreError(f"database {self.path} is closed", path=self.path)
            self._queue.append(item)
            while not item.done:
                if not self._leading:
                    self._leading = True
                    batch, self._queue = self._queue, []
                    break
                self._cv.wait()
            else:
                if item.error is not None:
                    raise item.error
                return item.result  # type: ignore[no-any-return]
        try:
            self._commit(batch)
        finally:
            with self._cv:
                self._leading = False
                self._cv.notify_all()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[no-any-return]

    def _begin(self) -> None:
        delay = 0.01
        began = time.monotonic()
        for attempt in range(6):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc).lower() and "busy" not in str(exc).lower()) or attempt == 5:
                    raise self._translate(exc, "start a transaction", waited=time.monotonic() - began) from exc
                time.sleep(delay * (1 + random.random()))
                delay *= 2
            except sqlite3.DatabaseError as exc:
                raise self._translate(exc, "start a transaction") from exc

    def _commit(self, batch: list[_Pending]) -> None:
        conn = self._conn
        try:
            self._begin()
        except StoreError as exc:
            for item in batch:
                item.error, item.done = exc, True
            return
        try:
            if len(batch) == 1:
                item = batch[0]
                try:
                    item.result = item.op(self._tx)
                except BaseException as exc:
                    conn.execute("ROLLBACK")
                    item.error, item.done = self._op_error(exc), True
                    return
            else:
                for item in batch:
                    conn.execute("SAVEPOINT op")
                    try:
                        item.result = item.op(self._tx)
                        conn.execute("RELEASE op")
                    except BaseException as exc:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        item.error = self._op_error(exc)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = self._translate(exc, "commit")
            for item in batch:
                if item.error is None:
                    item.error = error
        finally:
            for item in batch:
                item.done = True

    def _op_error(self, exc: BaseException) -> BaseException:
        """What a failed op raises to its caller: SQLite's own errors become a StoreError naming the file."""
        if isinstance(exc, sqlite3.Error):
            error = self._translate(exc, "write")
            error.__cause__ = exc
            return error
        return exc

    # -- reading -------------------------------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            if self._closed:
                raise StoreError(f"database {self.path} is closed", path=self.path)
            reader = _Reader(self._connect(reader=True))
            self._local.reader = reader
            with self._readers_lock:
                self._readers.add(reader)
        return reader.conn

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement of this module's and return all rows."""
        try:
            return self._read().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc, "read") from exc

    def data_version(self) -> int:
        """Changes whenever any connection (this process or another) commits."""
        return int(self.query("PRAGMA data_version")[0][0])

    def others_version(self) -> int:
        """Changes whenever *another* connection commits, never for this store's own writes.

        ``PRAGMA data_version`` asked on the write connection itself: an engine
        polls this to notice what other processes and engines did, without
        waking up for each of its own checkpoints.
        """
        with self._cv:
            while self._leading:
                self._cv.wait()
            if self._closed:
                raise StoreError(f"database {self.path} is closed", path=self.path)
            self._leading = True  # the write connection is ours for one statement, outside any transaction
        try:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise self._translate(exc, "read") from exc
        finally:
            with self._cv:
                self._leading = False
                self._cv.notify_all()

    def workflow(self, workflow_id: str) -> WorkflowRecord | None:
        rows = self.query(f"SELECT {_WF_COLS} FROM workflows WHERE workflow_id = ?", (workflow_id,))
        return WorkflowRecord(*rows[0]) if rows else None

    def workflow_status(self, workflow_id: str) -> tuple[str, str | None] | None:
        rows = self.query("SELECT status, waiting_for FROM workflows WHERE workflow_id = ?", (workflow_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        rows = self.query(
            "SELECT workflow_id FROM workflows WHERE workflow_id >= ? AND workflow_id < ? LIMIT ?",
            (prefix, prefix + "\uffff", limit),
        )
        return [r[0] for r in rows]

    def steps(self, workflow_id: str) -> list[StepRecord]:
        rows = self.query(
            f"SELECT {_STEP_COLS} FROM workflow_steps WHERE workflow_id = ? ORDER BY position", (workflow_id,)
        )
        return [StepRecord(*r) for r in rows]

    def steps_window(self, workflow_id: str, *, recent: int = 15, upcoming: int = 10) -> list[StepRecord]:
        """What a live view of a long workflow shows: every step that is neither completed nor
        pending, the ``recent`` last completed ones and the next ``upcoming`` pending ones."""
        rows = self.query(
            f"SELECT {_STEP_COLS} FROM workflow_steps WHERE workflow_id = :wf "
            "AND status NOT IN ('COMPLETED', 'PENDING') "
            f"UNION ALL SELECT * FROM (SELECT {_STEP_COLS} FROM workflow_steps WHERE workflow_id = :wf "
            "AND status = 'COMPLETED' ORDER BY position DESC LIMIT :recent) "
            f"UNION ALL SELECT * FROM (SELECT {_STEP_COLS} FROM workflow_steps WHERE workflow_id = :wf "
            "AND status = 'PENDING' ORDER BY position LIMIT :upcoming)",
            {"wf": workflow_id, "recent": recent, "upcoming": upcoming},
        )
        return sorted((StepRecord(*r) for r in rows), key=lambda r: r.position)

    def attempts(self, workflow_id: str) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT workflow_id, step_name, attempt, status, started_at, finished_at, error FROM step_attempts "
            "WHERE workflow_id = ? ORDER BY step_name, attempt",
            (workflow_id,),
        )

    def compensations(self, workflow_id: str, *, status: str | None = None) -> list[CompensationRecord]:
        rows = self.query(
            f"SELECT {_COMP_COLS} FROM compensation_log WHERE workflow_id = ? AND (? IS NULL OR status = ?) "
            "ORDER BY compensation_id",
            (workflow_id, status, status),
        )
        return [CompensationRecord(*r) for r in rows]

    def approvals(
        self, *, workflow_id: str | None = None, status: str | None = None, approval_id: str | None = None
    ) -> list[ApprovalRecord]:
        where, params = _where(("workflow_id", workflow_id), ("status", status), ("approval_id", approval_id))
        rows = self.query(f"SELECT {_APPROVAL_COLS} FROM approvals{where} ORDER BY requested_at", params)
        return [ApprovalRecord(*r) for r in rows]

    def pending_approvals_of(self, user: str) -> int:
        """How many approvals wait in workflows ``user`` started (for ``max_pending_approvals``)."""
        rows = self.query(
            "SELECT COUNT(*) FROM approvals a JOIN workflows w ON w.workflow_id = a.workflow_id "
            "WHERE a.status = 'PENDING' AND w.started_by = ?",
            (user,),
        )
        return int(rows[0][0])

    def claimable(self, now: str, limit: int = 1000) -> list[tuple[str, str, str | None, str | None]]:
        """Active workflows nobody holds: ``(workflow_id, status, lease_owner, waiting_for)``."""
        return self.query(
            "SELECT workflow_id, status, lease_owner, waiting_for FROM workflows "
            "WHERE status IN ('RUNNING', 'ROLLING_BACK') AND (lease_owner IS NULL OR lease_expires < ?) "
            "ORDER BY created_at LIMIT ?",
            (now, limit),
        )

    def next_lease_expiry(self, except_owner: str, now: str) -> str | None:
        """When the soonest still-valid lease of an active workflow held by another owner runs out."""
        rows = self.query(
            "SELECT MIN(lease_expires) FROM workflows WHERE status IN ('RUNNING', 'ROLLING_BACK') "
            "AND lease_owner IS NOT NULL AND lease_owner != ? AND lease_expires > ?",
            (except_owner, now),
        )
        return rows[0][0] if rows else None

    def lease_owners(self) -> list[str]:
        """Distinct owners of active workflows' leases."""
        return [
            r[0]
            for r in self.query(
                "SELECT DISTINCT lease_owner FROM workflows WHERE lease_owner IS NOT NULL "
                "AND status IN ('RUNNING', 'ROLLING_BACK')"
            )
        ]

    def owned_by(self, owners: Sequence[str], limit: int = 100000) -> list[tuple[str, str, str | None, str | None]]:
        if not owners:
            return []
        marks = ",".join("?" * len(owners))
        return self.query(
            "SELECT workflow_id, status, lease_owner, waiting_for FROM workflows "
            f"WHERE lease_owner IN ({marks}) AND status IN ('RUNNING', 'ROLLING_BACK') "
            "ORDER BY created_at LIMIT ?",
            (*owners, limit),
        )

    def requests_for(self, owner: str) -> list[tuple[str, str]]:
        return self.query(
            "SELECT workflow_id, requested FROM workflows WHERE lease_owner = ? AND requested IS NOT NULL",
            (owner,),
        )

    def pending_deadlines(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """``(approval_id, workflow_id, deadline)`` of pending approvals, soonest first."""
        return self.query(
            "SELECT approval_id, workflow_id, deadline FROM approvals WHERE status = 'PENDING' "
            "AND deadline IS NOT NULL ORDER BY deadline LIMIT ?",
            (limit,),
        )

    def paused_with_pending(self) -> list[tuple[str, str]]:
        return self.query(
            "SELECT w.workflow_id, a.approval_id FROM workflows w JOIN approvals a "
            "ON a.workflow_id = w.workflow_id AND a.status = 'PENDING' WHERE w.status = 'PAUSED'"
        )

    def waiting_for_actions(self) -> list[tuple[str, str]]:
        return self.query(
            "SELECT workflow_id, waiting_for FROM workflows WHERE waiting_for IS NOT NULL "
            "AND status IN ('RUNNING', 'ROLLING_BACK')"
        )

    def due_deliveries(self, now: str, url: str | None = None, limit: int = 50) -> list[DeliveryRecord]:
        """Deliveries to ``url`` due at ``now``, oldest first.

        A delivery waits while an earlier one about the same approval is still
        undelivered, so a receiver never hears of a decision before the request.
        """
        rows = self.query(
            f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries AS d WHERE status IN ('PENDING', 'RETRYING') "
            "AND next_attempt_at <= ? AND (url = ? OR url IS NULL OR ? IS NULL) AND NOT EXISTS ("
            "SELECT 1 FROM webhook_deliveries AS e WHERE e.approval_id = d.approval_id AND e.rowid < d.rowid "
            "AND e.status IN ('PENDING', 'RETRYING')) ORDER BY next_attempt_at LIMIT ?",
            (now, url, url, limit),
        )
        return [DeliveryRecord(*r) for r in rows]

    def next_delivery_time(self, url: str | None = None) -> str | None:
        """When the next delivery to ``url`` is due (deliveries held back behind an earlier one excluded)."""
        rows = self.query(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries AS d WHERE status IN ('PENDING', 'RETRYING') "
            "AND (url = ? OR url IS NULL OR ? IS NULL) AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS e "
            "WHERE e.approval_id = d.approval_id AND e.rowid < d.rowid AND e.status IN ('PENDING', 'RETRYING'))",
            (url, url),
        )
        return rows[0][0] if rows else None

    def delivery_attempts(self, delivery_id: str) -> list[tuple[Any, ...]]:
        """``(attempt, started_at, finished_at, outcome, http_status, error)`` of every attempt, in order."""
        return self.query(
            "SELECT attempt, started_at, finished_at, outcome, http_status, error FROM webhook_attempts "
            "WHERE delivery_id = ? ORDER BY attempt",
            (delivery_id,),
        )

    def deliveries(self, *, approval_id: str | None = None, workflow_id: str | None = None) -> list[DeliveryRecord]:
        where, params = _where(("approval_id", approval_id), ("workflow_id", workflow_id))
        rows = self.query(f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries{where} ORDER BY created_at", params)
        return [DeliveryRecord(*r) for r in rows]

    # -- views for frames and dashboards ------------------------------------------------------------------

    def list_workflows(
        self,
        *,
        status: str | Sequence[str] | None = None,
        name: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[WorkflowRecord]:
        """Workflows matching the filters (``name`` matches a substring)."""
        statuses = [status] if isinstance(status, str) else list(status or [])
        marks = ",".join("?" * len(statuses))
        status_clause = f"status IN ({marks})" if statuses else "1"
        order = "DESC" if newest_first else "ASC"
        # created_at alone is not unique: order by rowid too so paging never repeats or skips a row.
        rows = self.query(
            f"SELECT {_WF_COLS} FROM workflows WHERE {status_clause} "
            "AND (? IS NULL OR name LIKE '%' || ? || '%') AND (? IS NULL OR created_at >= ?) "
            f"AND (? IS NULL OR created_at < ?) ORDER BY created_at {order}, rowid {order} LIMIT ? OFFSET ?",
            (*statuses, name, name, since, since, until, until, -1 if limit is None else limit, offset),
        )
        return [WorkflowRecord(*r) for r in rows]

    def count_workflows(
        self,
        *,
        status: str | Sequence[str] | None = None,
        name: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> int:
        statuses = [status] if isinstance(status, str) else list(status or [])
        marks = ",".join("?" * len(statuses))
        status_clause = f"status IN ({marks})" if statuses else "1"
        rows = self.query(
            f"SELECT COUNT(*) FROM workflows WHERE {status_clause} "
            "AND (? IS NULL OR name LIKE '%' || ? || '%') AND (? IS NULL OR created_at >= ?) "
            "AND (? IS NULL OR created_at < ?)",
            (*statuses, name, name, since, since, until, until),
        )
        return int(rows[0][0])

    def pending_approvals(self, *, limit: int = 50, offset: int = 0) -> list[tuple[ApprovalRecord, str]]:
        """Pending approvals, oldest first, each with its workflow's name (the approvals inbox)."""
        cols = ", ".join(f"a.{c.strip()}" for c in _APPROVAL_COLS.split(","))
        rows = self.query(
            f"SELECT {cols}, w.name FROM approvals a JOIN workflows w ON w.workflow_id = a.workflow_id "
            "WHERE a.status = 'PENDING' ORDER BY a.requested_at, a.approval_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [(ApprovalRecord(*r[:-1]), r[-1]) for r in rows]

    def count_approvals(self, status: str = "PENDING") -> int:
        return int(self.query("SELECT COUNT(*) FROM approvals WHERE status = ?", (status,))[0][0])

    def status_counts(self) -> dict[str, int]:
        return dict(self.query("SELECT status, COUNT(*) FROM workflows GROUP BY status"))  # type: ignore[arg-type]

    def last_change(self) -> tuple[str | None, int]:
        """A cheap "anything changed?" token: the newest ``updated_at`` and the row count."""
        rows = self.query("SELECT MAX(updated_at), COUNT(*) FROM workflows")
        return rows[0][0], int(rows[0][1])

    def all_rows(
        self, table: str, workflow_id: str | None = None, status: str | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Every row of one of airt_nb's tables, for DataFrames."""
        query = _TABLE_QUERIES.get(table)
        if query is None:
            raise StoreError(f"no table {table!r}; choose one of {', '.join(_TABLE_QUERIES)}", path=self.path)
        select, status_column, order = query
        where, params = _where(("workflow_id", workflow_id), (status_column, status))
        try:
            cur = self._read().execute(f"{select}{where} ORDER BY {order}", params)
        except sqlite3.Error as exc:
            raise self._translate(exc, "read") from exc
        columns = [d[0] for d in cur.description]
        return columns, cur.fetchall()

    # -- closing ----------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._cv:
            while self._leading:
                self._cv.wait()
            if self._closed:
                return
            self._closed = True
        with self._readers_lock:
            readers = list(self._readers)
            self._readers = weakref.WeakSet()
        for reader in readers:
            reader.close()
        try:
            self._conn.close()
        except sqlite3.Error:
            pass


# (SELECT ... FROM table, the column ``status=`` filters, ORDER BY) of every table the frames read.
_TABLE_QUERIES = {
    "workflows": (
        "SELECT workflow_id, name, status, created_at, updated_at, finished_at, error, started_by, "
        "total_steps, done_steps, waiting_for, warnings, lease_owner, inputs, spec_hash FROM workflows",
        "status",
        "created_at, rowid",
    ),
    "workflow_steps": (
        "SELECT workflow_id, step_name, position, type, action, status, attempt, started_at, finished_at, "
        "next_attempt_at, inputs, outputs, error, fingerprint FROM workflow_steps",
        "status",
        "workflow_id, position",
    ),
    "step_attempts": (
        "SELECT workflow_id, step_name, attempt, status, started_at, finished_at, error FROM step_attempts",
        "status",
        "workflow_id, step_name, attempt",
    ),
    "approvals": (f"SELECT {_APPROVAL_COLS} FROM approvals", "status", "requested_at"),
    "compensation_log": (f"SELECT {_COMP_COLS} FROM compensation_log", "status", "compensation_id"),
    "webhook_deliveries": (f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries", "status", "created_at"),
    "webhook_attempts": (
        "SELECT a.delivery_id, d.approval_id, d.workflow_id, d.event, a.attempt, a.started_at, a.finished_at, "
        "a.outcome, a.http_status, a.error FROM webhook_attempts AS a JOIN webhook_deliveries AS d "
        "ON d.delivery_id = a.delivery_id",
        "a.outcome",
        "d.created_at, a.delivery_id, a.attempt",
    ),
    "audit_log": (
        "SELECT audit_id, at, user, roles, event, decision, rule, workflow_id, step_name, action, target, "
        "detail FROM audit_log",
        "decision",
        "audit_id",
    ),
}


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND ...`` for the conditions whose value is not None.

    Only the filters given appear in the SQL: ``(? IS NULL OR col = ?)`` would
    keep SQLite from using the index on ``col`` and scan the whole table.
    """
    clauses = [f"{column} = ?" for column, value in conditions if value is not None]
    params = [value for _, value in conditions if value is not None]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
