"""The statements of a write transaction about workflow rows: insert, fence, status, leases, requests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .base import LeaseLostError
from .columns import ACTIVE_SQL, WF_COLS
from .records import WorkflowRecord
from .txbase import TxBase

__all__ = ["WorkflowWrites"]


class WorkflowWrites(TxBase):
    """Workflow statements of :class:`~airt_nb.store.writes.Tx`."""

    __slots__ = ()

    # -- workflows -------------------------------------------------------------------------

    def insert_workflow(self, row: dict[str, Any], *, spec_stored: bool = False) -> None:
        """Insert a workflow; its spec is stored once per ``spec_hash``, not in the row
        (``spec_stored``: the caller knows it is in the database already)."""
        self.synchronous = True
        params = {k: row.get(k) for k in _WF_INSERT}
        if spec_stored:
            self._c.execute(_INSERT_WORKFLOW, params)
        elif self.dialect == "postgresql":  # one statement: one round trip
            self._c.execute(
                "WITH spec AS (INSERT INTO workflow_specs (spec_hash, spec) VALUES (:spec_hash, :spec) "
                "ON CONFLICT DO NOTHING) " + _INSERT_WORKFLOW,
                {**params, "spec": row["spec"]},
            )
        else:
            self._c.execute(
                "INSERT INTO workflow_specs (spec_hash, spec) VALUES (:spec_hash, :spec) ON CONFLICT DO NOTHING",
                {"spec_hash": row["spec_hash"], "spec": row["spec"]},
            )
            self._c.execute(_INSERT_WORKFLOW, params)

    def fence(self, workflow_id: str, owner: str) -> str | None:
        """Raise :class:`LeaseLostError` unless ``owner`` holds the lease; returns the pending request."""
        share = " FOR SHARE" if self.dialect == "postgresql" else ""
        row = self._c.execute(
            f"SELECT requested FROM workflows WHERE workflow_id = ? AND lease_owner = ?{share}",
            (workflow_id, owner),
        ).fetchone()
        if row is None:
            raise LeaseLostError(workflow_id)
        return row[0]  # type: ignore[no-any-return]

    def holds(self, workflow_id: str, owner: str) -> bool:
        """Whether ``owner`` still holds the workflow's lease (read in the transaction)."""
        try:
            self.fence(workflow_id, owner)
        except LeaseLostError:
            return False
        return True

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
        done: int | None = None,
        clear_error: bool = False,
    ) -> None:
        """Change a workflow's status (fenced on ``owner`` when given).

        ``release`` frees the lease but keeps ``home``, the engine that ran it
        last, which gets it back first; ``new_owner`` takes the lease and
        becomes its home; ``done`` sets the progress counter.
        """
        params: dict[str, Any] = {
            "wf": workflow_id,
            "status": status,
            "now": now,
            "error": error,
            "clear": 1 if clear_error else 0,
            "finished": now if finished else None,
            "release": 1 if release else 0,
            "new_owner": new_owner,
            "done": done,
        }
        self.synchronous = self.synchronous or release or new_owner is not None
        fence = ""
        if owner is not None:
            fence = " AND lease_owner = :owner"
            params["owner"] = owner
        cur = self._c.execute(
            "UPDATE workflows SET status = :status, updated_at = :now, "
            "error = CASE WHEN :clear = 1 THEN NULL ELSE COALESCE(:error, error) END, finished_at = :finished, "
            "requested = CASE WHEN CAST(:finished AS TEXT) IS NOT NULL THEN NULL ELSE requested END, "
            "lease_owner = CASE WHEN :release = 1 THEN NULL ELSE COALESCE(:new_owner, lease_owner) END, "
            "lease_expires = NULL, home = COALESCE(:new_owner, home), "
            "done_steps = COALESCE(:done, done_steps), waiting_for = NULL "
            f"WHERE workflow_id = :wf{fence}",
            params,
        )
        if cur.rowcount != 1:
            raise LeaseLostError(workflow_id)

    def progress(self, workflow_id: str, owner: str, done: int, now: str) -> None:
        """The progress counter and ``updated_at``, written in batches rather than per step."""
        self._c.execute(
            "UPDATE workflows SET done_steps = ?, updated_at = ? WHERE workflow_id = ? AND lease_owner = ?",
            (done, now, workflow_id, owner),
        )

    def bump_done(self, workflow_id: str, count: int = 1) -> None:
        self._c.execute("UPDATE workflows SET done_steps = done_steps + ? WHERE workflow_id = ?", (count, workflow_id))

    def claim(self, owner: str, workflow_ids: Sequence[str], dead: Sequence[str], now: str) -> list[str]:
        """Take the leases of those workflows that are free or held by a ``dead`` engine.

        Returns the ids taken; this engine becomes their home.  On PostgreSQL,
        rows another engine is claiming at this instant are skipped, not waited for.
        """
        self.synchronous = True
        if not workflow_ids:
            return []
        ids = ",".join("?" * len(workflow_ids))
        owners = ",".join("?" * len(dead)) or "NULL"
        held = f"(lease_owner IS NULL OR lease_owner IN ({owners}))"
        if self.dialect == "postgresql":
            where = (
                f"workflow_id IN (SELECT workflow_id FROM workflows WHERE workflow_id IN ({ids}) "
                f"AND status IN {ACTIVE_SQL} AND {held} FOR UPDATE SKIP LOCKED)"
            )
        else:
            # By the primary key: SQLite, left to choose, reads every active workflow through the status
            # index for each batch (recovering thousands of workflows was quadratic).
            where = f"workflow_id IN ({ids}) AND +status IN {ACTIVE_SQL} AND {held}"
        rows = self._c.execute(
            "UPDATE workflows SET lease_owner = ?, lease_expires = NULL, home = ?, updated_at = ?, "
            f"waiting_for = NULL WHERE {where} RETURNING workflow_id",
            (owner, owner, now, *workflow_ids, *dead),
        ).fetchall()
        return [r[0] for r in rows]

    def release_all(self, owner: str) -> int:
        self.synchronous = True
        return self._c.execute(  # type: ignore[no-any-return]
            "UPDATE workflows SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?", (owner,)
        ).rowcount

    def release(self, workflow_id: str, owner: str, *, waiting_for: str | None = None) -> None:
        self.synchronous = True
        self._c.execute(
            "UPDATE workflows SET lease_owner = NULL, lease_expires = NULL, waiting_for = ? "
            "WHERE workflow_id = ? AND lease_owner = ?",
            (waiting_for, workflow_id, owner),
        )

    def set_waiting_for(self, workflow_id: str, waiting_for: str | None) -> None:
        """Say what a workflow nobody holds waits for (a folder, an action)."""
        self._c.execute(
            "UPDATE workflows SET waiting_for = ? WHERE workflow_id = ? AND lease_owner IS NULL",
            (waiting_for, workflow_id),
        )

    def request(self, workflow_id: str, kind: str) -> None:
        """Ask the owner of a running workflow to cancel, roll back, or re-read (``wake``)."""
        self.synchronous = True
        self._c.execute(
            "UPDATE workflows SET requested = CASE WHEN ? = 'wake' AND requested IN ('cancel', 'rollback') "
            "THEN requested ELSE ? END WHERE workflow_id = ?",
            (kind, kind, workflow_id),
        )

    def clear_request(self, workflow_id: str, kind: str | None = None) -> None:
        """Forget the pending request (only if it is still ``kind`` when given)."""
        if kind is None:
            self._c.execute("UPDATE workflows SET requested = NULL WHERE workflow_id = ?", (workflow_id,))
        else:
            self._c.execute(
                "UPDATE workflows SET requested = NULL WHERE workflow_id = ? AND requested = ?", (workflow_id, kind)
            )

    def add_warning(self, workflow_id: str, warning: str) -> None:
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""  # read, modify, write: one at a time
        row = self._c.execute(f"SELECT warnings FROM workflows WHERE workflow_id = ?{lock}", (workflow_id,)).fetchone()
        warnings = json.loads(row[0]) if row and row[0] else []
        if warning not in warnings:
            warnings.append(warning)
            self._c.execute(
                "UPDATE workflows SET warnings = ? WHERE workflow_id = ?", (json.dumps(warnings), workflow_id)
            )

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        row = self._c.execute(f"SELECT {WF_COLS} FROM workflows WHERE workflow_id = ?{lock}", (workflow_id,)).fetchone()
        return WorkflowRecord(*row) if row else None


_INSERT_WORKFLOW = (
    "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, "
    "updated_at, started_by, total_steps, done_steps, lease_owner, workdir, session, home, forked_from, "
    "parent_id, parent_step) "
    "VALUES (:workflow_id, :name, :status, '', :spec_hash, :inputs, :created_at, :updated_at, "
    ":started_by, :total_steps, COALESCE(:done_steps, 0), :lease_owner, :workdir, :session, :lease_owner, "
    ":forked_from, :parent_id, :parent_step)"
)

_WF_INSERT = (
    "workflow_id", "name", "status", "spec_hash", "inputs", "created_at", "updated_at", "started_by",
    "total_steps", "done_steps", "lease_owner", "workdir", "session", "forked_from", "parent_id", "parent_step",
)  # fmt: skip
