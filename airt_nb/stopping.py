"""Cancel and rollback: how an engine stops a workflow, wherever it runs.

``Engine.cancel`` and ``Engine.rollback`` (and a parent stopping its child
workflows) come through :func:`stop`.  A workflow this engine executes is
asked to stop at its next step boundary; one a live engine elsewhere runs is
sent a request it acts on (recorded first, never lost); one nobody runs is
cancelled right here, or its rollback runs here or in its home.

Works on the engine through :class:`~airt_nb.hosting.EngineHost`; imports no engine.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .decisions import cancel_pending
from .errors import NotFoundError, WorkflowStateError
from .ownership import is_dead_local_owner
from .subworkflows import parent_op
from .timeutil import now_iso

if TYPE_CHECKING:
    from .hosting import EngineHost
    from .store.protocol import Store
    from .store.records import EngineRecord, WorkflowRecord
    from .store.writes import Tx

__all__ = ["live_engines", "live_owner", "stop"]


def stop(host: EngineHost, workflow_id: str, kind: str, by: str) -> str:
    """Cancel (``kind="cancel"``) or roll back the workflow; returns what ``Engine.cancel`` returns."""
    host.check_open()
    ex = host.execution(workflow_id)
    if ex is not None and not ex.abandoned and not ex.finishing:
        ex.request_stop(kind, by)
        return kind
    allowed = {
        "cancel": ("RUNNING", "PAUSED", "PENDING"),
        "rollback": ("RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"),
    }[kind]
    owner = host.owner_id
    take = not host.closing

    def alive(holder: str | None) -> bool:
        return live_owner(host, holder)

    told: dict[str, Any] = {}  # a child's end, recorded on its parent's step

    def op(tx: Tx) -> tuple[str, WorkflowRecord]:
        record = tx.get_workflow(workflow_id)
        if record is None:
            raise NotFoundError("workflow", workflow_id, db=host.db)
        if record.status not in allowed:
            raise WorkflowStateError(
                f"workflow {workflow_id} ({record.name}) is {record.status}: it cannot be "
                f"{'cancelled' if kind == 'cancel' else 'rolled back'} (possible when {', '.join(allowed)})",
                workflow_id=workflow_id,
                status=record.status,
            )
        now = now_iso()
        holder = record.lease_owner
        if record.status == "RUNNING" and holder and holder != owner and alive(holder):
            # Its engine acts on it at its next step boundary (never lost: recorded first).
            tx.request(workflow_id, kind)
            tx.add_event(workflow_id, now, f"{kind}_requested", by)
            tx.wake(holder)
            return "requested", record
        if kind == "cancel":
            tx.skip_unfinished_steps(workflow_id, "CANCELLED")
            cancel_pending(tx, workflow_id, record.name, now, by, "workflow cancelled")
            tx.set_status(workflow_id, "CANCELLED", now, finished=True, release=True)
            tx.add_event(workflow_id, now, "cancelled", by)
            if record.parent_id:
                parent_op(host, record, "CANCELLED", now, result=told)(tx)
            return "CANCELLED", record
        # A rollback runs where the workflow lives: in its home if it is alive (woken), else here
        # or wherever the home rules send it.
        mine = take and (record.home in (owner, None) or not alive(record.home))
        tx.reopen_failed_compensations(workflow_id)
        cancel_pending(tx, workflow_id, record.name, now, by, "workflow rolled back")
        tx.set_status(
            workflow_id, "ROLLING_BACK", now, new_owner=owner if mine else None, release=not mine, clear_error=False
        )
        tx.add_event(workflow_id, now, "rollback_requested", by)
        if not mine:
            if record.home:
                tx.wake(record.home)
            tx.announce_work()
        return ("adopt" if mine else "ROLLING_BACK"), record

    outcome, _record = host.store.write(op)
    if outcome == "requested":
        return outcome
    status = "CANCELLED" if kind == "cancel" else "ROLLING_BACK"
    host.emit_status(workflow_id, status)
    host.notify()
    if told.get("outcome"):
        host.waited(told["workflow_id"], told["step_name"], told["outputs"], told["error"], told["outcome"])
    if kind == "cancel":  # nobody ran it: its running children are cancelled here
        for child in host.store.children(workflow_id):
            if child.status in ("RUNNING", "PAUSED", "PENDING"):
                with contextlib.suppress(WorkflowStateError, NotFoundError):
                    stop(host, child.workflow_id, "cancel", by)
    if outcome == "adopt":
        host.adopt(workflow_id)
    return status


def live_engines(store: Store, *, besides: str | None = None) -> dict[str, EngineRecord]:
    """Every engine alive now but ``besides``, by owner id, in one read of the engines: neither closed
    nor past its lease, then the database's word where it has one (PostgreSQL's session locks), else
    whether a process of this machine is dead (SQLite): the rule :func:`live_owner` applies to one.

    An engine of another machine whose lease has not run out counts as alive: nothing here can tell
    otherwise.
    """
    found = [e for e in store.engines(alive_at=store.now()) if e.owner_id != besides]
    alive = store.engines_alive([e.owner_id for e in found])
    return {
        e.owner_id: e
        for e in found
        if (e.owner_id in alive if alive is not None else not is_dead_local_owner(e.owner_id))
    }


def live_owner(host: EngineHost, owner: str | None) -> bool:
    """Whether the engine ``owner`` is alive as far as this engine can tell now."""
    if owner is None:
        return False
    if owner == host.owner_id:
        return not host.closing
    store = host.store
    alive = store.engines_alive([owner])
    if alive is not None:
        return owner in alive
    if is_dead_local_owner(owner):
        return False
    record = store.engine(owner)
    return record is not None and record.gone_at(store.now()) is None
