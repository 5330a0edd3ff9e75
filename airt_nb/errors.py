"""Every error airt_nb raises on purpose, in one small tree.

::

    AirtError                  anything airt_nb refuses or cannot do
    ├── SpecError              the workflow YAML is wrong (line, field, fix)
    ├── ActionError            an action is unknown, got bad input or bad output
    ├── PolicyError            the policy (or a step's approvers) says no
    ├── ApprovalError          a decision that cannot be taken (already decided, none pending)
    ├── EventError             an event that cannot be sent (no step waits for it, bad payload, sent already)
    ├── WorkflowStateError     the run is not in a state that allows the operation
    ├── NotFoundError          no workflow / approval with that id
    └── StoreError             the database cannot be used (locked, read-only, corrupt, too new)

Each exception takes the facts as keyword arguments, keeps them as attributes,
and builds a message that ends with what to do about it.  Third-party errors
are translated where the library is called (``raise ... from exc``).
"""

from __future__ import annotations

__all__ = [
    "ActionError",
    "AirtError",
    "ApprovalError",
    "EventError",
    "NotFoundError",
    "PolicyError",
    "SpecError",
    "StoreError",
    "WorkflowStateError",
]


class AirtError(Exception):
    """Base class of every error airt_nb raises on purpose.

    Examples
    --------
    >>> import airt_nb
    >>> try:
    ...     airt_nb.load_spec({"name": "bad name", "steps": []})
    ... except airt_nb.AirtError as exc:
    ...     print(type(exc).__name__)
    SpecError
    """


class SpecError(AirtError):
    """A workflow spec is invalid.

    Attributes
    ----------
    problems:
        One entry per problem: ``(line, field, message)``; ``line`` is 1-based
        or ``None`` when the problem has no place in the YAML text.
    workflow:
        The workflow's name when it could be read.

    Examples
    --------
    >>> import airt_nb
    >>> try:
    ...     airt_nb.load_spec('''
    ... name: x
    ... steps:
    ...   - name: a
    ...     action: nope
    ... ''')
    ... except airt_nb.SpecError as exc:
    ...     print(exc.line, exc.field)
    5 steps[0].action
    """

    def __init__(self, problems: list[tuple[int | None, str, str]], *, workflow: str | None = None):
        self.problems = list(problems)
        self.workflow = workflow
        shown = workflow if workflow is None or len(workflow) <= 80 else f"{workflow[:77]}..."
        head = f"workflow {shown!r}: " if shown else ""
        lines = []
        for line, field, message in self.problems:
            where = f"line {line}, " if line else ""
            lines.append(f"{where}{field or '(top level)'}: {message}")
        if len(lines) == 1:
            text = f"{head}invalid workflow spec: {lines[0]}"
        else:
            text = f"{head}invalid workflow spec ({len(lines)} problems):\n  " + "\n  ".join(lines)
        super().__init__(text)

    @property
    def line(self) -> int | None:
        """The line of the first problem (1-based), if known."""
        return self.problems[0][0] if self.problems else None

    @property
    def field(self) -> str:
        """The field path of the first problem, e.g. ``steps[1].inputs.path``."""
        return self.problems[0][1] if self.problems else ""


class ActionError(AirtError):
    """An action is unknown, was called with bad inputs, or returned bad outputs.

    Examples
    --------
    >>> import airt_nb
    >>> try:
    ...     airt_nb.action(42)
    ... except airt_nb.ActionError as exc:
    ...     print(exc)
    @action(name) takes the action's name as a string, got 42
    """

    def __init__(
        self,
        message: str,
        *,
        action: str | None = None,
        workflow: str | None = None,
        step: str | None = None,
    ):
        self.action = action
        self.workflow = workflow
        self.step = step
        where = []
        if workflow:
            where.append(f"workflow {workflow!r}")
        if step:
            where.append(f"step {step!r}")
        if action:
            where.append(f"action {action!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class PolicyError(AirtError):
    """The policy, or an approval step's ``approvers``, refuses an operation.

    Also raised for a policy file that cannot be used; then ``path`` names the
    file and ``problems`` lists ``(line, field, message)`` like
    :class:`SpecError`.

    Examples
    --------
    >>> run.approve(by="mallory")                  # doctest: +SKIP
    Traceback (most recent call last):
    airt_nb.errors.PolicyError: ... 'mallory' may not decide ...
    >>> run.status                                 # still waiting for an approver  # doctest: +SKIP
    'PAUSED'
    """

    def __init__(
        self,
        message: str,
        *,
        user: str | None = None,
        roles: tuple[str, ...] = (),
        rule: str | None = None,
        workflow: str | None = None,
        step: str | None = None,
        path: str | None = None,
        problems: list[tuple[int | None, str, str]] | None = None,
    ):
        self.user = user
        self.roles = tuple(roles)
        self.rule = rule
        self.workflow = workflow
        self.step = step
        self.path = path
        self.problems = list(problems or [])
        super().__init__(message)

    @property
    def line(self) -> int | None:
        """The line of the policy file's first problem (1-based), if known."""
        return self.problems[0][0] if self.problems else None

    @property
    def field(self) -> str:
        """The field path of the policy file's first problem, e.g. ``roles.author.allow[0]``."""
        return self.problems[0][1] if self.problems else ""


class ApprovalError(AirtError):
    """A decision cannot be taken: nothing pending, or someone decided first.

    Examples
    --------
    >>> run.approve(by="ann")                      # doctest: +SKIP
    >>> run.approve(by="bob")                      # doctest: +SKIP
    Traceback (most recent call last):
    airt_nb.errors.ApprovalError: ... already approved by ann at ...
    """

    def __init__(self, message: str, *, workflow_id: str | None = None, approval_id: str | None = None):
        self.workflow_id = workflow_id
        self.approval_id = approval_id
        super().__init__(message)


class EventError(AirtError):
    """An event cannot be sent to a workflow: no step waits for it, its payload is refused, it was
    sent already, or the workflow no longer waits for events.

    ``conflict`` is true when the event came too late (sent already, or nothing waits any more)
    rather than being wrong.

    Examples
    --------
    >>> eng.send(run.id, "ci.done", {"passed": "yes"})   # doctest: +SKIP
    Traceback (most recent call last):
    airt_nb.errors.EventError: event 'ci.done' for workflow ... does not match the step's schema:
    payload['passed']: 'yes' is not of type 'boolean'; send a payload that does
    """

    def __init__(
        self, message: str, *, workflow_id: str | None = None, event: str | None = None, conflict: bool = False
    ):
        self.workflow_id = workflow_id
        self.event = event
        self.conflict = conflict  # sent already, or nothing waits any more (not a bad request)
        super().__init__(message)


class WorkflowStateError(AirtError):
    """The workflow's status does not allow the requested operation.

    Examples
    --------
    >>> run.status                                 # doctest: +SKIP
    'CANCELLED'
    >>> run.resume()                               # doctest: +SKIP
    Traceback (most recent call last):
    airt_nb.errors.WorkflowStateError: ... is CANCELLED ...
    """

    def __init__(self, message: str, *, workflow_id: str | None = None, status: str | None = None):
        self.workflow_id = workflow_id
        self.status = status
        super().__init__(message)


class NotFoundError(AirtError):
    """No workflow (or approval) with the given id exists in the database.

    Examples
    --------
    >>> import airt_nb
    >>> with airt_nb.Engine("airt.db") as eng:
    ...     try:
    ...         eng.get("0123456789abcdef")
    ...     except airt_nb.NotFoundError as exc:
    ...         print(exc.ident)
    0123456789abcdef
    """

    def __init__(self, what: str, ident: str, *, db: str | None = None, hint: str | None = None):
        self.what = what
        self.ident = ident
        where = f" in {db}" if db else ""
        shown = ident if len(ident) <= 80 else f"{ident[:77]}..."
        if hint is None:
            listing = (
                "`airt schedule list` or eng.schedules()"
                if what.startswith("schedule")
                else "`airt list` or airt_nb.runs()"
            )
            hint = f"list them with {listing} and check the id"
        super().__init__(f"no {what} {shown!r}{where}; {hint}")


class StoreError(AirtError):
    """The database cannot be opened or written.

    Locked for longer than ``busy_timeout``, read-only, in a missing folder,
    corrupted, or written by a newer airt_nb: one error naming the file and
    what to do, never a hang.

    Examples
    --------
    >>> import airt_nb
    >>> try:
    ...     airt_nb.Engine("no/such/folder/airt.db")
    ... except airt_nb.StoreError as exc:
    ...     print(exc.path)
    no/such/folder/airt.db
    """

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(message)
