"""The engine: starts workflows, owns them through leases, and carries them on.

An :class:`Engine` opens one database and runs the workflows it owns on a
pool of worker threads.  Around them:

* a lease keeper thread renews the engine's lease (:mod:`airt_nb.leases`);
* the store's listener wakes the engine when another engine needs it (a
  decision, a cancel, work released) and never for the engine's own
  checkpoints;
* one housekeeping thread runs timers (retry back-offs, approval deadlines),
  the sweeps of :mod:`airt_nb.recovery`, and writes the progress of running
  workflows once a second.

What an execution, a decision and a sweep may ask of the engine is a
narrow, named interface (:class:`~airt_nb.execution.ExecutionHost`,
:class:`~airt_nb.decisions.DecisionHost`, :class:`~airt_nb.recovery.RecoveryHost`),
implemented here by one adapter; those modules import no engine.

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
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from .actions import Registry, default_registry
from .decisions import cancel_pending, decide, expire
from .errors import AirtError, NotFoundError, SpecError, StoreError, WorkflowStateError
from .execution import Execution
from .identity import current_user
from .leases import LeaseKeeper
from .limits import check_inputs
from .ownership import MACHINE, describe_owner, is_dead_local_owner, make_owner_id, parse_owner
from .plan import Plan
from .policy import AllowAll, Policy, Verdict
from .policy_gate import PolicyGate
from .recovery import Recovery, RecoverySummary
from .spec import WorkflowSpec, fingerprint_of, load_spec
from .store import open_store
from .store.base import LeaseLostError
from .store.protocol import Store
from .store.records import SETTLED, TERMINAL, WorkflowRecord
from .timers import Timers
from .timeutil import iso, now_iso
from .undocopies import discard_undo_copies, undo_dir_for
from .urls import check_webhook_url

if TYPE_CHECKING:
    from .plan import PlannedStep
    from .run import Run
    from .store.records import ApprovalRecord
    from .store.writes import Tx

__all__ = ["Engine", "RecoverySummary", "WaitTimeoutError"]

log = logging.getLogger("airt_nb")

DEFAULT_HOME_GRACE = 30.0
PROGRESS_EVERY = 1.0  # seconds between two writes of running workflows' progress
REMOTE_POLL = 0.05  # seconds between two looks at a workflow another engine runs, in wait()


class WaitTimeoutError(AirtError, TimeoutError):
    """``Run.wait(timeout=...)`` ran out of time before the run finished or paused."""


class Engine:
    """Runs workflows durably against one database.

    Parameters
    ----------
    db:
        SQLite file path (or ``sqlite:///path``), or a ``postgresql://`` URL;
        default ``$AIRT_DB`` or ``./airt.db``.
    recover:
        Resume RUNNING / ROLLING_BACK workflows and restore PAUSED ones when
        opening, and keep taking up workflows nobody runs (default;
        ``AIRT_RECOVER=0`` turns it off).  With ``recover=False`` the engine
        only ever runs the workflows it started (its own, also after a
        decision made elsewhere) or was asked to ``resume``: this is how the
        ``airt`` command works, until :meth:`recover` is called by hand.
    durability:
        ``"normal"`` survives a crash of the process; ``"full"`` also a power loss.
    session:
        The notebook session this engine belongs to (default ``$JPY_SESSION_NAME``,
        which Jupyter sets to the notebook's path, else the working directory).
        After a kernel restart, the engine of the same session takes its
        workflows back before any other engine does.
    home_grace:
        Seconds other engines leave the workflows of an engine that is gone to
        a restarted engine of the same session (default ``$AIRT_HOME_GRACE`` or 30).
    lease_ttl:
        Seconds an engine's lease lasts; renewed every third of it.  Another
        engine takes over the workflows of an engine whose lease ran out (at
        once when that engine's process is dead on this machine).
    poll_interval:
        Seconds between two looks for work nobody runs when no other engine
        signals any (default 1).
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
        ``$JUPYTERHUB_USER`` or the OS user.  On PostgreSQL with a per-user
        role (``airt db grant``), always that role.
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
        poll_interval: float = 1.0,
        compensation_attempts: int = 2,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_timeout: float = 5.0,
        webhook_max_attempts: int = 8,
        webhook_initial_delay: float = 1.0,
        webhook_max_delay: float = 300.0,
        busy_timeout: float = 10.0,
        session: str | None = None,
        home_grace: float | None = None,
    ):
        # The policy and the settings first: a bad one stops the engine before it opens anything.
        policy_obj: Policy = _policy_from(policy)
        url = webhook_url if webhook_url is not None else os.environ.get("AIRT_WEBHOOK_URL")
        secret = webhook_secret if webhook_secret is not None else os.environ.get("AIRT_WEBHOOK_SECRET")
        if url:
            url = check_webhook_url(url)
        grace = _home_grace(home_grace)
        if lease_ttl <= 0 or poll_interval <= 0:
            raise AirtError(
                f"lease_ttl and poll_interval must be more than 0 seconds, got {lease_ttl}, {poll_interval}"
            )
        self._store: Store = open_store(db, durability=durability, busy_timeout=busy_timeout)
        try:
            self._store.check_writable()
        except StoreError:
            self._store.close()
            raise
        self.db = self._store.path
        self.registry = registry or default_registry
        # A per-user PostgreSQL role is who acts here, whatever AIRT_USER or user= claim.
        self.user = self._store.authenticated_user or current_user(user)
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.compensation_attempts = max(1, compensation_attempts)
        self.session = session or os.environ.get("JPY_SESSION_NAME") or os.getcwd()
        self.home_grace = grace
        self._policy = policy_obj
        self._gate = PolicyGate(policy_obj, self._store)
        self._owner = make_owner_id()
        self._events = ev.Emitter()
        self._executions: dict[str, Execution] = {}
        self._exec_lock = threading.Lock()
        self._cv = threading.Condition()
        self._closing = False
        self._closed = False
        self._plans: dict[str, Plan] = {}
        self._waiting: dict[str, str] = {}
        self._signalled = threading.Event()
        self._next_sweep = 0.0
        self._next_progress = time.monotonic() + PROGRESS_EVERY
        # Executions stopped by an error (e.g. a checkpoint the locked database refused): rebuilt from
        # their last checkpoint by housekeeping, with a growing pause, instead of staying stuck.
        self._orphans: dict[str, Execution] = {}
        self._orphan_due = 0.0
        self._orphan_pause = 1.0
        self._host = _Hosting(self)
        self._recovery = Recovery(self._host)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="airt-worker")
        self._timers = Timers(self._tick, min(poll_interval, 0.25))
        self._leases = LeaseKeeper(self._store, self._owner, lease_ttl, on_lost=self._signalled.set)
        self._webhook = None
        if recover is None:
            recover = os.environ.get("AIRT_RECOVER", "1").strip().lower() not in ("0", "false", "no", "off")
        self._recovering = bool(recover)
        try:
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
            self.registry.add_listener(self)
            self._store.hold_engine_lock(self._owner)  # before registering: it never looks dead
            self._register()
            self._leases.start()
            self._store.listen(self._owner, self._on_signal)
            # Housekeeping starts after recovery: its sweep would otherwise race recover() for the same
            # workflows, and what it took would be missing from last_recovery (the notebook's banner).
            self.last_recovery: RecoverySummary | None = self.recover() if recover else None
        except BaseException:
            self.close(timeout=5)  # no worker, sender, listener or open file left behind by a failed open
            raise
        self._timers.start()

    def __repr__(self) -> str:
        return f"<Engine db={self.db!r} owner={self._owner!r}>"

    def _register(self) -> None:
        """Record this engine (its lease says it is alive) and forget engines long gone."""
        info = parse_owner(self._owner)
        row = {
            "owner_id": self._owner,
            "machine": MACHINE,
            "host": info.host if info else None,
            "pid": os.getpid(),
            "session": self.session,
            "workdir": os.getcwd(),
            "user_name": self.user,
            "takes_work": 1 if self._recovering else 0,
        }
        now = self._store.now()
        row["now"] = now
        row["expires"] = iso(time.time() + self.lease_ttl)
        week_ago = iso(time.time() - 7 * 86400)
        ttl = self.lease_ttl

        def op(tx: Tx) -> None:
            tx.register_engine(row, ttl)
            tx.prune_engines(week_ago)

        self._store.write(op)

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
        workdir: str | os.PathLike[str] | None = None,
    ) -> Run:
        """Validate ``spec``, record the new workflow, and run it in the background.

        Returns its :class:`~airt_nb.Run` at once.  Raises
        :class:`~airt_nb.SpecError` (nothing is written) if the spec or the
        inputs are wrong, :class:`~airt_nb.PolicyError` if the policy forbids it.

        ``workdir`` is the folder the workflow runs in (default: the current
        working directory): relative paths of its steps and of their undos
        resolve against it, whichever engine runs them.

        >>> run = eng.start(spec_yaml, inputs={"target": "out/r"})  # doctest: +SKIP
        """
        self._check_open()
        plan = self._plan_for(load_spec(spec, registry=self.registry))
        name = plan.spec.name
        folder = _workdir(workdir, name)
        merged = _merge_inputs(plan.spec.inputs, inputs, name)
        actor = current_user(user) if user else self.user
        audit_rows: list[dict[str, Any]] = []  # recorded with the workflow, in one transaction
        if as_user and as_user != actor:
            audit_rows.append(self._gate.act_as(actor, as_user))
            actor = as_user
        audit_rows = self._gate.check_start(actor, plan, merged, audit_rows)
        now = now_iso()
        workflow_id = uuid.uuid4().hex[:16]
        record = WorkflowRecord(
            workflow_id=workflow_id,
            name=name,
            status="RUNNING",
            spec=plan.spec_json,
            spec_hash=plan.spec_hash,
            inputs=json.dumps(merged),
            created_at=now,
            updated_at=now,
            finished_at=None,
            error=None,
            started_by=actor,
            total_steps=len(plan.steps),
            done_steps=0,
            lease_owner=self._owner,
            lease_expires=None,
            requested=None,
            waiting_for=None,
            warnings=None,
            workdir=folder,
            session=self.session,
            home=self._owner,
        )
        ex = Execution(self._host, record, plan, None, inputs=merged)
        row = {
            "workflow_id": workflow_id,
            "name": name,
            "status": "RUNNING",
            "spec": record.spec,
            "spec_hash": record.spec_hash,
            "inputs": record.inputs,
            "created_at": now,
            "updated_at": now,
            "started_by": actor,
            "total_steps": record.total_steps,
            "lease_owner": self._owner,
            "workdir": folder,
            "session": self.session,
        }
        with ex.lock:
            ops, started, settled = ex.begin(now)
            running = set(started)
            step_rows = [
                (
                    workflow_id,
                    s.name,
                    s.index,
                    s.type,
                    s.action,
                    *(("RUNNING", 1, now) if s.name in running else ("PENDING", 0, None)),
                )
                for s in plan.steps
            ]

            def op(tx: Tx) -> list[int]:
                tx.insert_workflow(row)
                ids = tx.insert_steps(workflow_id, step_rows)
                for audit in audit_rows:
                    tx.insert_audit({**audit, "workflow_id": workflow_id})
                tx.add_event(workflow_id, now, "started", actor, f"in {folder}")
                for o in ops:
                    o(tx)
                return ids

            ids = self._store.write(op)
            for s, step_id in zip(plan.steps, ids, strict=True):
                ex.step_id[s.name] = step_id
            with self._exec_lock:
                self._executions[workflow_id] = ex
            ex.committed(settled)
        if self._events:
            self._events.emit(ev.WorkflowStatusChanged(workflow_id, "RUNNING"))
        for step_name in started:
            ex._emit_started(step_name)
            self._submit(ex.drive, step_name)
        from .run import Run

        return Run(self, workflow_id)  # the id is ours and exact: no need to look it up as get() does

    # -- looking up ---------------------------------------------------------------------------------------

    def get(self, workflow_id: str) -> Run:
        """The :class:`~airt_nb.Run` of any workflow in the database (a unique id prefix is enough)."""
        from .run import Run

        return Run(self, self.resolve_id(workflow_id))

    def resolve_id(self, workflow_id: str) -> str:
        """The full id of the workflow ``workflow_id`` names (itself, or a unique prefix of 4+ characters)."""
        if not isinstance(workflow_id, str) or not workflow_id:
            raise NotFoundError("workflow", str(workflow_id), db=self.db)
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
    ) -> builtins.list[WorkflowRecord]:
        """Workflows in the database, newest first (all kernels, all processes); also ``Engine.list``."""
        return self._store.list_workflows(status=status, name=name, limit=limit, offset=offset)

    @property
    def store(self) -> Store:
        """The storage this engine writes (for frames, panels and the CLI)."""
        return self._store

    @property
    def owner_id(self) -> str:
        """This engine's id in the database (``host|pid|start|machine|token``)."""
        return self._owner

    @property
    def policy(self) -> Policy:
        """The policy this engine checks starts, steps and decisions against."""
        return self._policy

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing

    def subscribe(self, fn: Callable[[ev.Event], Any]) -> Callable[[], None]:
        """Call ``fn(event)`` for every event of this engine's workflows; returns an unsubscribe function.

        ``fn`` runs on engine threads; it must be quick and must not block.
        """
        return self._events.subscribe(fn)

    def is_local(self, workflow_id: str) -> bool:
        """Whether this engine is executing the workflow right now."""
        return workflow_id in self._executions

    def where(self, workflow_id: str) -> str:
        """Where the workflow runs, for people: ``"here"``, ``"host pid N"``, or ``"nowhere"``."""
        if workflow_id in self._executions:
            return "here"
        record = self._store.workflow(workflow_id)
        if record is None:
            raise NotFoundError("workflow", workflow_id, db=self.db)
        return describe_owner(record.lease_owner) if record.lease_owner else "nowhere"

    # -- status and waiting ----------------------------------------------------------------------------------

    def status_of(self, workflow_id: str) -> str:
        ex = self._executions.get(workflow_id)
        if ex is not None:
            return ex.status
        found = self._store.workflow_status(workflow_id)
        if found is None:
            raise NotFoundError("workflow", workflow_id, db=self.db)
        return found[0]

    def wait(self, workflow_id: str, timeout: float | None = None, *, until: str = "settled") -> str:
        """Block until the workflow is finished or PAUSED (``until="done"``: finished) and return its status.

        A workflow another engine runs is followed in the database.
        Raises :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        if until not in ("settled", "done"):
            raise AirtError(f"until must be 'settled' (finished or paused) or 'done' (finished), got {until!r}")
        wanted = SETTLED if until == "settled" else TERMINAL
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                status = self.status_of(workflow_id)
                if status in wanted:
                    return status
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    record = self._store.workflow(workflow_id)
                    waiting = f", waiting for {record.waiting_for}" if record and record.waiting_for else ""
                    raise WaitTimeoutError(
                        f"workflow {workflow_id} is still {status}{waiting} after {timeout} s; "
                        "wait longer, or look at run.steps()"
                    )
                pause = 0.5 if workflow_id in self._executions else REMOTE_POLL
                self._cv.wait(pause if remaining is None else min(remaining, pause))

    def _notify(self) -> None:
        with self._cv:
            self._cv.notify_all()

    # -- decisions ------------------------------------------------------------------------------------------------

    def approve(
        self,
        workflow_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        approval_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> ApprovalRecord:
        """Approve the workflow's pending approval; the workflow continues.

        ``by`` is who decides (default: this engine's user, i.e. ``AIRT_USER``,
        ``JUPYTERHUB_USER`` or the OS user); deciding as someone else needs the
        policy's ``act_as`` right, unless ``authenticated_by`` says how that
        person was authenticated (the approvals page does).  ``approval_id``
        picks one of several pending approvals.  Returns the decided approval.
        Raises :class:`~airt_nb.PolicyError` if ``by`` may not decide and
        :class:`~airt_nb.ApprovalError` if someone decided first.

        >>> eng.approve(run.id, by="ann", reason="looks good").status  # doctest: +SKIP
        'APPROVED'
        """
        return decide(
            self._host,
            self.resolve_id(workflow_id),
            True,
            by=by,
            reason=reason,
            approval_id=approval_id,
            authenticated_by=authenticated_by,
        )

    def reject(
        self,
        workflow_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        approval_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> ApprovalRecord:
        """Reject the workflow's pending approval: what was done is rolled back (see :meth:`approve`)."""
        return decide(
            self._host,
            self.resolve_id(workflow_id),
            False,
            by=by,
            reason=reason,
            approval_id=approval_id,
            authenticated_by=authenticated_by,
        )

    def _decided(self, approval: ApprovalRecord, approved: bool, outputs: dict[str, Any], outcome: str) -> None:
        workflow_id = approval.workflow_id
        if self._events:
            self._events.emit(
                ev.ApprovalDecided(
                    workflow_id, approval.approval_id, approval.step_name, approval.status, approval.decided_by or "",
                    approval.reason,
                )
            )  # fmt: skip
            self._emit_status(workflow_id, "RUNNING" if approved else "ROLLING_BACK")
        self._notify()
        if outcome == "adopt":
            self._adopt(workflow_id)
        elif outcome == "local":
            ex = self._executions.get(workflow_id)
            if ex is not None:
                ex.on_decision(approval.step_name, approved, outputs)
        if self._webhook is not None:
            self._webhook.kick()

    # -- cancel, rollback, resume -------------------------------------------------------------------------------------

    def cancel(self, workflow_id: str, *, by: str | None = None) -> str:
        """Stop a workflow: no new step starts, nothing is undone; ends CANCELLED.

        Returns ``"cancel"`` (this engine runs it and stops it), ``"requested"``
        (the engine that runs it was asked, and stops it at its next step
        boundary) or ``"CANCELLED"`` (nobody ran it: done here).
        """
        return self._stop(self.resolve_id(workflow_id), "cancel", current_user(by) if by else self.user)

    def rollback(self, workflow_id: str, *, by: str | None = None) -> str:
        """Undo every completed step (newest first); ends ROLLED_BACK (or FAILED if an undo fails).

        Returns ``"rollback"``, ``"requested"`` or ``"ROLLING_BACK"`` (see :meth:`cancel`).
        """
        return self._stop(self.resolve_id(workflow_id), "rollback", current_user(by) if by else self.user)

    def _stop(self, workflow_id: str, kind: str, by: str) -> str:
        self._check_open()
        ex = self._executions.get(workflow_id)
        if ex is not None and not ex.abandoned and not ex.finishing:
            ex.request_stop(kind, by)
            return kind
        allowed = {
            "cancel": ("RUNNING", "PAUSED", "PENDING"),
            "rollback": ("RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"),
        }[kind]
        owner = self._owner
        take = not self._closing
        live_owner = self._live_owner

        def op(tx: Tx) -> tuple[str, WorkflowRecord]:
            record = tx.get_workflow(workflow_id)
            if record is None:
                raise NotFoundError("workflow", workflow_id, db=self.db)
            if record.status not in allowed:
                raise WorkflowStateError(
                    f"workflow {workflow_id} ({record.name}) is {record.status}: it cannot be "
                    f"{'cancelled' if kind == 'cancel' else 'rolled back'} (possible when {', '.join(allowed)})",
                    workflow_id=workflow_id,
                    status=record.status,
                )
            now = now_iso()
            holder = record.lease_owner
            if record.status == "RUNNING" and holder and holder != owner and live_owner(holder):
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
                return "CANCELLED", record
            # A rollback runs where the workflow lives: in its home if it is alive (woken), else here
            # or wherever the home rules send it.
            mine = take and (record.home in (owner, None) or not live_owner(record.home))
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

        outcome, _record = self._store.write(op)
        if outcome == "requested":
            return outcome
        status = "CANCELLED" if kind == "cancel" else "ROLLING_BACK"
        self._emit_status(workflow_id, status)
        self._notify()
        if outcome == "adopt":
            self._adopt(workflow_id)
        return status

    def _live_owner(self, owner: str | None) -> bool:
        """Whether the engine ``owner`` is alive as far as this engine can tell now."""
        if owner is None:
            return False
        if owner == self._owner:
            return not self._closing
        alive = self._store.engines_alive([owner])
        if alive is not None:
            return owner in alive
        if is_dead_local_owner(owner):
            return False
        record = self._store.engine(owner)
        return record is not None and record.gone_at(self._store.now()) is None

    def resume(self, workflow_id: str) -> str:
        """Take over a RUNNING / ROLLING_BACK workflow that no live engine runs, now, here.

        Returns ``"resumed"``, ``"already running here"`` or ``"owned by another live engine"``.
        """
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
        holder = record.lease_owner
        if holder and holder != self._owner and self._live_owner(holder):
            return "owned by another live engine"
        now = self._store.now()
        dead = [holder] if holder and holder != self._owner else []
        got = self._store.write(lambda tx: tx.claim(self._owner, [workflow_id], dead, now))
        if got:
            self._adopt(workflow_id, lost_from=describe_owner(holder) if holder else None)
            return "resumed"
        if workflow_id in self._executions:
            return "resumed"  # this engine's housekeeping took it up meanwhile
        return "owned by another live engine"

    # -- recovery ----------------------------------------------------------------------------------------------------

    def recover(self) -> RecoverySummary:
        """Resume what a gone engine left RUNNING / ROLLING_BACK and restore PAUSED runs' deadlines.

        Returns what was resumed, restored (waiting for approval), left waiting
        for an action to be defined, and skipped (run by another live engine,
        or left to its home for now).  From then on this engine's housekeeping
        also takes up workflows nobody runs, as with ``recover=True``.
        """
        self._check_open()
        summary = self._recovery.recover(before=self._take_work)
        if self._webhook is not None:
            self._webhook.kick()
        log.info("airt_nb recovery on %s: %s", self.db, summary)
        return summary

    def _take_work(self) -> None:
        if not self._recovering:
            self._recovering = True
            self._store.write(lambda tx: tx.set_takes_work(self._owner, True))

    def _adopt(self, workflow_id: str, *, lost_from: str | None = None) -> str | None:
        """Build the execution of a workflow this engine just claimed and continue it.

        Returns what it has to wait for (a missing action's name, or a folder), if anything.
        """
        record = self._store.workflow(workflow_id)
        if record is None or record.lease_owner != self._owner:
            return None
        if record.workdir and not os.path.isdir(record.workdir):
            what = f"folder {record.workdir}"
            self._store.write(lambda tx: tx.release(workflow_id, self._owner, waiting_for=what))
            self._waiting[workflow_id] = what
            log.info(
                "workflow %s: waiting for its folder %s, which is not on this machine", workflow_id, record.workdir
            )
            return what
        plan = self._plan_from_json(record.spec, record.spec_hash)
        steps = self._store.steps(workflow_id)
        ex = Execution(self._host, record, plan, steps, inputs=json.loads(record.inputs))
        if record.status == "RUNNING" and record.requested in ("cancel", "rollback"):
            ex.stopping = record.requested  # asked for before this engine took the workflow over
        if any(s.is_approval for s in plan.steps) or record.status == "ROLLING_BACK" or ex.stopping:
            ex.load_intents()
        missing = ex.first_missing_action()
        if missing:
            self._store.write(lambda tx: tx.release(workflow_id, self._owner, waiting_for=f"action {missing}"))
            self._waiting[workflow_id] = f"action {missing}"
            log.info("workflow %s: waiting for action %s to be defined", workflow_id, missing)
            return missing
        warnings = self._code_changes(steps)
        now = now_iso()
        here = f"{describe_owner(self._owner)} in {record.workdir or os.getcwd()}"

        def note(tx: Tx) -> None:
            for w in warnings:
                tx.add_warning(workflow_id, w)
            tx.add_event(workflow_id, now, "resumed", self.user, here)
            if ex.done != record.done_steps:
                tx.progress(workflow_id, self._owner, ex.done, now)

        self._store.write(note)
        ex.done_written = ex.done
        for w in warnings:
            log.warning("workflow %s: %s", workflow_id, w)
        with self._exec_lock:
            old = self._executions.get(workflow_id)
            if old is not None and not old.abandoned:
                return None
            self._executions[workflow_id] = ex
        self._waiting.pop(workflow_id, None)
        try:
            ex.resume(lost_from=lost_from)
        except Exception:
            ex.abandon("error while resuming; this engine tries again shortly", retry=True)
            raise
        return ex.deferred_on.removeprefix("action ") if ex.deferred_on else None

    def _code_changes(self, steps: builtins.list[Any]) -> builtins.list[str]:
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

    def _apply_decisions(self, ex: Execution) -> None:
        for r in self._store.steps(ex.id):
            if ex.state.get(r.step_name) == "WAITING" and r.status in ("COMPLETED", "REJECTED"):
                outputs = json.loads(r.outputs) if r.outputs else None
                ex.on_decision(r.step_name, r.status == "COMPLETED", outputs)

    def _forget(self, ex: Execution, waiting_for: str | None = None) -> None:
        with self._exec_lock:
            if self._executions.get(ex.id) is ex:
                del self._executions[ex.id]
        if waiting_for:
            self._waiting[ex.id] = waiting_for
        self._notify()

    def action_registered(self, name: str) -> None:
        """Registry callback: take up workflows that waited for this action."""
        if not self._closing and any(w == f"action {name}" for w in self._waiting.values()):
            self._on_signal()

    # -- housekeeping ----------------------------------------------------------------------------------------------------

    def _on_signal(self) -> None:
        self._signalled.set()
        self._timers.wake()

    def _tick(self) -> None:
        if self._closing:
            return
        mono = time.monotonic()
        expiry = self._recovery.next_expiry
        if self._signalled.is_set() or mono >= self._next_sweep or (expiry is not None and self._store.now() >= expiry):
            self._signalled.clear()
            self._next_sweep = mono + (0.5 if self._recovery.more_work else self.poll_interval)
            self._recovery.sweep()
            self._readopt_orphans()
            if self._webhook is not None:
                self._webhook.kick()  # another process may have queued a delivery
        if mono >= self._next_progress:
            self._next_progress = mono + PROGRESS_EVERY
            self._flush_progress()

    def _flush_progress(self) -> None:
        """Write the progress of running workflows (and long-running implied starts) in one transaction."""
        now = now_iso()
        ops = [op for ex in list(self._executions.values()) if (op := ex.progress_op(now)) is not None]
        if ops:

            def op(tx: Tx) -> None:
                for o in ops:
                    o(tx)

            with contextlib.suppress(StoreError):
                self._store.write(op)

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

    def _expire_at(self, approval_id: str, due: float) -> None:
        self._timers.at(due, functools.partial(self._submit, self._expire, approval_id))

    def _expire(self, approval_id: str) -> None:
        self._recovery.forget_deadline(approval_id)
        if not self._closing:
            expire(self._host, approval_id)

    def _submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self._closed:
            return
        try:
            self._pool.submit(self._guard, fn, *args, **kwargs)
        except RuntimeError:  # pool shut down while closing
            pass

    @staticmethod
    def _guard(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except LeaseLostError:
            pass
        except Exception:
            log.exception("airt_nb worker task failed")
            ex = getattr(fn, "__self__", None)
            if isinstance(ex, Execution):  # e.g. a retry or a compensation whose checkpoint failed
                ex.abandon("error; this engine continues it from its last checkpoint shortly", retry=True)

    def _emit_status(self, workflow_id: str, status: str) -> None:
        if self._events:
            self._events.emit(ev.WorkflowStatusChanged(workflow_id, status))

    def _approvals_requested(self, ex: Execution, rows: builtins.list[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("deadline"):
                self._recovery.note_deadline(row["approval_id"])
                from .timeutil import to_epoch

                self._expire_at(row["approval_id"], to_epoch(row["deadline"]))
            if self._events:
                self._events.emit(ev.ApprovalRequested(ex.id, row["approval_id"], row["step_name"], row["message"]))
        if self._webhook is not None:
            self._webhook.kick()

    # -- closing ------------------------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise WorkflowStateError(f"the engine on {self.db} is closed; create a new Engine")

    def close(self, timeout: float | None = None) -> None:
        """Let in-flight steps finish and checkpoint, release every lease, and close the database.

        Workflows not finished stay RUNNING in the database; this notebook's
        next engine (after a kernel restart) carries them on, and after a
        grace period any engine that takes up work does.
        """
        if self._closed:
            return
        self._closing = True
        self.registry.remove_listener(self)
        for ex in builtins.list(self._executions.values()):
            ex.cancelled.set()  # interruptible steps (wait) stop early and run again later
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(ex.executing and not ex.abandoned for ex in builtins.list(self._executions.values())):
            if deadline is not None and time.monotonic() > deadline:
                break
            retrying_only = all(
                all(ex.state.get(n) == "RETRYING" for n in ex.executing)
                for ex in builtins.list(self._executions.values())
            )
            if retrying_only:
                break
            time.sleep(0.01)
        self._timers.stop()
        self._leases.stop()
        if self._webhook is not None:
            self._webhook.stop()
        self._flush_progress()
        owner = self._owner

        def release(tx: Tx) -> None:
            if tx.release_all(owner):
                tx.announce_work()
            tx.close_engine(owner, now_iso())

        with contextlib.suppress(StoreError):
            self._store.write(release)
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


class _Hosting:
    """What executions, decisions and sweeps may ask of the engine (see their ``*Host`` protocols)."""

    __slots__ = ("_e",)

    def __init__(self, engine: Engine):
        self._e = engine

    # shared
    @property
    def store(self) -> Store:
        return self._e._store

    @property
    def owner_id(self) -> str:
        return self._e._owner

    @property
    def registry(self) -> Registry:
        return self._e.registry

    @property
    def closing(self) -> bool:
        return self._e._closing

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._e._submit(fn, *args, **kwargs)

    def notify(self) -> None:
        self._e._notify()

    # ExecutionHost
    @property
    def compensation_attempts(self) -> int:
        return self._e.compensation_attempts

    @property
    def listening(self) -> bool:
        return bool(self._e._events)

    def emit(self, event: ev.Event) -> None:
        self._e._events.emit(event)

    def call_at(self, due: float, fn: Callable[[], None]) -> None:
        self._e._timers.at(due, fn)

    def check_step(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> Verdict | None:
        return self._e._gate.check_step(ex.started_by or self._e.user, ex.id, ex.name, step, inputs)

    def webhook_rows(self, event: str, approval: dict[str, Any], workflow_name: str) -> builtins.list[dict[str, Any]]:
        webhook = self._e._webhook
        if webhook is None:
            return []
        from .webhooks import outbox_row

        return [outbox_row(event, approval, workflow_name, webhook.url)]

    def approvals_requested(self, ex: Execution, rows: builtins.list[dict[str, Any]]) -> None:
        self._e._approvals_requested(ex, rows)

    def released(self, ex: Execution, waiting_for: str | None = None) -> None:
        self._e._forget(ex, waiting_for)

    def stalled(self, ex: Execution) -> None:
        self._e._orphaned(ex)

    def settled(self, ex: Execution, status: str) -> None:
        if status == "ROLLED_BACK":  # every undo done: what they needed is no longer needed
            with contextlib.suppress(OSError):
                discard_undo_copies(undo_dir_for(self._e.db, ex.id))

    def undo_dir(self, workflow_id: str) -> str | None:
        return undo_dir_for(self._e.db, workflow_id)

    # DecisionHost
    @property
    def db(self) -> str:
        return self._e.db

    @property
    def user(self) -> str:
        return self._e.user

    @property
    def policy(self) -> Policy:
        return self._e._policy

    @property
    def webhook_url(self) -> str | None:
        webhook = self._e._webhook
        return webhook.url if webhook is not None else None

    @property
    def accepting(self) -> bool:
        return not self._e._closing

    def check_open(self) -> None:
        self._e._check_open()

    def status_of(self, workflow_id: str) -> str:
        return self._e.status_of(workflow_id)

    def runs_here(self, workflow_id: str) -> bool:
        return workflow_id in self._e._executions

    def audit_row(self, event: str, user: str, verdict: Any, **kw: Any) -> dict[str, Any]:
        return self._e._gate.row(event, user, verdict, **kw)

    def audit_now(self, event: str, user: str, verdict: Any, **kw: Any) -> None:
        self._e._gate.record(event, user, verdict, **kw)

    def decided(self, approval: ApprovalRecord, approved: bool, outputs: dict[str, Any], outcome: str) -> None:
        self._e._decided(approval, approved, outputs, outcome)

    # RecoveryHost
    @property
    def session(self) -> str:
        return self._e.session

    @property
    def home_grace(self) -> float:
        return self._e.home_grace

    @property
    def takes_work(self) -> bool:
        return self._e._recovering

    def execution(self, workflow_id: str) -> Execution | None:
        return self._e._executions.get(workflow_id)

    def adopt(self, workflow_id: str, *, lost_from: str | None = None) -> str | None:
        return self._e._adopt(workflow_id, lost_from=lost_from)

    def apply_decisions(self, ex: Execution) -> None:
        self._e._apply_decisions(ex)

    def expire_at(self, approval_id: str, due: float) -> None:
        self._e._expire_at(approval_id, due)


def _home_grace(value: float | None) -> float:
    if value is None:
        text = os.environ.get("AIRT_HOME_GRACE", "").strip()
        if not text:
            return DEFAULT_HOME_GRACE
        try:
            value = float(text)
        except ValueError:
            raise AirtError(f"AIRT_HOME_GRACE must be a number of seconds, got {text!r}") from None
    if not (0 <= value <= 86400):
        raise AirtError(f"home_grace must be between 0 and 86400 seconds, got {value}")
    return float(value)


def _workdir(workdir: str | os.PathLike[str] | None, workflow: str) -> str:
    """The absolute folder a workflow runs in: ``workdir`` (which must exist) or the current one."""
    if workdir is None:
        return os.getcwd()
    folder = Path(workdir).expanduser()
    if not folder.is_dir():
        raise SpecError(
            [(None, "workdir", f"{folder} is not an existing folder; create it or pass another")], workflow=workflow
        )
    return str(folder.resolve())


def _merge_inputs(declared: Mapping[str, Any], given: Any, workflow: str) -> dict[str, Any]:
    """The spec's input defaults with ``given`` over them; refused unless every given name is declared
    and every value is plain JSON within the limits (:func:`airt_nb.limits.check_inputs`)."""
    given = check_inputs(given, workflow=workflow)
    merged = dict(declared)
    for key, value in given.items():
        if key not in merged:
            names = ", ".join(merged) or "none"
            raise SpecError(
                [(None, f"inputs.{key}", f"the workflow declares no input {key!r} (declared: {names})")],
                workflow=workflow,
            )
        merged[key] = value
    try:
        json.dumps(merged, allow_nan=False)
    except RecursionError:
        raise SpecError([(None, "inputs", "inputs are nested too deeply to be recorded")], workflow=workflow) from None
    except (TypeError, ValueError) as exc:
        raise SpecError([(None, "inputs", f"inputs must be JSON values ({exc})")], workflow=workflow) from None
    return merged


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
