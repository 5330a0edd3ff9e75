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
implemented by one adapter (:class:`~airt_nb.hosting.EngineHost`); those
modules import no engine.  The engine's own machinery goes through the same
adapter and lives next to it: taking up workflows (:mod:`airt_nb.adoption`),
cancel and rollback (:mod:`airt_nb.stopping`), the timer thread's work
(:mod:`airt_nb.housekeeping`), building new runs (:mod:`airt_nb.newruns`)
and forks (:mod:`airt_nb.forking`).

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import adoption, stopping, wait_events
from . import events as ev
from .actions import Registry, default_registry
from .aioloop import AsyncRunner
from .decisions import decide
from .errors import AirtError, NotFoundError, PolicyError, StoreError, WorkflowStateError
from .execution import Execution
from .hosting import EngineHost
from .housekeeping import Housekeeping
from .identity import check_name, current_user
from .leases import LeaseKeeper
from .limits import number
from .newruns import NewRun, check_step_inputs, merge_inputs, new_run, workdir_for
from .ownership import MACHINE, describe_owner, make_owner_id, parse_owner
from .plan import Plan
from .policy import AllowAll, Policy
from .policy_gate import PolicyGate
from .recovery import Recovery, RecoverySummary
from .spec import WorkflowSpec, fingerprint_of, is_plain_spec, load_plain_spec, load_spec
from .store import open_store
from .store.base import LeaseLostError
from .store.protocol import Store
from .store.records import SETTLED, TERMINAL, WORKFLOW_STATUSES, WorkflowRecord
from .subworkflows import check_uses, read_child
from .timers import Timers
from .timeutil import iso, now_iso
from .urls import check_webhook_url
from .workflow_ids import resolve_workflow_id

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
        _check_settings(
            max_workers=(max_workers, 1, 1024, True),
            lease_ttl=(lease_ttl, 0.001, 86400, False),
            poll_interval=(poll_interval, 0.001, 3600, False),
            compensation_attempts=(compensation_attempts, 1, 100, True),
            webhook_timeout=(webhook_timeout, 0.001, 3600, False),
            webhook_max_attempts=(webhook_max_attempts, 1, 1_000_000, True),
            webhook_initial_delay=(webhook_initial_delay, 0, 86400, False),
            webhook_max_delay=(webhook_max_delay, 0, 7 * 86400, False),
            busy_timeout=(busy_timeout, 0, 3600, False),
        )
        for label, text in (("webhook_secret", webhook_secret), ("session", session), ("webhook_url", webhook_url)):
            if text is not None and not isinstance(text, str):
                raise AirtError(f"Engine({label}=...) must be text, not {type(text).__name__}")
        if registry is not None and not isinstance(registry, Registry):
            raise AirtError(
                f"Engine(registry=...) must be an airt_nb.Registry, not {type(registry).__name__}; "
                "leave it out to use the actions defined with @airt_nb.action"
            )
        claimed_user = current_user(user)
        policy_obj: Policy = _policy_from(policy)
        url = webhook_url if webhook_url is not None else os.environ.get("AIRT_WEBHOOK_URL")
        secret = webhook_secret if webhook_secret is not None else os.environ.get("AIRT_WEBHOOK_SECRET")
        if url:
            url = check_webhook_url(url)
        grace = _home_grace(home_grace)
        self._store: Store = open_store(db, durability=durability, busy_timeout=busy_timeout)
        try:
            self._store.check_writable()
        except StoreError:
            self._store.close()
            raise
        self.db = self._store.path
        self.registry = registry or default_registry
        # A per-user PostgreSQL role is who acts here, whatever AIRT_USER or user= claim.
        self.user = self._store.authenticated_user or claimed_user
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
        self._host = EngineHost(self)
        self._recovery = Recovery(self._host)
        self._housekeeping = Housekeeping(self._host, self._recovery, self._signalled, poll_interval)
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
        plain = False
        if isinstance(spec, str):
            key = spec
        elif type(spec) is dict and is_plain_spec(spec):
            plain = True
            key = json.dumps(spec, sort_keys=True)
        if key is not None:
            cached = self._validated.get((key, self.registry.version))
            if cached is not None:
                return cached
        if plain:  # looked at already: validated without walking every value again
            plan = self._plan_for(load_plain_spec(spec, registry=self.registry))  # type: ignore[arg-type]
        else:
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

        ``user=`` or ``as_user=`` start it under another name: that is acting
        as that person (the policy's ``act_as`` right, audited), and it is
        refused on a PostgreSQL role of one's own, where the database proves
        who starts it (what ``exclude_requester`` checks).

        Examples
        --------
        >>> run = eng.start(spec_yaml, inputs={"target": "out/r"})  # doctest: +SKIP
        """
        self._check_open()
        plan = self._plan_of(spec)
        name = plan.spec.name
        folder = workdir_for(workdir, name)
        if plan.has_children:
            check_uses(plan.spec, folder, self.registry)
        merged = merge_inputs(plan.spec.inputs, inputs, name)
        if plan.takes_inputs:
            check_step_inputs(plan, merged, self.registry)
        actor = self.user
        audit_rows: list[dict[str, Any]] = []  # recorded with the workflow, in one transaction
        # Starting under another name is acting as that person, whichever keyword names them: it needs
        # the policy's act_as right (and is audited), and is refused outright where the database proves
        # who this is (a PostgreSQL role of one's own): who started a run is what exclude_requester
        # checks, so there it must be proven too.
        for claimed, keyword in ((current_user(user) if user else None, "user="), (as_user, "as_user=")):
            if claimed is None:
                continue
            claimed = check_name(claimed, keyword)
            if claimed == actor:
                continue
            proven = self._store.authenticated_user
            if proven:
                raise PolicyError(
                    f"workflow {name!r}: this database knows you as {proven!r} (a PostgreSQL role of your own), "
                    f"so what you start here is started by {proven}; {keyword}{claimed!r} cannot change that: "
                    f"leave it out, or let {claimed} start it",
                    user=proven,
                    rule="authenticated",
                    workflow=name,
                )
            audit_rows.append(self._gate.act_as(actor, claimed))
            actor = claimed
        audit_rows = self._gate.check_start(actor, plan, merged, audit_rows)
        new = new_run(self._host, plan, merged, actor, folder, audit_rows=audit_rows)
        with new.ex.lock:
            self._store.write(new.op)
            self._stored_specs.add(plan.spec_hash)
            self._launch(new, locked=True)
        from .run import Run

        return Run(self, new.workflow_id)  # the id is ours and exact: no need to look it up as get() does

    def _launch(self, new: NewRun, *, locked: bool = False) -> None:
        """Run a new workflow whose ``op`` has committed."""
        ex = new.ex
        with ex.lock if not locked else contextlib.nullcontext():
            with self._exec_lock:
                self._executions[new.workflow_id] = ex
            ex.committed(new.settled)
        if self._events:
            self._events.emit(ev.WorkflowStatusChanged(new.workflow_id, "RUNNING"))
        for step_name in new.started:
            ex.emit_started(step_name)
            self._submit(ex.drive, step_name)

    def _who(self, by: str | None) -> str:
        """Who acts: ``by`` (checked as a name) when given, else this engine's user."""
        return self.user if by is None else check_name(by, "by=")

    # -- looking up ---------------------------------------------------------------------------------------

    def get(self, workflow_id: str) -> Run:
        """The :class:`~airt_nb.Run` of any workflow in the database (a unique id prefix is enough)."""
        from .run import Run

        return Run(self, self.resolve_id(workflow_id))

    def resolve_id(self, workflow_id: str) -> str:
        """The full id of the workflow ``workflow_id`` names (itself, or a unique prefix of 4+ characters)."""
        self._check_not_closed()
        return resolve_workflow_id(self._store, workflow_id, db=self.db)

    def workflows(
        self, *, status: str | None = None, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> builtins.list[WorkflowRecord]:
        """Workflows in the database, newest first (all kernels, all processes); also ``Engine.list``."""
        self._check_not_closed()
        if status is not None and status not in WORKFLOW_STATUSES:
            raise AirtError(f"status={status!r} is not a workflow status; use one of {', '.join(WORKFLOW_STATUSES)}")
        if name is not None and not isinstance(name, str):
            raise AirtError(f"name= is text that workflow names contain, not {type(name).__name__}")
        _check_settings("{}=", limit=(limit, 0, 10**9, True), offset=(offset, 0, 10**12, True))
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
        if found is None:  # a unique prefix names a workflow too, as for get() (NotFoundError if none)
            found = self._store.workflow_status(self.resolve_id(workflow_id))
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
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0
        ):
            raise AirtError(
                f"timeout= must be a number of seconds, 0 or more (or None to wait as long as it takes), not {timeout!r}"
            )
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
        from . import forking

        self._check_open()
        fork_id = forking.fork(
            self._host, self.resolve_id(workflow_id), from_step, inputs, spec=spec, user=user, workdir=workdir,
            check_actions=check_actions,
        )  # fmt: skip
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
        who = self._who(by)
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
        folder = workdir_for(workdir, plan.spec.name)
        merged = merge_inputs(plan.spec.inputs, inputs, plan.spec.name)
        if plan.takes_inputs:
            check_step_inputs(plan, merged, self.registry)
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

    def _prepare_child(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> NewRun:
        """A child workflow for ``step`` of ``ex``, checked like a start (raises AirtError)."""
        spec = read_child(step.uses or "", ex.workdir, self.registry)
        plan = self._plan_for(spec)
        merged = merge_inputs(plan.spec.inputs, inputs, plan.spec.name)
        actor = ex.started_by or self.user
        audit_rows = self._gate.check_start(actor, plan, merged, [])
        detail = f"as step {step.name} of workflow {ex.id}"
        return new_run(
            self._host, plan, merged, actor, ex.workdir or os.getcwd(), audit_rows=audit_rows, parent=(ex.id, step.name),
            detail=detail,
        )  # fmt: skip

    # -- cancel, rollback, resume -------------------------------------------------------------------------------------

    def cancel(self, workflow_id: str, *, by: str | None = None) -> str:
        """Stop a workflow: no new step starts, nothing is undone; ends CANCELLED.

        Returns ``"cancel"`` (this engine runs it and stops it), ``"requested"``
        (the engine that runs it was asked, and stops it at its next step
        boundary) or ``"CANCELLED"`` (nobody ran it: done here).
        """
        return stopping.stop(self._host, self.resolve_id(workflow_id), "cancel", self._who(by))

    def rollback(self, workflow_id: str, *, by: str | None = None) -> str:
        """Undo every completed step (newest first); ends ROLLED_BACK (or FAILED if an undo fails).

        Returns ``"rollback"``, ``"requested"`` or ``"ROLLING_BACK"`` (see :meth:`cancel`).
        """
        return stopping.stop(self._host, self.resolve_id(workflow_id), "rollback", self._who(by))

    def resume(self, workflow_id: str) -> str:
        """Take over a RUNNING / ROLLING_BACK workflow that no live engine runs, now, here.

        Returns ``"resumed"``, ``"already running here"`` or ``"owned by another live engine"``.
        """
        self._check_open()
        return adoption.resume(self._host, self.resolve_id(workflow_id))

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
        """Build the execution of a workflow this engine just claimed and continue it (see :mod:`airt_nb.adoption`)."""
        return adoption.adopt(self._host, workflow_id, lost_from=lost_from)

    def action_registered(self, name: str) -> None:
        """Registry callback: take up workflows that waited for this action."""
        if not self._closing and any(w == f"action {name}" for w in self._waiting.values()):
            self._on_signal()

    # -- housekeeping ----------------------------------------------------------------------------------------------------

    def _on_signal(self) -> None:
        self._signalled.set()
        self._timers.wake()

    def _tick(self) -> None:
        self._housekeeping.tick()

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

    def _wait_child(self, child_id: str) -> str:
        while not self._closing:
            try:
                status = self.wait(child_id, timeout=1.0, until="done")
            except WaitTimeoutError:
                continue
            except StoreError:
                if self._closing:
                    break
                raise
            if status != "ROLLING_BACK":
                return status
        return "ROLLING_BACK"  # this engine closes: the rollback goes on when one opens again

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

    # -- closing ------------------------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise WorkflowStateError(f"the engine on {self.db} is closed; create a new Engine")

    def _check_not_closed(self) -> None:
        """Reading needs the database open: after close() returned, say so rather than fail in the store."""
        if self._closed:
            raise WorkflowStateError(f"the engine on {self.db} is closed; create a new Engine to read it")

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
        self._housekeeping.flush_progress()
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


def _check_settings(label: str = "Engine({}=...)", **settings: tuple[Any, float, float, bool]) -> None:
    """Each setting ``name=(value, low, high, whole)`` a finite number in range, or an AirtError naming it."""
    for name, (value, low, high, whole) in settings.items():
        try:
            number(value, low=low, high=high, integer=whole)
        except ValueError as exc:
            raise AirtError(f"{label.format(name)}: {exc}") from None


def _policy_from(policy: Policy | str | os.PathLike[str] | None) -> Policy:
    """``policy`` itself, the file it names, the file ``AIRT_POLICY`` names, or allow-all."""
    if policy is None:
        policy = os.environ.get("AIRT_POLICY") or None
        if policy is None:
            return AllowAll()
    if isinstance(policy, str | os.PathLike):
        from .policy import load_policy

        if not os.fspath(policy).strip():
            raise PolicyError("policy= is empty; give the path of a policy file, or leave it out", path="")
        return load_policy(policy)
    needed = ("roles_of", "check_action", "check_approval", "check_act_as", "check_pending", "approval_rules")
    if not hasattr(policy, "enforcing") or not all(callable(getattr(policy, m, None)) for m in needed):
        raise PolicyError(
            f"policy= must be a policy file's path or a Policy (from airt_nb.policy.load_policy), not "
            f"{type(policy).__name__}; write the rules to a YAML file and give its path",
            path=None,
        )
    return policy
