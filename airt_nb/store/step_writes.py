"""The statements of a write transaction about steps, their attempts, and the compensation log."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence

from .txbase import TxBase

__all__ = ["StepWrites"]


_INSERT_STEP = (
    "INSERT INTO workflow_steps (workflow_id, step_name, position, type, action, status, attempt, started_at) VALUES "
)
# ?1 is the workflow's id, bound once per statement; a pending row (nearly every row of a new run)
# binds only its name, position, type and action: SQLite binds half as many values.
_STEP_PENDING = "(?1, ?, ?, ?, ?, 'PENDING', 0, NULL)"
_STEP_STARTED = "(?1, ?, ?, ?, ?, 'RUNNING', 1, ?)"
_ROWS_PER_INSERT = 100  # at most 601 values: under every SQLite's limit of 999


@functools.lru_cache(maxsize=64)
def _insert_steps_sql(count: int, started: tuple[int, ...]) -> str:
    """The INSERT of ``count`` rows, those at the positions ``started`` started."""
    return _INSERT_STEP + ", ".join(_STEP_STARTED if i in started else _STEP_PENDING for i in range(count))


class StepWrites(TxBase):
    """Step and compensation statements of :class:`~airt_nb.store.writes.Tx`."""

    __slots__ = ()

    # -- steps -----------------------------------------------------------------------------

    def insert_steps(
        self,
        workflow_id: str,
        steps: Sequence[tuple[str, int, str, str | None]],
        started: Mapping[str, str] | None = None,
    ) -> list[int]:
        """Insert a new run's steps, rows of ``(step_name, position, type, action)``: PENDING, except
        those named in ``started`` (``{name: started_at}``), RUNNING in their first attempt.  Returns
        the new rows' step ids in position order."""
        if self.dialect == "postgresql":  # one statement whatever the number of steps
            names, positions, types, actions = (list(c) for c in zip(*steps, strict=True)) if steps else ([],) * 4
            began = [started.get(n) for n in names] if started else [None] * len(names)
            found = self._c.execute(
                "INSERT INTO workflow_steps (workflow_id, step_name, position, type, action, status, attempt, "
                "started_at) SELECT ?::text, n, p, t, a, CASE WHEN s IS NULL THEN 'PENDING' ELSE 'RUNNING' END, "
                "CASE WHEN s IS NULL THEN 0 ELSE 1 END, s "
                "FROM unnest(?::text[], ?::int[], ?::text[], ?::text[], ?::text[]) AS r (n, p, t, a, s) "
                "RETURNING position, step_id",
                [workflow_id, names, positions, types, actions, began],
            ).fetchall()
            return [step_id for _position, step_id in sorted(found)]
        # SQLite: a statement per 100 rows rather than one per row.  One writer: the new rows took the
        # next ids in order (rowids count up from the largest), so the last one names them all.
        marked = [k for k, row in enumerate(steps) if row[0] in started] if started else []
        last = 0
        for k in range(0, len(steps), _ROWS_PER_INSERT):
            chunk = steps[k : k + _ROWS_PER_INSERT]
            here = tuple(m - k for m in marked if k <= m < k + len(chunk))
            if not here:
                params = [workflow_id, *itertools.chain.from_iterable(chunk)]
            else:
                assert started is not None
                params = [workflow_id]
                for j, row in enumerate(chunk):
                    params += (*row, started[row[0]]) if j in here else row
            cursor = self._c.execute(_insert_steps_sql(len(chunk), here), params)
            last = int(cursor.lastrowid)
        return list(range(last - len(steps) + 1, last + 1))

    def start_step(self, step_id: int, attempt: int, now: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'RUNNING', attempt = ?, started_at = ?, finished_at = NULL, "
            "next_attempt_at = NULL, error = NULL, traceback = NULL WHERE step_id = ?",
            (attempt, now, step_id),
        )

    def unstart_step(self, step_id: int, attempt: int) -> None:
        """Take back a start that was written but never ran (a stop came first)."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'PENDING', attempt = ?, started_at = NULL WHERE step_id = ? "
            "AND status = 'RUNNING'",
            (attempt, step_id),
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
            "error = NULL, traceback = NULL WHERE workflow_id = ? AND step_name = ?",
            (status, now, inputs, outputs, fingerprint, workflow_id, step_name),
        )

    def wait_step(self, workflow_id: str, step_name: str, now: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'WAITING', started_at = ?, attempt = 1 "
            "WHERE workflow_id = ? AND step_name = ?",
            (now, workflow_id, step_name),
        )

    def skip_step(self, workflow_id: str, step_name: str, now: str) -> None:
        """A step not taken (its ``when`` did not hold, or it uses the outputs of one that was skipped)."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'SKIPPED', finished_at = ? WHERE workflow_id = ? AND step_name = ? "
            "AND status = 'PENDING'",
            (now, workflow_id, step_name),
        )

    def hold_step(self, step_id: int, attempt: int) -> None:
        """A gated step that did not run: it waits for its approval to be given again (see gating)."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'WAITING', attempt = ?, started_at = NULL WHERE step_id = ?",
            (attempt, step_id),
        )

    def save_step_state(self, step_id: int, state: str) -> None:
        self._c.execute("UPDATE workflow_steps SET state = ? WHERE step_id = ?", (state, step_id))

    def record_attempt(
        self,
        workflow_id: str,
        step_name: str,
        attempt: int,
        status: str,
        started_at: str | None,
        finished_at: str,
        error: str | None,
        traceback: str | None = None,
    ) -> None:
        """One row per ended attempt (``FAILED``, ``INTERRUPTED``...): the step's history."""
        self._c.execute(
            "INSERT INTO step_attempts (workflow_id, step_name, attempt, status, started_at, finished_at, error, "
            "traceback) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (workflow_id, step_name, attempt, status, started_at, finished_at, error, traceback),
        )

    def schedule_retry(
        self,
        step_id: int,
        attempt: int,
        next_attempt_at: str,
        error: str,
        now: str,
        inputs: str | None,
        traceback: str | None = None,
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'RETRYING', attempt = ?, next_attempt_at = ?, error = ?, "
            "traceback = ?, finished_at = ?, inputs = ? WHERE step_id = ?",
            (attempt, next_attempt_at, error, traceback, now, inputs, step_id),
        )

    def fail_step(
        self,
        workflow_id: str,
        step_name: str,
        error: str,
        now: str,
        inputs: str | None,
        status: str = "FAILED",
        *,
        attempt: int | None = None,
        started_at: str | None = None,
        traceback: str | None = None,
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, error = ?, traceback = ?, finished_at = ?, next_attempt_at = NULL, "
            "inputs = COALESCE(?, inputs), attempt = COALESCE(?, attempt), started_at = COALESCE(?, started_at) "
            "WHERE workflow_id = ? AND step_name = ?",
            (status, error, traceback, now, inputs, attempt, started_at, workflow_id, step_name),
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

    # -- compensation ------------------------------------------------------------------------

    def insert_compensation(
        self, workflow_id: str, step_name: str, action: str, inputs: str, outputs: str, state: str | None, now: str
    ) -> None:
        self._c.execute(
            "INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?)",
            (workflow_id, step_name, action, inputs, outputs, state, now),
        )

    def finish_compensation(
        self, compensation_id: int, status: str, attempts: int, error: str | None, now: str, note: str | None = None
    ) -> None:
        self._c.execute(
            "UPDATE compensation_log SET status = ?, attempts = ?, error = ?, executed_at = ?, note = ? "
            "WHERE compensation_id = ?",
            (status, attempts, error, now, note, compensation_id),
        )

    def reopen_failed_compensations(self, workflow_id: str) -> None:
        self._c.execute(
            "UPDATE compensation_log SET status = 'PENDING' WHERE workflow_id = ? AND status = 'FAILED'",
            (workflow_id,),
        )
