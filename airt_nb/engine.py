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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import wait_events
from .actions import Registry, default_registry
from .aioloop import AsyncRunner
from .decisions import cancel_pending, decide, expire
from .errors import AirtError, NotFoundError, SpecError, StoreError, WorkflowStateError
from .execution import Execution
from .identity import current_user
from .leases import LeaseKeeper
from .limits import check_inputs, is_plain
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
from .subworkflows import check_uses, parent_op, read_child, resettle
from .timers import Timers
from .timeutil import iso, now_iso, to_epoch
from .undocopies import discard_undo_copies, undo_dir_for
from .urls import check_webhook_url

if TYPE_CHECKING:
    from .plan import PlannedStep
    from .run import Run
    from .store.records import ApprovalRecord, ScheduleRecord, SentEventRecord
    from .store.writes import Tx

__all__ = ["Engine", "RecoverySummary", "WaitTimeoutError"]

log = logging.getLogger("airt_nb")

DEFAULT_HOME_GRACE = 30.0
PROGRESS_EVERY = 1.0  # seconds between two writes of running workflows' progress
REMOTE_POLL = 0.05  # seconds between two looks at a workflow another engine runs, in wait()


class WaitTimeoutError(AirtError, TimeoutError):
    """``Run.wait(timeout=...)`` ran out of time before the run finished or paused.

    Examples
    --------
    >>> try:                                       # doctest: +SKIP
    ...     run.wait(timeout=0.1)
    ... except airt_nb.WaitTimeoutError:
    ...     print("still", run.status)
    still RUNNING
    """


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

    Examples
    --------
    >>> import airt_nb
    >>> eng = airt_nb.Engine("airt.db")
    >>> run = eng.start('''
    ... name: hello
    ... steps:
    ...   - name: pause
    ...     action: wait
    ...     inputs: {seconds: 0.1}
    ...   - name: review
    ...     type: human_approval
    ...     message: Carry on?
    ... ''')
    >>> run.wait(timeout=10)
    'PAUSED'
    >>> run.approve(reason="fine").status
    'APPROVED'
    >>> run.wait(timeout=10)
    'COMPLETED'
    >>> eng.close()
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
        self._validated: dict[tuple[Any, int], Plan] = {}
        self._stored_specs: set[str] = set()  # spec hashes this engine stored (never deleted)
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
        self._async = AsyncRunner()  # async def actions run on it; its thread starts on first use
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

    def _plan_of(self, spec: str | Mapping[str, Any] | WorkflowSpec) -> Plan:
        """The validated, compiled plan of ``spec``; the same spec started again is not validated again
        (until an action is added or replaced: validation depends on the registered actions)."""
        key: Any = None
        if isinstance(spec, str):
            key = spec
        elif type(spec) is dict and is_plain(spec):
            key = json.dumps(spec, sort_keys=True)
        if key is not None:
            cached = self._validated.get((key, self.registry.version))
            if cached is not None:
                return cached
        plan = self._plan_for(load_spec(spec, registry=self.registry))
        if key is not None:
            if len(self._validated) >= 256:
                self._validated.pop(next(iter(self._validated)))
            self._validated[(key, self.registry.version)] = plan
        return plan

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

        Examples
        --------
        >>> run = eng.start(spec_yaml, inputs={"target": "out/r"})  # doctest: +SKIP
        """
        self._check_open()
        plan = self._plan_of(spec)
        name = plan.spec.name
        folder = _workdir(workdir, name)
        if plan.has_children:
            check_uses(plan.spec, folder, self.registry)
        merged = _merge_inputs(plan.spec.inputs, inputs, name)
        actor = current_user(user) if user else self.user
        audit_rows: list[dict[str, Any]] = []  # recorded with the workflow, in one transaction
        if as_user and as_user != actor:
            audit_rows.append(self._gate.act_as(actor, as_user))
            actor = as_user
        audit_rows = self._gate.check_start(actor, plan, merged, audit_rows)
        new = self._new_run(plan, merged, actor, folder, audit_rows=audit_rows)
        with new.ex.lock:
            self._store.write(new.op)
            self._stored_specs.add(plan.spec_hash)
            self._launch(new, locked=True)
        from .run import Run

        return Run(self, new.workflow_id)  # the id is ours and exact: no need to look it up as get() does

    def _new_run(
        self,
        plan: Plan,
        merged: dict[str, Any],
        actor: str,
        folder: str,
        *,
        audit_rows: Sequence[dict[str, Any]] = (),
        parent: tuple[str, str] | None = None,
        detail: str | None = None,
    ) -> _NewRun:
        """A new workflow, ready to be recorded (``op``, in the caller's transaction) and launched.

        ``parent`` is ``(workflow_id, step_name)`` for a child workflow.
        """
        name = plan.spec.name
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
            parent_id=parent[0] if parent else None,
            parent_step=parent[1] if parent else None,
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
            "parent_id": record.parent_id,
            "parent_step": record.parent_step,
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
        started_detail = detail or f"in {folder}"

        spec_stored = plan.spec_hash in self._stored_specs

        def op(tx: Tx) -> None:
            tx.insert_workflow(row, spec_stored=spec_stored)
            ids = tx.insert_steps(workflow_id, step_rows)
            for audit in audit_rows:
                tx.insert_audit({**audit, "workflow_id": workflow_id})
            tx.add_event(workflow_id, now, "started", actor, started_detail)
            for o in ops:
                o(tx)
            for s, step_id in zip(plan.steps, ids, strict=True):
                ex.step_id[s.name] = step_id

        return _NewRun(workflow_id, ex, op, started, settled)

    def _launch(self, new: _NewRun, *, locked: bool = False) -> None:
        """Run a new workflow whose ``op`` has committed."""
        ex = new.ex
        with ex.lock if not locked else contextlib.nullcontext():
            with self._exec_lock:
                self._executions[new.workflow_id] = ex
            ex.committed(new.settled)
        if self._events:
            self._events.emit(ev.WorkflowStatusChanged(new.workflow_id, "RUNNING"))
        for step_name in new.started:
            ex._emit_started(step_name)
            self._submit(ex.drive, step_name)

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
        values: Mapping[str, Any] | None = None,
    ) -> ApprovalRecord:
        """Approve the workflow's pending approval; the workflow continues.

        ``by`` is who decides (default: this engine's user, i.e. ``AIRT_USER``,
        ``JUPYTERHUB_USER`` or the OS user); deciding as someone else needs the
        policy's ``act_as`` right, unless ``authenticated_by`` says how that
        person was authenticated (the approvals page does).  ``values`` fill in
        the step's typed ``fields`` (defaults for those left out).  A step with
        ``min_approvals: N`` goes on once N distinct people approved: until
        then the returned approval is still ``PENDING`` (``approved_count``
        says how many did).  ``approval_id`` picks one of several pending
        approvals.  Returns the approval.  Raises :class:`~airt_nb.PolicyError`
        if ``by`` may not decide and :class:`~airt_nb.ApprovalError` if a value
        does not fit its field (nothing is recorded) or someone decided first.

        Examples
        --------
        >>> eng.approve(run.id, by="ann", reason="looks good", values={"replicas": 3}).status  # doctest: +SKIP
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
            values=values,
        )

    def reject(
        self,
        workflow_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        approval_id: str | None = None,
        authenticated_by: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> ApprovalRecord:
        """Reject the workflow's pending approval: what was done is rolled back (see :meth:`approve`).

        One rejection is enough, however many approvals the step needs; ``values``, if
        given, are checked and recorded with the decision.
        """
        return decide(
            self._host,
            self.resolve_id(workflow_id),
            False,
            by=by,
            reason=reason,
            approval_id=approval_id,
            authenticated_by=authenticated_by,
            values=values,
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
            if outcome != "partial":
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

    # -- beyond one run: forks, events, children ----------------------------------------------------------------------

    def fork(
        self,
        workflow_id: str,
        from_step: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        spec: str | Mapping[str, Any] | WorkflowSpec | None = None,
        user: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        check_actions: bool = True,
    ) -> Run:
        """Run a finished workflow again from ``from_step``, keeping what came before it.

        The fork is a new workflow (``runs()`` column ``forked_from``) with the
        original's spec, or ``spec`` (validated as at start).  Steps that are not
        ``from_step`` nor downstream of it keep the original's recorded outputs
        and do not run again (unless they did not complete, changed, or would
        get other inputs: see :mod:`airt_nb.forks`); ``from_step`` and what
        follows it run with today's code.  ``inputs`` override the original's.
        What kept steps did belongs to the fork from then on: their pending
        undos move to it, so rolling the fork back undoes them (once).

        Raises :class:`~airt_nb.WorkflowStateError` unless the original is
        finished (COMPLETED, FAILED, ROLLED_BACK or CANCELLED), and
        :class:`~airt_nb.SpecError` for an unknown ``from_step`` or a bad spec
        or inputs (nothing is written).

        Parameters
        ----------
        workflow_id:
            The run to fork (a unique prefix of its id is enough).
        from_step:
            The first step that runs again.
        inputs:
            Inputs that replace the original's (the others stay as they were).
        spec:
            An edited spec (YAML, dict or ``WorkflowSpec``); default: the original's.
        check_actions:
            ``False`` accepts actions this process does not have: a step that
            needs one waits for it (the command line forks that way).

        Example
        -------
        >>> run.wait()                                   # doctest: +SKIP
        'FAILED'
        >>> fixed = eng.fork(run.id, from_step="train")  # doctest: +SKIP
        >>> fixed.wait(), airt_nb.diff(run, fixed)       # doctest: +SKIP
        """
        from . import forks

        self._check_open()
        original_id = self.resolve_id(workflow_id)
        record = self._store.workflow(original_id)
        assert record is not None
        if record.status not in TERMINAL:
            raise WorkflowStateError(
                f"workflow {original_id} ({record.name}) is {record.status}: only a finished run can be forked "
                "(wait for it, or cancel it first)",
                workflow_id=original_id,
                status=record.status,
            )
        old = self._plan_from_json(record.spec, record.spec_hash)
        chosen_spec = old.spec if spec is None else spec
        plan = self._plan_for(load_spec(chosen_spec, registry=self.registry, check_actions=check_actions))
        folder = _workdir(workdir if workdir is not None else record.workdir, plan.spec.name)
        if plan.has_children:
            check_uses(plan.spec, folder, self.registry)
        previous = {k: v for k, v in json.loads(record.inputs).items() if k in plan.spec.inputs}
        merged = _merge_inputs(
            plan.spec.inputs, {**previous, **check_inputs(inputs, workflow=plan.spec.name)}, plan.spec.name
        )
        actor = current_user(user) if user else self.user
        audit_rows = self._gate.check_start(actor, plan, merged, [])
        original = self._store.steps(original_id)
        chosen = forks.plan_fork(original, old, plan, from_step, merged, original_id)
        fork_id = uuid.uuid4().hex[:16]
        kept = set(chosen.kept)
        carried = [c for c in self._store.compensations(original_id, status="PENDING") if c.step_name in kept]
        row = {
            "workflow_id": fork_id, "name": plan.spec.name, "status": "RUNNING", "spec": plan.spec_json,
            "spec_hash": plan.spec_hash, "inputs": json.dumps(merged), "started_by": actor,
            "total_steps": len(plan.steps), "done_steps": len(kept), "lease_owner": self._owner, "workdir": folder,
            "session": self.session, "forked_from": original_id,
        }  # fmt: skip
        op = forks.fork_op(row, plan, original, chosen, carried, audit_rows)
        self._store.write(op)
        fresh = self._store.workflow(fork_id)
        assert fresh is not None
        ex = Execution(self._host, fresh, plan, self._store.steps(fork_id), inputs=merged)
        ex.done_written = ex.done
        if any(s.is_approval for s in plan.steps):
            ex.load_intents()
        with self._exec_lock:
            self._executions[fork_id] = ex
        if self._events:
            self._events.emit(ev.WorkflowStatusChanged(fork_id, "RUNNING"))
        try:
            ex.resume()
        except Exception:
            ex.abandon("error while starting the fork; this engine tries again shortly", retry=True)
            raise
        from .run import Run

        return Run(self, fork_id)

    def send(
        self,
        workflow_id: str,
        event: str,
        payload: Any = None,
        *,
        by: str | None = None,
        authenticated_by: str | None = None,
    ) -> SentEventRecord:
        """Send ``event`` with a JSON ``payload`` to the workflow's ``wait_event`` step that waits for it.

        The payload becomes that step's outputs.  Durable like a decision:
        sent while the step waits, the workflow continues (wherever it runs);
        sent before the step is reached, the step receives it when it is;
        sent while no engine runs, it is kept.  The first event of a name wins.

        Raises :class:`~airt_nb.EventError` (nothing recorded) if no step
        waits for ``event``, the payload is not JSON or fails the step's
        ``schema``, the event was sent already, or the workflow is finished.

        >>> eng.send(run.id, "ci.done", {"passed": True}).status   # doctest: +SKIP
        'RECEIVED'
        """
        who = (by or "").strip() or self.user
        record = wait_events.send(
            self._host, self.resolve_id(workflow_id), event, payload, by=who, auth=authenticated_by
        )
        if self._events:
            self._emit_status(record.workflow_id, self.status_of(record.workflow_id))
        return record

    def schedule(
        self,
        spec: str | Mapping[str, Any] | WorkflowSpec,
        cron: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        timezone: str = "UTC",
        workdir: str | os.PathLike[str] | None = None,
        user: str | None = None,
        check_actions: bool = True,
    ) -> ScheduleRecord:
        """Start ``spec`` on a cron schedule: ``airt worker`` fires it (see :mod:`airt_nb.schedules`).

        Each slot fires exactly once, however many workers run; slots missed
        while no worker ran fire once, for the latest of them.  The spec and
        the inputs are checked now (:class:`~airt_nb.SpecError`, nothing
        recorded); ``check_actions=False`` accepts actions this process does
        not have (the worker imports them: ``airt worker --import MODULE``).

        Parameters
        ----------
        cron:
            Five fields (minute hour day month weekday), or six with seconds last.
        timezone:
            The zone the cron expression is read in (default UTC).
        workdir:
            The folder its runs run in (default: the current one).

        Example
        -------
        >>> eng.schedule(spec_yaml, cron="0 6 * * 1", inputs={"target": "out/weekly"})  # doctest: +SKIP
        ScheduleRecord(schedule_id='3f0c...', name='weekly-report', cron='0 6 * * 1', ...)
        """
        from . import schedules

        self._check_open()
        plan = self._plan_for(load_spec(spec, registry=self.registry, check_actions=check_actions))
        schedules.check_cron(cron, timezone)
        folder = _workdir(workdir, plan.spec.name)
        merged = _merge_inputs(plan.spec.inputs, inputs, plan.spec.name)
        actor = current_user(user) if user else self.user
        self._gate.check_start(actor, plan, merged, [])  # who schedules it must be allowed to start it
        return schedules.add(self, plan, cron, merged, timezone=timezone, folder=folder, actor=actor)

    def schedules(self) -> builtins.list[ScheduleRecord]:
        """Every schedule in the database, oldest first (``next_fire_at``: when it fires next)."""
        return self._store.schedules()

    def unschedule(self, schedule_id: str) -> None:
        """Remove a schedule (a unique prefix of its id is enough); runs it started stay.

        Raises :class:`~airt_nb.NotFoundError` if no schedule has that id.
        """
        from . import schedules

        self._check_open()
        schedules.remove(self, schedule_id)

    def _prepare_child(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> _NewRun:
        """A child workflow for ``step`` of ``ex``, checked like a start (raises AirtError)."""
        spec = read_child(step.uses or "", ex.workdir, self.registry)
        plan = self._plan_for(spec)
        merged = _merge_inputs(plan.spec.inputs, inputs, plan.spec.name)
        actor = ex.started_by or self.user
        audit_rows = self._gate.check_start(actor, plan, merged, [])
        detail = f"as step {step.name} of workflow {ex.id}"
        return self._new_run(
            plan, merged, actor, ex.workdir or os.getcwd(), audit_rows=audit_rows, parent=(ex.id, step.name),
            detail=detail,
        )  # fmt: skip

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
        told: dict[str, Any] = {}  # a child's end, recorded on its parent's step

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
                if record.parent_id:
                    parent_op(self._host, record, "CANCELLED", now, result=told)(tx)
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
        if told.get("outcome"):
            self._waited(told["workflow_id"], told["step_name"], told["outputs"], told["error"], told["outcome"])
        if kind == "cancel":  # nobody ran it: its running children are cancelled here
            for child in self._store.children(workflow_id):
                if child.status in ("RUNNING", "PAUSED", "PENDING"):
                    with contextlib.suppress(WorkflowStateError, NotFoundError):
                        self._stop(child.workflow_id, "cancel", by)
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

    def _adopt_many(self, adopted: builtins.list[tuple[str, str | None]]) -> dict[str, str | Exception | None]:
        """Adopt workflows this engine just claimed, ``(workflow_id, lost_from)``, reading them in two
        queries; returns, by id, what each waits for (or the error that stopped it)."""
        ids = [w for w, _ in adopted]
        records = self._store.workflows_by_id(ids)
        steps = self._store.steps_by_workflow(ids)
        out: dict[str, str | Exception | None] = {}
        for workflow_id, lost_from in adopted:
            try:
                out[workflow_id] = self._adopt(
                    workflow_id, lost_from=lost_from, record=records.get(workflow_id), steps=steps.get(workflow_id)
                )
            except Exception as exc:  # one bad workflow never stops the others
                log.exception("workflow %s could not be resumed", workflow_id)
                out[workflow_id] = exc
        return out

    def _adopt(
        self,
        workflow_id: str,
        *,
        lost_from: str | None = None,
        record: WorkflowRecord | None = None,
        steps: builtins.list[Any] | None = None,
    ) -> str | None:
        """Build the execution of a workflow this engine just claimed and continue it.

        Returns what it has to wait for (a missing action's name, or a folder), if anything.
        """
        if record is None:
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
        if steps is None:
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

        done_before = record.done_steps

        def note(tx: Tx) -> None:  # written with the resume's first transaction
            for w in warnings:
                tx.add_warning(workflow_id, w)
            tx.add_event(workflow_id, now, "resumed", self.user, here)
            if ex.done != done_before:
                tx.progress(workflow_id, self._owner, ex.done, now)

        ex.done_written = ex.done
        for w in warnings:
            log.warning("workflow %s: %s", workflow_id, w)
        with self._exec_lock:
            old = self._executions.get(workflow_id)
            if old is not None and not old.abandoned:
                return None
            self._executions[workflow_id] = ex
        self._waiting.pop(workflow_id, None)
        # On a worker: workflows adopted together resume at once, and their first transactions share commits.
        self._submit(self._resume, ex, lost_from, note)
        return None

    @staticmethod
    def _resume(ex: Execution, lost_from: str | None, note: Callable[[Tx], None]) -> None:
        try:
            ex.resume(lost_from=lost_from, first=[note])
        except Exception:
            log.exception("workflow %s could not be resumed", ex.id)
            ex.abandon("error while resuming; this engine tries again shortly", retry=True)

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
            if ex.state.get(r.step_name) == "WAITING" and r.status in ("COMPLETED", "REJECTED", "PENDING"):
                # PENDING: a gated step asked again and approved (see gating); it runs now.
                outputs = json.loads(r.outputs) if r.outputs else None
                ex.on_decision(r.step_name, r.status != "REJECTED", outputs)
            elif ex.state.get(r.step_name) == "WAITING" and r.status == "FAILED":  # an event timed out, a child failed
                record = self._store.workflow(ex.id)
                ex.on_wait_failed(r.step_name, (record.error if record else None) or r.error or "failed")

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

    def _approval_timer_at(self, approval_id: str, kind: str, due: float) -> None:
        """Send the reminder (``kind="remind"``) or escalation of a pending approval at ``due``."""
        self._timers.at(due, functools.partial(self._submit, self._approval_timer, approval_id, kind, due))

    def _approval_timer(self, approval_id: str, kind: str, due: float) -> None:
        self._recovery.forget_timer(approval_id, kind)
        if self._closing:
            return
        from .reminders import escalate, remind

        if kind == "escalate":
            escalate(self._host, approval_id)
            return
        following = remind(self._host, approval_id)
        if following is not None:
            from .timeutil import to_epoch

            self._recovery.note_timer(approval_id, kind, following)
            self._approval_timer_at(approval_id, kind, to_epoch(following))

    def _expire(self, approval_id: str) -> None:
        self._recovery.forget_deadline(approval_id)
        if not self._closing:
            expire(self._host, approval_id)

    def _expire_event_at(self, workflow_id: str, step_name: str, due: float) -> None:
        key = f"{workflow_id}/{step_name}"
        if self._recovery.note_deadline(key):
            self._timers.at(due, functools.partial(self._submit, self._expire_event, workflow_id, step_name))

    def _expire_event(self, workflow_id: str, step_name: str) -> None:
        self._recovery.forget_deadline(f"{workflow_id}/{step_name}")
        if not self._closing:
            wait_events.expire(self._host, workflow_id, step_name)

    def _waited(self, workflow_id: str, step_name: str, outputs: Any, error: str | None, outcome: str) -> None:
        """A waiting step (an event, a child workflow) ended in a committed transaction: continue its
        workflow where it runs (``outcome``, see :func:`airt_nb.wait_events.continue_after_wait`)."""
        if self._events:
            self._emit_status(workflow_id, "RUNNING" if error is None else "ROLLING_BACK")
        self._notify()
        if outcome == "adopt":
            self._submit(self._adopt, workflow_id)
        elif outcome == "local":
            ex = self._executions.get(workflow_id)
            if ex is not None and error is None:
                self._submit(ex.on_decision, step_name, True, outputs)
            elif ex is not None:
                self._submit(ex.on_wait_failed, step_name, error)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._closed:
            return
        threading.Thread(target=self._guard, args=(fn, *args), name="airt-undo", daemon=True).start()

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
            kind = row.get("kind")
            if kind == "event_wait":  # a wait_event step waits: arm its deadline
                if row.get("deadline"):
                    self._expire_event_at(row["workflow_id"], row["step_name"], to_epoch(row["deadline"]))
                continue
            if kind == "late_event":  # its event was sent while it started waiting
                self._submit(wait_events.deliver_pending, self._host, row["workflow_id"], row["step_name"])
                continue
            if row.get("deadline"):
                self._recovery.note_deadline(row["approval_id"])
                self._expire_at(row["approval_id"], to_epoch(row["deadline"]))
            for kind, column in (("remind", "next_reminder_at"), ("escalate", "escalate_at")):
                if row.get(column):
                    self._recovery.note_timer(row["approval_id"], kind, row[column])
                    self._approval_timer_at(row["approval_id"], kind, to_epoch(row[column]))
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
        self._async.close(timeout=5 if timeout is None else min(timeout, 5))
        self._closed = True
        self._notify()
        self._store.close()

    # Last in the class body, so that ``list[...]`` annotations above mean the builtin.
    def list(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> builtins.list[WorkflowRecord]:
        """Same as :meth:`workflows`."""
        return self.workflows(status=status, name=name, limit=limit, offset=offset)


@dataclass
class _NewRun:
    """A workflow built but not yet running: commit ``op``, then launch it (``Engine._launch``)."""

    workflow_id: str
    ex: Execution
    op: Callable[[Tx], None]
    started: builtins.list[str]
    settled: str | None


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
    def policy_enforcing(self) -> bool:
        return bool(getattr(self._e._policy, "enforcing", True))

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
        if status == "ROLLED_BACK" and not self._e._store.carried_pending(ex.id):
            # Every undo done: what they needed is no longer needed (unless a fork carried some).
            with contextlib.suppress(OSError):
                discard_undo_copies(undo_dir_for(self._e.db, ex.id))
        told = ex.parent_result
        if told.get("outcome"):  # this child's end was recorded on its parent's step
            ex.parent_result = {}
            self._e._waited(told["workflow_id"], told["step_name"], told["outputs"], told["error"], told["outcome"])

    def run_async(self, coro: Any, ex: Execution) -> Any:
        return self._e._async.run(
            coro, cancelled=ex.cancelled, should_cancel=lambda: ex.stopping == "cancel" or self._e._closing
        )

    def spawn(self, fn: Callable[[], Any]) -> None:
        self._e._spawn(fn)

    def prepare_child(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> Any:
        return self._e._prepare_child(ex, step, inputs)

    def launch_child(self, child: Any) -> None:
        self._e._launch(child)

    def stop_child(self, child_id: str, kind: str, parent_id: str) -> None:
        try:
            self._e._stop(child_id, kind, f"workflow {parent_id}")
        except (WorkflowStateError, NotFoundError):
            pass  # settled already, or being rolled back

    def wait_child(self, child_id: str) -> str:
        while not self._e._closing:
            try:
                status = self._e.wait(child_id, timeout=1.0, until="done")
            except WaitTimeoutError:
                continue
            except StoreError:
                if self._e._closing:
                    break
                raise
            if status != "ROLLING_BACK":
                return status
        return "ROLLING_BACK"  # this engine closes: the rollback goes on when one opens again

    def resettle_child(self, child_id: str) -> None:
        told = resettle(self, child_id)
        if told.get("outcome"):
            self._e._waited(told["workflow_id"], told["step_name"], told["outputs"], told["error"], told["outcome"])

    def plan_of(self, record: WorkflowRecord) -> Plan:
        return self._e._plan_from_json(record.spec, record.spec_hash)

    def waited(self, workflow_id: str, step_name: str, outputs: Any, error: str | None, outcome: str) -> None:
        self._e._waited(workflow_id, step_name, outputs, error, outcome)

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

    def adopt_many(self, adopted: builtins.list[tuple[str, str | None]]) -> dict[str, str | Exception | None]:
        return self._e._adopt_many(adopted)

    def apply_decisions(self, ex: Execution) -> None:
        self._e._apply_decisions(ex)

    def expire_at(self, approval_id: str, due: float) -> None:
        self._e._expire_at(approval_id, due)

    def approval_timer_at(self, approval_id: str, kind: str, due: float) -> None:
        self._e._approval_timer_at(approval_id, kind, due)

    def expire_event_at(self, workflow_id: str, step_name: str, due: float) -> None:
        self._e._expire_event_at(workflow_id, step_name, due)


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
