"""The engine: starts workflows, owns them through leases, and carries them on.

An :class:`Engine` opens one database and runs the workflows it owns on a
pool of worker threads.  One housekeeping thread runs timers (retry
back-offs, approval deadlines) and, ten times a second, asks the database
whether another process or engine changed anything (``PRAGMA data_version``
on its own write connection, a cheap read): if so it
takes over workflows nobody runs (decided from another process, left by a
dead kernel, or whose missing action was just defined), renews its leases,
and wakes ``Run.wait`` callers.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import events as ev
from .actions import Registry, default_registry
from .decisions import cancel_pending
from .errors import AirtError, NotFoundError, PolicyError, SpecError, StoreError, WorkflowStateError
from .execution import Execution
from .identity import current_user
from .ownership import is_dead_local_owner, make_owner_id
from .plan import Plan
from .policy import AllowAll, Policy
from .spec import WorkflowSpec, fingerprint_of, load_spec
from .store.records import SETTLED, TERMINAL, WorkflowRecord
from .store.sqlite import LeaseLostError, SQLiteStore
from .timers import Timers
from .timeutil import iso, now_iso, to_epoch

if TYPE_CHECKING:
    from .plan import PlannedStep
    from .run import Run
    from .store.sqlite import Tx

__all__ = ["Engine", "RecoverySummary", "WaitTimeoutError"]

log = logging.getLogger("airt_nb")


class WaitTimeoutError(AirtError, TimeoutError):
    """``Run.wait(timeout=...)`` ran out of time before the run finished or paused."""


@dataclass
class RecoverySummary:
    """What :meth:`Engine.recover` found: ids by what happened to them."""

    resumed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    waiting_for_action: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [
            f"{len(self.resumed)} resumed",
            f"{len(self.restored)} waiting for approval",
        ]
        if self.waiting_for_action:
            parts.append(f"{len(self.waiting_for_action)} waiting for an action to be defined")
        if self.skipped:
            parts.append(f"{len(self.skipped)} run by another engine")
        return ", ".join(parts)


def _default_db() -> str:
    return os.environ.get("AIRT_DB") or "airt.db"


def _db_path(db: str | os.PathLike[str] | None) -> str:
    text = os.fspath(db) if db is not None else _default_db()
    if text.startswith("sqlite:///"):
        return text[len("sqlite:///") :]
    if text.startswith(("postgresql://", "postgres://")):
        raise StoreError(
            "PostgreSQL databases are not supported by this version of airt_nb; use a SQLite file path",
            path=text,
        )
    return text


def open_store(
    db: str | os.PathLike[str] | None = None, *, durability: str = "normal", busy_timeout: float = 10.0
) -> SQLiteStore:
    """Open (and migrate) the database named by ``db``, ``$AIRT_DB`` or ``./airt.db``."""
    return SQLiteStore(_db_path(db), durability=durability, busy_timeout=busy_timeout)


class Engine:
    """Runs workflows durably against one database.

    Parameters
    ----------
    db:
        SQLite file path (or ``sqlite:///path``); default ``$AIRT_DB`` or ``./airt.db``.
    recover:
        Resume RUNNING / ROLLING_BACK workflows and restore PAUSED ones when
        opening, and keep taking up workflows nobody runs (default;
        ``AIRT_RECOVER=0`` turns it off).  With ``recover=False`` the engine
        only ever runs the workflows it started or was asked to ``resume``:
        decisions and rollbacks it records for other workflows are left to
        the engines that run them (this is how the ``airt`` command works),
        until :meth:`recover` is called by hand.
    durability:
        ``"normal"`` survives a crash of the process; ``"full"`` also a power loss.
    busy_timeout:
        Seconds a write waits for another process's write transaction (a few
        tries, with jitter) before raising :class:`~airt_nb.StoreError`.
    max_workers:
        Worker threads shared by all workflows of this engine.
    policy:
        A policy object, or the path of a policy file; default: the file
        ``$AIRT_POLICY`` names, else everyone may do everything.  A policy
        file that cannot be read raises :class:`~airt_nb.PolicyError` here,
        before the database is opened.
    user:
        Who starts and decides through this engine; default ``$AIRT_USER``,
        ``$JUPYTERHUB_USER`` or the OS user.
    webhook_url, webhook_secret:
        Where approval requests and decisions are POSTed, and the HMAC key
        that signs them (default ``$AIRT_WEBHOOK_URL``, ``$AIRT_WEBHOOK_SECRET``).
    webhook_timeout, webhook_max_attempts, webhook_initial_delay, webhook_max_delay:
        Seconds allowed per request phase, attempts before a delivery is
        given up, and the exponential back-off between attempts.

    Example
    -------
    >>> eng = Engine(tmp_path / "airt.db")          # doctest: +SKIP
    >>> run = eng.start(spec_yaml, inputs={"target": "out"})  # doctest: +SKIP
    >>> run.wait(timeout=10)                         # doctest: +SKIP
    'PAUSED'
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        recover: bool | None = None,
        durability: str = "normal",
        max_workers: int = 16,
        registry: Registry | None = None,
        policy: Policy | str | os.PathLike[str] | None = None,
        user: str | None = None,
        lease_ttl: float = 30.0,
        poll_interval: float = 0.1,
        compensation_attempts: int = 2,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_timeout: float = 5.0,
        webhook_max_attempts: int = 8,
        webhook_initial_delay: float = 1.0,
        webhook_max_delay: float = 300.0,
        busy_timeout: float = 10.0,
    ):
        # The policy first: a policy file that cannot be read stops the engine before it writes anything.
        self._policy: Policy = _policy_from(policy)
        url = webhook_url if webhook_url is not None else os.environ.get("AIRT_WEBHOOK_URL")
        secret = webhook_secret if webhook_secret is not None else os.environ.get("AIRT_WEBHOOK_SECRET")
        if url:
            _check_webhook_url(url)
        self._store = open_store(db, durability=durability, busy_timeout=busy_timeout)
        try:
            self._store.check_writable()
        except StoreError:
            self._store.close()
            raise
        self.db = self._store.path
        self.registry = registry or default_registry
        self.user = current_user(user)
        self.lease_ttl = lease_ttl
        self.compensation_attempts = max(1, compensation_attempts)
        self._owner = make_owner_id()
        self._events = ev.Emitter()
        self._executions: dict[str, Execution] = {}
        self._exec_lock = threading.Lock()
        self._cv = threading.Condition()
        self._closing = False
        self._closed = False
        self._plans: dict[str, Plan] = {}
        self._cancel_by: dict[str, str] = {}
        self._scheduled_deadlines: set[str] = set()
        self._mine: set[str] = set()  # started or resumed here: run even when not recovering
        self._waiting: dict[str, str] = {}
        self._data_version = -1
        self._last_dead_check = 0.0
        self._next_expiry: str | None = None  # soonest lease of another engine to run out
        # Executions stopped by an error (e.g. a checkpoint the locked database refused): rebuilt from
        # their last checkpoint by housekeeping, with a growing pause, instead of staying stuck.
        self._orphans: dict[str, Execution] = {}
        self._orphan_due = 0.0
        self._orphan_pause = 1.0
        self._last_renew = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="airt-worker")
        self._timers = Timers(self._tick, poll_interval)
        self._webhook = None
        if url:
            from .webhooks import WebhookSender

            if not secret:
                log.warning("AIRT_WEBHOOK_SECRET is not set: webhooks to %s are sent unsigned", url)
            self._webhook = WebhookSender(
                self._store,
                url,
                secret,
                timeout=webhook_timeout,
                max_attempts=webhook_max_attempts,
                initial_delay=webhook_initial_delay,
                max_delay=webhook_max_delay,
            )
            self._webhook.start()
        if recover is None:
            recover = os.environ.get("AIRT_RECOVER", "1").strip().lower() not in ("0", "false", "no", "off")
        self._recovering = bool(recover)
        self.registry.add_listener(self)
        # Housekeeping starts after recovery: its sweep would otherwise race recover() for the same
        # workflows, and what it took would be missing from last_recovery (the notebook's banner).
        try:
            self.last_recovery: RecoverySummary | None = self.recover() if recover else None
        except BaseException:
            self.close(timeout=5)  # no worker, sender or registry listener left behind by a failed open
            raise
        self._timers.start()

    def __repr__(self) -> str:
        return f"<Engine db={self.db!r} owner={self._owner!r}>"

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- starting -----------------------------------------------------------------------------------

    def _plan_for(self, spec: WorkflowSpec) -> Plan:
        spec_json = spec.to_json()  # once: a long spec takes milliseconds to serialise
        key = fingerprint_of(spec_json)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan.compile(spec, spec_json=spec_json)
        return plan

    def _plan_from_json(self, spec_json: str, spec_hash: str) -> Plan:
        plan = self._plans.get(spec_hash)
        if plan is None:
            plan = Plan.compile(WorkflowSpec.model_validate_json(spec_json))
            self._plans[spec_hash] = plan
        return plan

    def validate(self, spec: str | Mapping[str, Any] | WorkflowSpec) -> WorkflowSpec:
        """Check a spec against this engine's actions without running anything."""
        return load_spec(spec, registry=self.registry)

    def start(
        self,
        spec: str | Mapping[str, Any] | WorkflowSpec,
        inputs: Mapping[str, Any] | None = None,
        *,
        user: str | None = None,
        as_user: str | None = None,
    ) -> Run:
        """Validate ``spec``, record the new workflow, and run it in the background.

        Returns its :class:`~airt_nb.Run` at once.  Raises
        :class:`~airt_nb.SpecError` (nothing is written) if the spec or the
        inputs are wrong, :class:`~airt_nb.PolicyError` if the policy forbids it.

        >>> run = eng.start(spec_yaml, inputs={"target": "out/r"})  # doctest: +SKIP
        """
        self._check_open()
        plan = self._plan_for(load_spec(spec, registry=self.registry))
        merged = dict(plan.spec.inputs)
        for key, value in (inputs or {}).items():
            if key not in merged:
                declared = ", ".join(merged) or "none"
                raise SpecError(
                    [(None, f"inputs.{key}", f"the workflow declares no input {key!r} (declared: {declared})")],
                    workflow=plan.spec.name,
                )
            merged[key] = value
        try:
            inputs_json = json.dumps(merged, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SpecError(
                [(None, "inputs", f"inputs must be JSON values ({exc})")], workflow=plan.spec.name
            ) from None
        actor = current_user(user) if user else self.user
        audit_rows: list[dict[str, Any]] = []  # recorded with the workflow, in one transaction
        if as_user and as_user != actor:
            verdict = self._policy.check_act_as(actor, as_user)
            if not verdict.allowed:
                self._audit_now("act_as", actor, verdict, target=as_user)
                raise self._policy_error(actor, verdict, f"act as {as_user!r}")
            audit_rows.append(self._audit_row("act_as", actor, verdict, target=as_user))
            actor = as_user
        audit_rows = self._check_start(actor, plan, merged, audit_rows)
        now = now_iso()
        workflow_id = uuid.uuid4().hex[:16]
        record = WorkflowRecord(
            workflow_id=workflow_id,
            name=plan.spec.name,
            status="RUNNING",
            spec=plan.spec_json,
            spec_hash=plan.spec_hash,
            inputs=inputs_json,
            created_at=now,
            updated_at=now,
            finished_at=None,
            error=None,
            started_by=actor,
            total_steps=len(plan.steps),
            done_steps=0,
            lease_owner=self._owner,
            lease_expires=self._lease_expiry(),
            requested=None,
            waiting_for=None,
            warnings=None,
        )
        ex = Execution(self, record, plan, None, inputs=merged)
        row = {
            "workflow_id": workflow_id,
            "name": record.name,
            "status": "RUNNING",
            "spec": record.spec,
            "spec_hash": record.spec_hash,
            "inputs": inputs_json,
            "created_at": now,
            "updated_at": now,
            "started_by": actor,
            "total_steps": record.total_steps,
            "lease_owner": self._owner,
            "lease_expires": record.lease_expires,
        }
        step_rows = [(workflow_id, s.name, s.index, s.type, s.action, "PENDING", 0, None) for s in plan.steps]
        with ex.lock:
            ops: list[Callable[[Tx], Any]] = []
            started = ex._take_ready(ops, now)
            settled = ex._settle_ops(ops, now)
            after, ex._after = ex._after, []

            def op(tx: Tx) -> None:
                tx.insert_workflow(row)
                tx.insert_steps(step_rows)
                for audit in audit_rows:
                    tx.insert_audit({**audit, "workflow_id": workflow_id})
                for o in ops:
                    o(tx)

            self._store.write(op)
            if not self._recovering:  # a recovering engine runs everything: no need to remember (memory)
                self._mine.add(workflow_id)
            with self._exec_lock:
                self._executions[workflow_id] = ex
            if after:
                self._approvals_requested(ex, after)
            if settled:
                ex._set_status(settled)
        if self._events:
            self._events.emit(ev.WorkflowStatusChanged(workflow_id, "RUNNING"))
        for name in started:
            self._emit_started(ex, name)
            self._submit(ex.drive, name)
        from .run import Run

        return Run(self, workflow_id)  # the id is ours and exact: no need to look it up as get() does

    # -- looking up ---------------------------------------------------------------------------------------

    def get(self, workflow_id: str) -> Run:
        """The :class:`~airt_nb.Run` of any workflow in the database (a unique id prefix is enough)."""
        from .run import Run

        return Run(self, self.resolve_id(workflow_id))

    def resolve_id(self, workflow_id: str) -> str:
        if self._store.workflow_status(workflow_id) is not None:
            return workflow_id
        prefix_ok = len(workflow_id) >= 4 and all(c in "0123456789abcdef" for c in workflow_id)
        matches = self._store.ids_with_prefix(workflow_id) if prefix_ok else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFoundError("unique workflow with the prefix", workflow_id, db=self.db)
        raise NotFoundError("workflow", workflow_id, db=self.db)

    def workflows(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[WorkflowRecord]:
        """Workflows in the database, newest first (all kernels, all processes); also ``Engine.list``."""
        return self._store.list_workflows(status=status, name=name, limit=limit, offset=offset)

    @property
    def store(self) -> SQLiteStore:
        """The storage this engine writes (for frames, panels and the CLI)."""
        return self._store

    @property
    def owner_id(self) -> str:
        return self._owner

    @property
    def policy(self) -> Policy:
        """The policy this engine enforces (panels ask it who may decide before offering the buttons)."""
        return self._policy

    def subscribe(self, fn: Callable[[ev.Event], Any]) -> Callable[[], None]:
        """Call ``fn(event)`` for every event of this engine's workflows; returns an unsubscribe function.

        ``fn`` runs on engine threads; it must be quick and must not block.
        """
        return self._events.subscribe(fn)

    def is_local(self, workflow_id: str) -> bool:
        """Whether this engine is executing the workflow right now."""
        return workflow_id in self._executions

    # -- status and waiting ----------------------------------------------------------------------------------

    def status_of(self, workflow_id: str) -> str:
        ex = self._executions.get(workflow_id)
        if ex is not None:
            return ex.status
        found = self._store.workflow_status(workflow_id)
        if found is None:
            raise NotFoundError("workflow", workflow_id, db=self.db)
        return found[0]

    def wait(self, workflow_id: str, timeout: float | None = None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                status = self.status_of(workflow_id)
                if status in SETTLED:
                    return status
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    record = self._store.workflow(workflow_id)
                    waiting = f", waiting for {record.waiting_for}" if record and record.waiting_for else ""
                    raise WaitTimeoutError(
                        f"workflow {workflow_id} is still {status}{waiting} after {timeout} s; "
                        "wait longer, or look at run.steps()"
                    )
                self._cv.wait(0.5 if remaining is None else min(remaining, 0.5))

    def _notify(self) -> None:
        with self._cv:
            self._cv.notify_all()

    # -- decisions ------------------------------------------------------------------------------------------------

    def approve(
        self, workflow_id: str, *, by: str | None = None, reason: str | None = None, approval_id: str | None = None
    ) -> Any:
        """Approve the workflow's pending approval and continue the workflow.

        ``by`` is who decides (default: this engine's user, i.e. ``AIRT_USER``,
        ``JUPYTERHUB_USER`` or the OS user); ``approval_id`` picks one of several
        pending approvals.  Returns the decided approval.  Raises
        :class:`~airt_nb.PolicyError` if ``by`` may not decide and
        :class:`~airt_nb.ApprovalError` if someone decided first.  See
        :func:`airt_nb.decisions.decide`.

        >>> eng.approve(run.id, by="ann", reason="looks good").status  # doctest: +SKIP
        'APPROVED'
        """
        from .decisions import decide

        return decide(self, self.resolve_id(workflow_id), True, by=by, reason=reason, approval_id=approval_id)

    def reject(
        self, workflow_id: str, *, by: str | None = None, reason: str | None = None, approval_id: str | None = None
    ) -> Any:
        """Reject the workflow's pending approval: what was done is rolled back (see :meth:`approve`)."""
        from .decisions import decide

        return decide(self, self.resolve_id(workflow_id), False, by=by, reason=reason, approval_id=approval_id)

    # -- cancel, rollback, resume -------------------------------------------------------------------------------------

    def cancel(self, workflow_id: str, *, by: str | None = None) -> str:
        """Stop a workflow: no new step starts, nothing is undone; ends CANCELLED."""
        return self._stop(self.resolve_id(workflow_id), "cancel", current_user(by) if by else self.user)

    def rollback(self, workflow_id: str, *, by: str | None = None) -> str:
        """Undo every completed step (newest first); ends ROLLED_BACK (or FAILED if an undo fails)."""
        return self._stop(self.resolve_id(workflow_id), "rollback", current_user(by) if by else self.user)

    def _stop(self, workflow_id: str, kind: str, by: str) -> str:
        self._check_open()
        ex = self._executions.get(workflow_id)
        if ex is not None and not ex.abandoned:
            ex.request_stop(kind, by)
            return kind
        record = self._store.workflow(workflow_id)
        if record is None:
            raise NotFoundError("workflow", workflow_id, db=self.db)
        allowed = {
            "cancel": ("RUNNING", "PAUSED", "PENDING"),
            "rollback": ("RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"),
        }[kind]
        if record.status not in allowed:
            raise WorkflowStateError(
                f"workflow {workflow_id} ({record.name}) is {record.status}: it cannot be "
                f"{'cancelled' if kind == 'cancel' else 'rolled back'} (possible when {', '.join(allowed)})",
                workflow_id=workflow_id,
                status=record.status,
            )
        now = now_iso()
        live_owner = record.lease_owner and record.lease_expires and record.lease_expires > now
        live_owner = live_owner and not is_dead_local_owner(record.lease_owner)  # type: ignore[arg-type]
        if record.status == "RUNNING" and live_owner:
            self._store.write(lambda tx: tx.request(workflow_id, kind))
            return "requested"
        if kind == "cancel":

            def cancel_op(tx: Tx) -> None:
                tx.skip_unfinished_steps(workflow_id, "CANCELLED")
                cancel_pending(tx, workflow_id, record.name, now, by, "workflow cancelled")
                tx.set_status(workflow_id, "CANCELLED", now, finished=True, release=True)

            self._store.write(cancel_op)
            self._emit_status(workflow_id, "CANCELLED")
            self._notify()
            return "CANCELLED"

        expires = self._lease_expiry()
        take = self._runs_here(workflow_id)

        def rollback_op(tx: Tx) -> bool:
            current = tx.get_workflow(workflow_id)
            if current is None or current.status != record.status:
                raise WorkflowStateError(
                    f"workflow {workflow_id} changed to {current.status if current else 'nothing'} meanwhile; try again",
                    workflow_id=workflow_id,
                )
            tx.reopen_failed_compensations(workflow_id)
            cancel_pending(tx, workflow_id, record.name, now, by, "workflow rolled back")
            tx.set_status(
                workflow_id,
                "ROLLING_BACK",
                now,
                new_owner=self._owner if take else None,
                lease_expires=expires if take else None,
                release=not take,
            )
            return True

        self._store.write(rollback_op)
        self._emit_status(workflow_id, "ROLLING_BACK")
        self._notify()
        if take:
            self._adopt(workflow_id)
        return "ROLLING_BACK"

    def resume(self, workflow_id: str) -> str:
        """Take over a RUNNING / ROLLING_BACK workflow that no live engine runs, now."""
        self._check_open()
        workflow_id = self.resolve_id(workflow_id)
        if workflow_id in self._executions:
            return "already running here"
        record = self._store.workflow(workflow_id)
        assert record is not None
        if record.status == "PAUSED":
            raise WorkflowStateError(
                f"workflow {workflow_id} ({record.name}) is PAUSED for an approval: approve or reject it",
                workflow_id=workflow_id,
                status=record.status,
            )
        if record.status not in ("RUNNING", "ROLLING_BACK"):
            raise WorkflowStateError(
                f"workflow {workflow_id} ({record.name}) is {record.status}: there is nothing to resume",
                workflow_id=workflow_id,
                status=record.status,
            )
        if self._claim([workflow_id], takeover=self._dead_owners()):
            self._mine.add(workflow_id)  # after the claim: housekeeping must not race this call for it
            self._adopt(workflow_id)
            return "resumed"
        current = self._store.workflow(workflow_id)
        if current is not None and current.lease_owner == self._owner:
            return "resumed"  # this engine's housekeeping took it up meanwhile
        return "owned by another live engine"

    # -- recovery ----------------------------------------------------------------------------------------------------

    def recover(self) -> RecoverySummary:
        """Resume what a dead engine left RUNNING / ROLLING_BACK and restore PAUSED runs' deadlines.

        Returns what was resumed, restored (waiting for approval), left waiting
        for an action to be defined, and skipped (run by another live engine).
        From then on this engine's housekeeping also takes up workflows nobody
        runs (a decision made elsewhere, a dead engine's), as with ``recover=True``.
        """
        self._check_open()
        summary = RecoverySummary()
        now = now_iso()
        dead = self._dead_owners()
        candidates = self._store.claimable(now, limit=1_000_000)
        if dead:
            candidates += self._store.owned_by(dead, limit=1_000_000)
        claimable: list[str] = []
        for workflow_id, _status, _owner, waiting_for in candidates:
            missing = self._missing_action(waiting_for)
            if missing:
                summary.waiting_for_action[workflow_id] = missing
            else:
                claimable.append(workflow_id)
        batch = 64  # small first batch: the first workflow resumes quickly
        index = 0
        while index < len(claimable):
            chunk = claimable[index : index + batch]
            index += batch
            batch = min(batch * 4, 2000)
            for workflow_id in self._claim(chunk, takeover=dead):
                try:
                    waiting = self._adopt(workflow_id)
                except Exception as exc:  # one bad workflow never stops the sweep
                    log.exception("workflow %s could not be resumed", workflow_id)
                    summary.skipped[workflow_id] = f"error: {exc}"
                    continue
                if waiting:
                    summary.waiting_for_action[workflow_id] = waiting
                else:
                    summary.resumed.append(workflow_id)
        resumed = set(summary.resumed)  # membership in a list made this loop quadratic
        for workflow_id in claimable:
            if workflow_id in resumed or workflow_id in summary.waiting_for_action:
                continue
            if workflow_id in self._executions:  # resumed by this engine's housekeeping meanwhile
                summary.resumed.append(workflow_id)
            else:
                summary.skipped.setdefault(workflow_id, "taken by another engine")
        restored = set(summary.restored)
        for workflow_id, _ in self._store.paused_with_pending():
            if workflow_id not in restored:
                restored.add(workflow_id)
                summary.restored.append(workflow_id)
        for workflow_id, _status, owner, _ in self._store.owned_by(
            [o for o in self._store.lease_owners() if o != self._owner and o not in dead]
        ):
            host, pid = (owner or "?|?").split("|")[:2]
            summary.skipped.setdefault(workflow_id, f"running in {host} pid {pid}")
        self._schedule_deadlines()
        self._recovering = True
        if self._webhook is not None:
            self._webhook.kick()
        log.info("airt_nb recovery on %s: %s", self.db, summary)
        return summary

    def _missing_action(self, waiting_for: str | None) -> str | None:
        if waiting_for and waiting_for.startswith("action "):
            name = waiting_for[len("action ") :]
            if name not in self.registry:
                return name
        return None

    def _dead_owners(self) -> list[str]:
        return [o for o in self._store.lease_owners() if o != self._owner and is_dead_local_owner(o)]

    def _claim(self, workflow_ids: list[str], *, takeover: list[str] | None = None) -> list[str]:
        if not workflow_ids or self._closing:
            return []
        now = now_iso()
        expires = self._lease_expiry()
        dead = list(takeover or [])

        def op(tx: Tx) -> list[str]:
            return [w for w in workflow_ids if tx.claim(w, self._owner, expires, now, dead)]

        return self._store.write(op)

    def _adopt(self, workflow_id: str) -> str | None:
        """Build the execution of a workflow this engine just claimed and continue it.

        Returns the missing action's name if it has to wait for one.
        """
        record = self._store.workflow(workflow_id)
        if record is None or record.lease_owner != self._owner:
            return None
        plan = self._plan_from_json(record.spec, record.spec_hash)
        steps = self._store.steps(workflow_id)
        ex = Execution(self, record, plan, steps, inputs=json.loads(record.inputs))
        if record.status == "RUNNING" and record.requested in ("cancel", "rollback"):
            ex.stopping = record.requested  # asked for before this engine took the workflow over
        if any(s.is_approval for s in plan.steps) or record.status == "ROLLING_BACK":
            ex.load_intents()
        missing = ex.first_missing_action()
        if missing:
            waiting = f"waiting for action {missing} to be defined"
            self._store.write(lambda tx: tx.release(workflow_id, self._owner, waiting_for=f"action {missing}"))
            self._waiting[workflow_id] = f"action {missing}"
            log.info("workflow %s: %s", workflow_id, waiting)
            return missing
        warnings = self._code_changes(plan, steps)
        if warnings:

            def warn(tx: Tx) -> None:
                for w in warnings:
                    tx.add_warning(workflow_id, w)

            self._store.write(warn)
            for w in warnings:
                log.warning("workflow %s: %s", workflow_id, w)
        with self._exec_lock:
            old = self._executions.get(workflow_id)
            if old is not None and not old.abandoned:
                return None
            self._executions[workflow_id] = ex
        self._waiting.pop(workflow_id, None)
        try:
            ex.resume()
        except Exception:
            ex.abandon("error while resuming; this engine tries again shortly", retry=True)
            raise
        return ex.deferred_on.removeprefix("action ") if ex.deferred_on else None

    def _code_changes(self, plan: Plan, steps: list[Any]) -> list[str]:
        warnings = []
        for r in steps:
            if not r.fingerprint or not r.action:
                continue
            act = self.registry.get(r.action)
            if act is not None and act.fingerprint != r.fingerprint:
                warnings.append(
                    f"the code of action {r.action!r} changed since step {r.step_name!r} ran; "
                    "the workflow continues with the new code"
                )
        return warnings

    def _forget(self, ex: Execution, waiting_for: str | None = None) -> None:
        with self._exec_lock:
            if self._executions.get(ex.id) is ex:
                del self._executions[ex.id]
        if waiting_for:
            self._waiting[ex.id] = waiting_for
        self._notify()

    def action_registered(self, name: str) -> None:
        """Registry callback: resume workflows that waited for this action."""
        if not self._closing and any(w == f"action {name}" for w in self._waiting.values()):
            self._timers.at(0, self._claim_waiting)
        elif not self._closing:
            self._timers.wake()

    def _claim_waiting(self) -> None:
        self._data_version = -1
        self._sweep()

    # -- housekeeping ----------------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._closing:
            return
        mono = time.monotonic()
        if mono - self._last_renew > self.lease_ttl / 3:
            self._last_renew = mono
            expires = self._lease_expiry()
            self._store.write(lambda tx: tx.renew(self._owner, expires))
        # Only what others committed: our own checkpoints need no sweep (at 10,000 running
        # workflows, sweeping after each of them cost a fifth of the engine's time).
        version = self._store.others_version()
        expired = self._next_expiry is not None and now_iso() > self._next_expiry
        orphans_due = bool(self._orphans) and mono >= self._orphan_due
        if version == self._data_version and mono - self._last_dead_check < 5 and not expired and not orphans_due:
            return
        self._data_version = version
        self._notify()
        if self._webhook is not None:
            self._webhook.kick()  # another process may have queued a delivery
        self._sweep()

    def _sweep(self) -> None:
        if self._closing:
            return
        for workflow_id, kind in self._store.requests_for(self._owner):
            ex = self._executions.get(workflow_id)
            if kind in ("cancel", "rollback"):
                # Stays recorded until the workflow finishes, so that a crash cannot forget it.
                if ex is not None and ex.stopping != kind:
                    ex.request_stop(kind, "another process", record=False)
                continue
            self._store.write(functools.partial(_clear_request, workflow_id=workflow_id))
            if ex is not None:
                self._apply_decisions(ex)
        self._readopt_orphans()
        now = now_iso()
        candidates = self._store.claimable(now, limit=500)
        mono = time.monotonic()
        dead: list[str] = []
        if mono - self._last_dead_check > 1.0:
            self._last_dead_check = mono
            dead = self._dead_owners()
            if dead:
                candidates += self._store.owned_by(dead, limit=500)
        wanted = []
        for workflow_id, _status, _owner, waiting_for in candidates:
            if workflow_id in self._executions or not self._runs_here(workflow_id):
                continue
            if self._missing_action(waiting_for):
                continue
            wanted.append(workflow_id)
        for workflow_id in self._claim(wanted, takeover=dead):
            try:
                self._adopt(workflow_id)
            except Exception:
                log.exception("workflow %s could not be resumed", workflow_id)
        # A frozen owner stops renewing without changing the database: look again when its lease runs out.
        self._next_expiry = self._store.next_lease_expiry(self._owner, now_iso())
        self._schedule_deadlines()

    def _runs_here(self, workflow_id: str) -> bool:
        """Whether this engine takes up the workflow when it is runnable and nobody runs it."""
        return self._recovering or workflow_id in self._mine

    def _orphaned(self, ex: Execution) -> None:
        self._orphans[ex.id] = ex
        self._orphan_due = time.monotonic() + self._orphan_pause

    def _readopt_orphans(self) -> None:
        if not self._orphans or time.monotonic() < self._orphan_due or self._closing:
            return
        for workflow_id, old in list(self._orphans.items()):
            if old.running_actions:
                continue  # its step is still executing on a worker: never run it twice at once here
            record = self._store.workflow(workflow_id)
            if record is None or record.lease_owner != self._owner or record.status not in ("RUNNING", "ROLLING_BACK"):
                self._orphans.pop(workflow_id, None)  # finished, or another engine took it over
                continue
            if self._orphans.get(workflow_id) is old:
                del self._orphans[workflow_id]
            try:
                self._adopt(workflow_id)
            except Exception:
                log.exception("workflow %s could not be continued yet", workflow_id)
        if self._orphans:
            self._orphan_pause = min(self._orphan_pause * 2, 30.0)
            self._orphan_due = time.monotonic() + self._orphan_pause
        else:
            self._orphan_pause = 1.0

    def _apply_decisions(self, ex: Execution) -> None:
        for r in self._store.steps(ex.id):
            if ex.state.get(r.step_name) == "WAITING" and r.status in ("COMPLETED", "REJECTED"):
                outputs = json.loads(r.outputs) if r.outputs else None
                ex.on_decision(r.step_name, r.status == "COMPLETED", outputs)

    def _schedule_deadlines(self) -> None:
        for approval_id, _workflow_id, deadline in self._store.pending_deadlines():
            if approval_id in self._scheduled_deadlines:
                continue
            self._scheduled_deadlines.add(approval_id)
            self._timers.at(to_epoch(deadline), functools.partial(self._submit, self._expire, approval_id))

    def _expire(self, approval_id: str) -> None:
        from .decisions import expire

        self._scheduled_deadlines.discard(approval_id)
        if not self._closing:
            expire(self, approval_id)

    # -- hooks used by executions -------------------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._closed:
            return
        try:
            self._pool.submit(self._guard, fn, *args)
        except RuntimeError:  # pool shut down while closing
            pass

    @staticmethod
    def _guard(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except LeaseLostError:
            pass
        except Exception:
            log.exception("airt_nb worker task failed")
            ex = getattr(fn, "__self__", None)
            if isinstance(ex, Execution):  # e.g. a retry or a compensation whose checkpoint failed
                ex.abandon("error; this engine continues it from its last checkpoint shortly", retry=True)

    def _emit_started(self, ex: Execution, name: str) -> None:
        if self._events:
            self._events.emit(ev.StepStarted(ex.id, name, ex.attempt.get(name, 1)))

    def _emit_status(self, workflow_id: str, status: str) -> None:
        if self._events:
            self._events.emit(ev.WorkflowStatusChanged(workflow_id, status))

    def _log_failure(self, ex: Execution, step: str, error: str, detail: str | None) -> None:
        log.info("workflow %s (%s): step %s failed: %s", ex.id, ex.name, step, error)

    def _lease_expiry(self) -> str:
        return iso(time.time() + self.lease_ttl)

    def _webhook_rows(self, event: str, approval: dict[str, Any], workflow_name: str) -> list[dict[str, Any]]:
        if self._webhook is None:
            return []
        from .webhooks import outbox_row

        return [outbox_row(event, approval, workflow_name, self._webhook.url)]

    def _approvals_requested(self, ex: Execution, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("deadline"):
                self._scheduled_deadlines.add(row["approval_id"])
                self._timers.at(
                    to_epoch(row["deadline"]), functools.partial(self._submit, self._expire, row["approval_id"])
                )
            if self._events:
                self._events.emit(ev.ApprovalRequested(ex.id, row["approval_id"], row["step_name"], row["message"]))
        if self._webhook is not None:
            self._webhook.kick()

    # -- policy ---------------------------------------------------------------------------------------------------------------

    def _policy_error(
        self, user: str, verdict: Any, what: str, *, workflow: str | None = None, step: str | None = None
    ) -> PolicyError:
        roles = self._policy.roles_of(user)
        role_text = ", ".join(roles) if roles else "none"
        reason = f": {verdict.reason}" if verdict.reason else ""
        where = f"workflow {workflow!r}, step {step!r}: " if workflow and step else ""
        return PolicyError(
            f"{where}user {user!r} (roles: {role_text}) may not {what}; refused by rule {verdict.rule!r}{reason}",
            user=user,
            roles=roles,
            rule=verdict.rule,
            workflow=workflow,
            step=step,
        )

    def _audit_row(self, event: str, user: str, verdict: Any, **kw: Any) -> dict[str, Any]:
        return {
            "at": now_iso(),
            "user": user,
            "roles": json.dumps(list(self._policy.roles_of(user))),
            "event": event,
            "decision": "allow" if verdict.allowed else "deny",
            "rule": verdict.rule,
            "workflow_id": kw.get("workflow_id"),
            "step_name": kw.get("step_name"),
            "action": kw.get("action"),
            "target": kw.get("target") or getattr(verdict, "target", None),
            "detail": kw.get("detail") or verdict.reason or None,
        }

    def _audit_now(
        self, event: str, user: str, verdict: Any, *, before: Sequence[dict[str, Any]] = (), **kw: Any
    ) -> None:
        rows = [*before, self._audit_row(event, user, verdict, **kw)]

        def op(tx: Tx) -> None:
            for row in rows:
                tx.insert_audit(row)

        with contextlib.suppress(StoreError):
            self._store.write(op)

    def _check_start(
        self, user: str, plan: Plan, inputs: Mapping[str, Any], before: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Check every action step for ``user``; returns the audit rows to record with the start.

        ``before`` are rows already decided (acting as ``user``): recorded with a refusal too.

        Inputs that use only workflow inputs are checked with their values now;
        those that use another step's outputs are :data:`~airt_nb.policy.UNKNOWN`
        here and checked before the step runs.
        """
        from .expressions import ExpressionError, compile_value, find_references
        from .policy import UNKNOWN, Verdict

        rows = list(before)
        context = {"inputs": dict(inputs), "workflow": {"name": plan.spec.name}}
        for step in plan.steps:
            if step.is_approval or step.action is None:
                continue
            known: dict[str, Any] = {}
            for key, value in step.inputs.items():
                if any(ref.step or ref.parts == ("workflow", "id") for _, ref in find_references(value)):
                    known[key] = UNKNOWN
                    continue
                resolver = compile_value(value)
                try:
                    known[key] = resolver(context) if resolver else value
                except ExpressionError:
                    known[key] = UNKNOWN
            verdict = self._policy.check_action(user, step.action, known)
            if not verdict.allowed:
                detail = f"workflow {plan.spec.name!r}: {verdict.reason}"
                self._audit_now(
                    "start", user, verdict, before=before, step_name=step.name, action=step.action, detail=detail
                )
                raise self._policy_error(
                    user, verdict, f"run action {step.action!r}", workflow=plan.spec.name, step=step.name
                )
            if self._policy.enforcing:
                rows.append(self._audit_row("start", user, verdict, step_name=step.name, action=step.action))
        if self._policy.enforcing and any(s.is_approval for s in plan.steps):
            limit = self._policy.check_pending(user, self._store.pending_approvals_of(user))
            if limit is not None and not limit.allowed:
                detail = f"workflow {plan.spec.name!r}: {limit.reason}"
                self._audit_now("start", user, limit, before=before, detail=detail)
                raise self._policy_error(user, limit, f"start {plan.spec.name!r}, which asks for an approval")
            if limit is not None:
                rows.append(self._audit_row("start", user, limit))
        if len(rows) == len(before):  # no policy: still record who started it
            rows.append(self._audit_row("start", user, Verdict(True, "no policy")))
        return rows

    def _check_step(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> None:
        user = ex.started_by or self.user
        verdict = self._policy.check_action(user, step.action or "", inputs)
        self._audit_now("step", user, verdict, workflow_id=ex.id, step_name=step.name, action=step.action)
        if not verdict.allowed:
            raise self._policy_error(user, verdict, f"run action {step.action!r}", workflow=ex.name, step=step.name)

    # -- closing ------------------------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise WorkflowStateError(f"the engine on {self.db} is closed; create a new Engine")

    def close(self, timeout: float | None = None) -> None:
        """Let in-flight steps finish and checkpoint, release every lease, and close the database.

        Workflows not finished stay RUNNING in the database; the next engine
        that opens it carries them on.
        """
        if self._closed:
            return
        self._closing = True
        self.registry.remove_listener(self)
        for ex in list(self._executions.values()):
            ex.cancelled.set()  # interruptible steps (wait) stop early and run again later
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(ex.executing and not ex.abandoned for ex in list(self._executions.values())):
            if deadline is not None and time.monotonic() > deadline:
                break
            retrying_only = all(
                all(ex.state.get(n) == "RETRYING" for n in ex.executing) for ex in list(self._executions.values())
            )
            if retrying_only:
                break
            time.sleep(0.01)
        self._timers.stop()
        if self._webhook is not None:
            self._webhook.stop()
        with contextlib.suppress(StoreError):
            self._store.write(lambda tx: tx.release_all(self._owner))
        self._pool.shutdown(wait=timeout is None, cancel_futures=True)
        self._closed = True
        self._notify()
        self._store.close()

    # Last in the class body, so that ``list[...]`` annotations above mean the builtin.
    def list(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> builtins.list[WorkflowRecord]:
        """Same as :meth:`workflows`."""
        return self.workflows(status=status, name=name, limit=limit, offset=offset)


def _check_webhook_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise AirtError(
            f"webhook URL {url!r} (AIRT_WEBHOOK_URL) must start with http:// or https://; "
            "set it to the full address of the receiver, or unset it"
        )


def _clear_request(tx: Tx, *, workflow_id: str) -> None:
    tx.clear_request(workflow_id)


def _policy_from(policy: Policy | str | os.PathLike[str] | None) -> Policy:
    """``policy`` itself, the file it names, the file ``AIRT_POLICY`` names, or allow-all."""
    if policy is None:
        policy = os.environ.get("AIRT_POLICY") or None
        if policy is None:
            return AllowAll()
    if isinstance(policy, str | os.PathLike):
        from .policy import load_policy

        return load_policy(policy)
    return policy


_ = TERMINAL
