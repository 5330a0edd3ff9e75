"""``Run``: a handle on one workflow, whichever engine or process executes it.

A ``Run`` holds only the engine and the workflow id; everything it reports
is read from the engine (if it executes the workflow) or from the database,
so a run started by another kernel, or before a restart, behaves the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .store.records import ApprovalRecord, CompensationRecord, DecisionRecord, StepRecord, WorkflowRecord

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Run"]


class Run:
    """One workflow run: what :meth:`Engine.start <airt_nb.Engine.start>` and
    :meth:`Engine.get <airt_nb.Engine.get>` return.

    Examples
    --------
    >>> run = eng.start(spec)            # doctest: +SKIP
    >>> run.wait(timeout=10)             # doctest: +SKIP
    'PAUSED'
    >>> run.approve(by="ann", reason="looks good")  # doctest: +SKIP
    >>> run.wait(timeout=10), run.outputs["write_b"]  # doctest: +SKIP
    ('COMPLETED', {'path': 'out/r/b.txt', 'bytes': 2})
    """

    __slots__ = ("_engine", "id")

    def __init__(self, engine: Engine, workflow_id: str):
        self._engine = engine
        self.id = workflow_id

    def __repr__(self) -> str:
        try:
            rec = self.record
            return f"<Run {self.id} {rec.name!r} {self.status}>"
        except Exception:
            return f"<Run {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def engine(self) -> Engine:
        return self._engine

    # -- state ----------------------------------------------------------------------------------

    @property
    def record(self) -> WorkflowRecord:
        """The workflow's row as stored now."""
        rec = self._engine.store.workflow(self.id)
        assert rec is not None
        return rec

    @property
    def name(self) -> str:
        """The spec's ``name``."""
        return self.record.name

    @property
    def status(self) -> str:
        """PENDING, RUNNING, PAUSED, COMPLETED, FAILED, ROLLING_BACK, ROLLED_BACK or CANCELLED.

        Examples
        --------
        >>> run.status                       # doctest: +SKIP
        'PAUSED'
        """
        return self._engine.status_of(self.id)

    @property
    def error(self) -> str | None:
        """Why the run failed or was rolled back; ``None`` otherwise."""
        return self.record.error

    @property
    def waiting_for(self) -> str | None:
        """E.g. ``"action my_step"`` when the run waits for an action to be defined."""
        return self.record.waiting_for

    @property
    def warnings(self) -> list[str]:
        """Notes on the run, e.g. that an action's code changed since one of its steps ran."""
        return self.record.warning_list

    @property
    def progress(self) -> tuple[int, int]:
        """``(done, total)`` steps."""
        rec = self.record
        return rec.done_steps, rec.total_steps

    @property
    def outputs(self) -> dict[str, Any]:
        """``{step_name: outputs}`` of every completed step.

        Examples
        --------
        >>> run.outputs["count"]             # doctest: +SKIP
        {'path': '/home/ann/report/text.txt', 'words': 6}
        """
        return {
            s.step_name: json.loads(s.outputs)
            for s in self.steps()
            if s.outputs is not None and s.status in ("COMPLETED", "COMPENSATED", "COMPENSATION_FAILED")
        }

    @property
    def inputs(self) -> dict[str, Any]:
        """The inputs the run started with (the spec's defaults merged with those given)."""
        return json.loads(self.record.inputs)  # type: ignore[no-any-return]

    def steps(self) -> list[StepRecord]:
        """The run's steps as stored now, in spec order (:meth:`steps_frame`: as a DataFrame)."""
        return self._engine.store.steps(self.id)

    def approvals(self) -> list[ApprovalRecord]:
        """Every approval request of the run, decided or not."""
        return self._engine.store.approvals(workflow_id=self.id)

    @property
    def pending_approval(self) -> ApprovalRecord | None:
        """The approval the run waits for, if any."""
        pending = self._engine.store.approvals(workflow_id=self.id, status="PENDING")
        return pending[0] if pending else None

    def compensations(self) -> list[CompensationRecord]:
        """The run's compensation intents (what a rollback would undo, and what it did)."""
        return self._engine.store.compensations(self.id)

    # -- waiting and deciding ------------------------------------------------------------------------

    def wait(self, timeout: float | None = None, *, until: str = "settled") -> str:
        """Block until the run is finished or PAUSED (``until="done"``: finished) and return its status.

        A run another engine executes is followed in the database.  Raises
        :class:`~airt_nb.WaitTimeoutError` after ``timeout`` seconds.

        Examples
        --------
        >>> run.wait(timeout=10)                 # doctest: +SKIP
        'PAUSED'
        >>> run.wait(timeout=60, until="done")   # doctest: +SKIP
        'COMPLETED'
        """
        return self._engine.wait(self.id, timeout, until=until)

    def approve(
        self,
        *,
        by: str | None = None,
        reason: str | None = None,
        approval_id: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> ApprovalRecord:
        """Approve the pending approval (``approval_id`` when several are pending) with the ``values`` of
        its typed fields; returns once it is recorded.  See :meth:`airt_nb.Engine.approve`.

        Examples
        --------
        >>> run.approve(by="reviewer", reason="notes look good", values={"replicas": 3}).decided_by  # doctest: +SKIP
        'reviewer'
        """
        return self._engine.approve(self.id, by=by, reason=reason, approval_id=approval_id, values=values)

    def reject(
        self,
        *,
        by: str | None = None,
        reason: str | None = None,
        approval_id: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> ApprovalRecord:
        """Reject the pending approval; the completed steps are rolled back.

        Examples
        --------
        >>> run.reject(reason="not this week")  # doctest: +SKIP
        >>> run.wait(timeout=30)             # doctest: +SKIP
        'ROLLED_BACK'
        """
        return self._engine.reject(self.id, by=by, reason=reason, approval_id=approval_id, values=values)

    def decisions(self) -> list[DecisionRecord]:
        """Every individual decision on this run's approvals (who, when, why, values), oldest first.

        Examples
        --------
        >>> [(d.decided_by, d.decision) for d in run.decisions()]  # doctest: +SKIP
        [('ann', 'APPROVED'), ('rita', 'APPROVED')]
        """
        return self._engine.store.decisions(workflow_id=self.id)

    def rollback(self, *, by: str | None = None) -> str:
        """Undo every completed step, newest first (also of a COMPLETED run).

        Examples
        --------
        >>> run.rollback(); run.wait(timeout=30)  # doctest: +SKIP
        'ROLLED_BACK'
        """
        return self._engine.rollback(self.id, by=by)

    def cancel(self, *, by: str | None = None) -> str:
        """Stop the run without undoing anything.

        Examples
        --------
        >>> run.cancel(); run.wait(timeout=30)  # doctest: +SKIP
        'CANCELLED'
        """
        return self._engine.cancel(self.id, by=by)

    def resume(self) -> str:
        """Run the workflow here if no live engine runs it (see :meth:`airt_nb.Engine.resume`).

        Examples
        --------
        >>> run.resume()                     # doctest: +SKIP
        'resumed'
        """
        return self._engine.resume(self.id)

    # -- views -------------------------------------------------------------------------------------------

    def steps_frame(self) -> Any:
        """The run's steps as a pandas DataFrame (:func:`airt_nb.steps` of this run).

        Examples
        --------
        >>> run.steps_frame()[["step_name", "status", "duration"]]  # doctest: +SKIP
        """
        from .frames import steps

        return steps(self._engine.store, workflow_id=self.id)

    def timeline(self) -> Any:
        """A Gantt-style picture of the run: steps, retries, approval waits, compensations.

        Examples
        --------
        >>> run.timeline()                 # doctest: +SKIP
        """
        from .timelines import timeline

        return timeline(self.id, db=self._engine)

    def _ipython_display_(self) -> None:
        """In IPython, a Run shows as its live panel followed by a static snapshot of it."""
        from .magics import display_run

        display_run(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        """In a notebook, a Run shows as its live panel."""
        try:
            from .widgets.run_panel import run_mimebundle
        except ImportError:
            return None
        return run_mimebundle(self)
