"""Housekeeping: what an engine's timer thread does between the steps of its workflows.

On every tick (:meth:`Housekeeping.tick`): the sweeps of :mod:`airt_nb.recovery`
when another engine signalled or the poll interval passed; executions stopped
by an error rebuilt from their last checkpoint, with a growing pause; and
once a second the progress of running workflows written in one transaction.
It also arms the timers of waiting steps: approval deadlines, reminders and
escalations, and the deadlines of ``wait_event`` steps.

Works on the engine through :class:`~airt_nb.hosting.EngineHost`; imports no engine.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import adoption, wait_events
from . import events as ev
from .decisions import expire
from .errors import StoreError, WorkflowStateError
from .execution import IMPLIED_FOR
from .timeutil import iso, now_iso, to_epoch

if TYPE_CHECKING:
    from .execution import Execution
    from .hosting import EngineHost
    from .recovery import Recovery
    from .store.writes import Tx

__all__ = ["PROGRESS_EVERY", "Housekeeping"]

log = logging.getLogger("airt_nb")

PROGRESS_EVERY = 1.0  # seconds between two writes of running workflows' progress


class Housekeeping:
    """The sweeps, rebuilds, progress writes and waiting-step timers of one engine."""

    def __init__(self, host: EngineHost, recovery: Recovery, signalled: threading.Event, poll_interval: float):
        self._host = host
        self._recovery = recovery
        self._signalled = signalled
        self._poll_interval = poll_interval
        self._next_sweep = 0.0
        self._next_progress = time.monotonic() + PROGRESS_EVERY
        # Executions stopped by an error (e.g. a checkpoint the locked database refused): rebuilt from
        # their last checkpoint by housekeeping, with a growing pause, instead of staying stuck.
        self._orphans: dict[str, Execution] = {}
        self._breaks: dict[tuple[str, str], int] = {}  # (workflow, step) -> times our code broke running it
        self._breaks_lock = threading.Lock()
        self._orphan_due = 0.0
        self._orphan_pause = 1.0

    def tick(self) -> None:
        host = self._host
        if host.closing:
            return
        mono = time.monotonic()
        expiry = self._recovery.next_expiry
        if self._signalled.is_set() or mono >= self._next_sweep or (expiry is not None and host.store.now() >= expiry):
            self._signalled.clear()
            self._next_sweep = mono + (0.5 if self._recovery.more_work else self._poll_interval)
            self._recovery.sweep()
            self.readopt_orphans()
            host.kick_webhook()  # another process may have queued a delivery
        if mono >= self._next_progress:
            self._next_progress = mono + PROGRESS_EVERY
            self.flush_progress()

    def flush_progress(self) -> None:
        """Write the progress of running workflows (and long-running implied starts) in one transaction."""
        now = now_iso()
        cutoff = iso(time.time() - IMPLIED_FOR)  # a step started on an implied start before this is written
        ops = [op for ex in list(self._host.executions.values()) if (op := ex.progress_op(now, cutoff)) is not None]
        if ops:

            def op(tx: Tx) -> None:
                for o in ops:
                    o(tx)

            with contextlib.suppress(StoreError):
                self._host.store.write(op)

    def broke(self, workflow_id: str, step_name: str) -> int:
        """Count one more time our code broke while running that step here; returns the count."""
        with self._breaks_lock:
            count = self._breaks.get((workflow_id, step_name), 0) + 1
            self._breaks[(workflow_id, step_name)] = count
        return count

    def orphaned(self, ex: Execution) -> None:
        self._orphans[ex.id] = ex
        self._orphan_due = time.monotonic() + self._orphan_pause

    def readopt_orphans(self) -> None:
        host = self._host
        if not self._orphans or time.monotonic() < self._orphan_due or host.closing:
            return
        for workflow_id, old in list(self._orphans.items()):
            if old.running_actions:
                continue  # its step is still executing on a worker: never run it twice at once here
            record = host.store.workflow(workflow_id)
            if (
                record is None
                or record.lease_owner != host.owner_id
                or record.status not in ("RUNNING", "ROLLING_BACK")
            ):
                self._orphans.pop(workflow_id, None)  # finished, or another engine took it over
                continue
            if self._orphans.get(workflow_id) is old:
                del self._orphans[workflow_id]
            try:
                adoption.adopt(host, workflow_id)
            except Exception:
                log.exception("workflow %s could not be continued yet", workflow_id)
        if self._orphans:
            self._orphan_pause = min(self._orphan_pause * 2, 30.0)
            self._orphan_due = time.monotonic() + self._orphan_pause
        else:
            self._orphan_pause = 1.0

    # -- timers of waiting steps ---------------------------------------------------------------------------------------

    def expire_at(self, approval_id: str, due: float) -> None:
        self._host.call_at(due, functools.partial(self._host.submit, self._expire, approval_id))

    def approval_timer_at(self, approval_id: str, kind: str, due: float) -> None:
        """Send the reminder (``kind="remind"``) or escalation of a pending approval at ``due``."""
        self._host.call_at(due, functools.partial(self._host.submit, self._approval_timer, approval_id, kind, due))

    def _approval_timer(self, approval_id: str, kind: str, due: float) -> None:
        self._recovery.forget_timer(approval_id, kind)
        if self._host.closing:
            return
        from .reminders import escalate, remind

        with self._unless_closed():
            if kind == "escalate":
                escalate(self._host, approval_id)
                return
            following = remind(self._host, approval_id)
            if following is not None:
                self._recovery.note_timer(approval_id, kind, following)
                self.approval_timer_at(approval_id, kind, to_epoch(following))

    def _expire(self, approval_id: str) -> None:
        self._recovery.forget_deadline(approval_id)
        if not self._host.closing:
            with self._unless_closed():
                expire(self._host, approval_id)

    @contextlib.contextmanager
    def _unless_closed(self) -> Iterator[None]:
        """A timer that fires as the engine closes finds it closed (or its database) half-way: nothing
        of it was written, and the deadline or reminder is in the database for the next engine, so it
        is dropped quietly instead of printing a traceback (an `airt list` opens and closes an engine
        within a second, and may arm a deadline that is due)."""
        try:
            yield
        except (WorkflowStateError, StoreError):
            if not self._host.closing:
                raise
            log.debug("a timer fired while the engine closed; the next engine applies it", exc_info=True)

    def expire_event_at(self, workflow_id: str, step_name: str, due: float) -> None:
        key = f"{workflow_id}/{step_name}"
        if self._recovery.note_deadline(key):
            self._host.call_at(due, functools.partial(self._host.submit, self._expire_event, workflow_id, step_name))

    def _expire_event(self, workflow_id: str, step_name: str) -> None:
        self._recovery.forget_deadline(f"{workflow_id}/{step_name}")
        if not self._host.closing:
            with self._unless_closed():
                wait_events.expire(self._host, workflow_id, step_name)

    def approvals_requested(self, ex: Execution, rows: list[dict[str, Any]]) -> None:
        """Arm the timers of the approvals (and event waits) ``ex`` just recorded, and tell subscribers."""
        host = self._host
        for row in rows:
            kind = row.get("kind")
            if kind == "event_wait":  # a wait_event step waits: arm its deadline
                if row.get("deadline"):
                    self.expire_event_at(row["workflow_id"], row["step_name"], to_epoch(row["deadline"]))
                continue
            if kind == "late_event":  # its event was sent while it started waiting
                host.submit(wait_events.deliver_pending, host, row["workflow_id"], row["step_name"])
                continue
            if row.get("deadline"):
                self._recovery.note_deadline(row["approval_id"])
                self.expire_at(row["approval_id"], to_epoch(row["deadline"]))
            for kind, column in (("remind", "next_reminder_at"), ("escalate", "escalate_at")):
                if row.get(column):
                    self._recovery.note_timer(row["approval_id"], kind, row[column])
                    self.approval_timer_at(row["approval_id"], kind, to_epoch(row[column]))
            if host.listening:
                host.emit(ev.ApprovalRequested(ex.id, row["approval_id"], row["step_name"], row["message"]))
        host.kick_webhook()
