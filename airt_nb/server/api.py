"""What the approvals page and its JSON API say and do, independent of the web framework.

The tornado handlers (:mod:`airt_nb.server.handlers`) parse a request, ask
who is authenticated, and call these functions on a worker thread; every
refusal is an :class:`ApiError` carrying the HTTP status that fits it:

======  ==================================================================
400     a bad value in the request (unknown status, decision, values, an event no step waits for,
        a payload its schema refuses...)
403     the authenticated user may not decide (``PolicyError``), or decides on a server whose database
        records another person (a PostgreSQL role of its own)
404     no such approval or workflow
409     already decided (or sent), or the workflow no longer waits for a decision (or event)
503     no database yet, or the server is shutting down
======  ==================================================================

Records are turned into JSON generically (every column of the record, JSON
columns decoded: ``fields``, ``field_values``, ``min_approvals``,
``approved_count``, ``preview``...), each approval with its individual
``decisions``, so what the engine records reaches the page as it is.  A
pending approval listed for a person also says whether they may decide it
(``standing``): the notebook card's own check
(:func:`airt_nb.approval_standing.standing`), asked as that person.

Imports no tornado, IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..approval_rules import AUTHENTICATED
from ..approval_standing import standing
from ..errors import AirtError, ApprovalError, EventError, NotFoundError, PolicyError, WorkflowStateError
from ..fields import describe_field
from ..limits import is_digit_limit
from ..store.records import ApprovalRecord, DecisionRecord, WorkflowRecord

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = [
    "APPROVAL_STATUSES",
    "ApiError",
    "Identity",
    "approval_json",
    "decide",
    "deciding_as",
    "list_approvals",
    "parse_decision",
    "parse_event",
    "send_event",
    "standing_json",
    "user_json",
    "workflow_detail",
]

APPROVAL_STATUSES = ("PENDING", "APPROVED", "REJECTED", "CANCELLED", "ALL")
# Columns holding JSON text, in the records of today and those announced (fields, values, preview).
_JSON_COLUMNS = (
    "context", "approvers", "fields", "values", "field_values", "preview", "escalate_to", "inputs", "outputs",
    "state", "warnings",
)  # fmt: skip
_LIST_LIMIT = 200


class ApiError(Exception):
    """A refusal with its HTTP status; ``message`` is what the page shows."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Identity:
    """Who a request is, as the server established it (:func:`airt_nb.server.handlers.identity`).

    ``auth`` is recorded with what the request decides (``"jupyterhub"``,
    ``"jupyter"``, ``"database"``; ``None``: asserted) and ``note`` tells the
    person deciding how the name was established.  ``basis`` says whose name
    it is: ``"login"``, a person the server logged in; else the server's
    owner, let in by the server's token or password (``"account"``: the
    operating-system account the server runs as; ``"named"``: a name the
    server was started with) or by nothing (``"open"``).  A token proves
    access to the server, never who holds it.
    """

    name: str
    auth: str | None
    note: str
    basis: str = "login"

    @property
    def owner(self) -> bool:
        return self.basis != "login"


def deciding_as(engine: Engine, who: Identity) -> Identity:
    """Who a decision made through ``engine`` is recorded as, or a 403 when that is not ``who``.

    On PostgreSQL with a role per person the database records its
    ``session_user`` whatever name is given.  The server's owner is then that
    role (the server holds its credentials); a person the server logged in
    under another name would be recorded as someone else, so is refused.
    """
    role = engine.store.authenticated_user
    if role is None or (who.name == role and who.auth):
        return who
    if who.owner or who.name == role:
        note = f"authenticated by the database: {role} is this server's PostgreSQL role"
        if who.basis == "open":
            note += f"; the server itself authenticates nobody, so whoever reaches it decides as {role}"
        return Identity(role, "database", note, who.basis)
    raise ApiError(403, f"{_elsewhere(role, who)}. Nothing was recorded")


def _elsewhere(role: str, who: Identity) -> str:
    return (
        f"this server decides as its database role {role}; {who.name} ({who.note}) must decide from their own "
        f"server (one that connects to the database as {who.name})"
    )


_AUTH_WORDS = {"jupyterhub": "JupyterHub", "jupyter": "Jupyter", "database": "the database"}


def _note(auth: str | None) -> str:
    return f"authenticated by {_AUTH_WORDS.get(auth, auth)}" if auth else "asserted"


def user_json(engine: Engine, who: Identity) -> dict[str, Any]:
    """The page's "deciding as": the name decisions are recorded under and how it was established;
    ``refused`` says why this person cannot decide here (else ``None``)."""
    try:
        recorded = deciding_as(engine, who)
    except ApiError:
        role = engine.store.authenticated_user or ""
        return {"name": who.name, "authenticated_by": who.auth, "note": who.note, "refused": _elsewhere(role, who)}
    return {"name": recorded.name, "authenticated_by": recorded.auth, "note": recorded.note, "refused": None}


def _decoded(data: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON_COLUMNS:
        value = data.get(key)
        if isinstance(value, str):
            try:
                data[key] = json.loads(value)
            except ValueError:
                pass
    return data


def approval_json(
    record: ApprovalRecord, workflow: WorkflowRecord | None = None, decisions: list[DecisionRecord] | None = None
) -> dict[str, Any]:
    """Every column of the approval, JSON decoded, with its workflow's name and status and its decisions."""
    data = _decoded(asdict(record))
    data.pop("preview_hash", None)
    for flag in ("exclude_requester", "authenticated"):  # stored as 0/1; true/false, as in the webhooks
        if flag in data:
            data[flag] = bool(data[flag])
    if isinstance(data.get("preview"), dict):  # the hashes stay in the database (inputs may hold secrets)
        steps = [{k: v for k, v in e.items() if k not in ("hash", "target")} for e in data["preview"].get("steps", [])]
        data["preview"] = {**data["preview"], "steps": steps}
    if isinstance(data.get("fields"), dict):  # what each field takes, in the words the notebook's card uses
        hints = {}
        for name, spec in data["fields"].items():
            try:
                hints[name] = describe_field(spec)
            except ValueError:  # a field this version does not know: the page shows its name only
                continue
        data["field_hints"] = hints
    if decisions is not None:
        data["decisions"] = [_decoded(asdict(d)) for d in decisions]
    if workflow is not None:
        data["workflow_name"] = workflow.name
        data["workflow_status"] = workflow.status
        data["workflow_error"] = workflow.error  # what stopped it (a rejection, an undo that failed...)
        data["started_by"] = workflow.started_by
    return data


def _workflow_json(record: WorkflowRecord) -> dict[str, Any]:
    data = _decoded(asdict(record))
    data.pop("spec", None)  # large, and the steps below say what matters
    data.pop("lease_owner", None)
    data.pop("lease_expires", None)
    return data


def standing_json(
    engine: Engine, who: Identity, approval: ApprovalRecord, decisions: list[DecisionRecord]
) -> dict[str, Any]:
    """Whether ``who`` may decide the pending ``approval`` now, and if not, why: ``refusal`` (they may
    decide neither way), ``already`` (they approved already: they may still reject), ``may_decide``.

    The notebook card's and inbox's check (:func:`airt_nb.approval_standing.standing`: the
    policy, ``approvers``, ``authenticated``, ``exclude_requester``, one approval per person), asked
    as the person the decision would be recorded as (:func:`deciding_as`); the decision itself has the
    last word.
    """
    try:
        recorded = deciding_as(engine, who)
    except ApiError:
        role = engine.store.authenticated_user or ""
        return {
            "may_decide": False,
            "refusal": f"{who.name} cannot decide here: {_elsewhere(role, who)}",
            "already": None,
        }
    verdict = standing(engine, approval, decisions, user=recorded.name, authenticated=recorded.auth in AUTHENTICATED)
    return {"may_decide": verdict.may_decide, "refusal": verdict.refusal, "already": verdict.already}


def list_approvals(
    engine: Engine,
    status: str | None,
    workflow_id: str | None = None,
    approval_id: str | None = None,
    who: Identity | None = None,
) -> list[dict[str, Any]]:
    """Approvals with ``status`` (default PENDING; ``ALL`` for every one), newest decisions first;
    with ``who``, each pending one says whether that person may decide it (``standing``).

    >>> list_approvals(eng, "pending")  # doctest: +SKIP
    [{'approval_id': '8eb2d76fa2394741', 'step_name': 'review', 'status': 'PENDING', ...}]
    """
    wanted = (status or "PENDING").strip().upper()
    if wanted not in APPROVAL_STATUSES:
        raise ApiError(400, f"unknown approval status {status!r}; use one of {', '.join(APPROVAL_STATUSES)}")
    store = engine.store
    records = store.approvals(
        workflow_id=workflow_id or None, approval_id=approval_id or None, status=None if wanted == "ALL" else wanted
    )
    if wanted == "PENDING":
        records.sort(key=lambda a: (a.requested_at, a.approval_id))
    else:
        records.sort(key=lambda a: (a.decided_at or a.requested_at, a.approval_id), reverse=True)
    records = records[:_LIST_LIMIT]
    workflows: dict[str, WorkflowRecord | None] = {}
    for a in records:
        if a.workflow_id not in workflows:
            workflows[a.workflow_id] = store.workflow(a.workflow_id)
    listed = []
    for a in records:
        decisions = store.decisions(approval_id=a.approval_id)
        data = approval_json(a, workflows[a.workflow_id], decisions)
        if who is not None:
            data["standing"] = standing_json(engine, who, a, decisions) if a.status == "PENDING" else None
        listed.append(data)
    return listed


def workflow_detail(engine: Engine, workflow_id: str) -> dict[str, Any]:
    """A workflow with its steps, attempts, approvals and compensations."""
    try:
        full_id = engine.resolve_id(workflow_id)
    except NotFoundError as exc:
        raise ApiError(404, _text(exc)) from None
    store = engine.store
    record = store.workflow(full_id)
    if record is None:
        raise ApiError(404, f"no workflow {workflow_id!r} in {engine.db}")
    keys = ("workflow_id", "step_name", "attempt", "status", "started_at", "finished_at", "error")
    return {
        "workflow": _workflow_json(record),
        "steps": [_decoded(asdict(s)) for s in store.steps(full_id)],
        "attempts": [dict(zip(keys, row, strict=True)) for row in store.attempts(full_id)],
        "approvals": [approval_json(a) for a in store.approvals(workflow_id=full_id)],
        "compensations": [_decoded(asdict(c)) for c in store.compensations(full_id)],
        "events": [_event_json(e) for e in store.sent_events(workflow_id=full_id)],
        "children": [_workflow_json(c) for c in store.children(full_id)],
    }


def _event_json(record: Any) -> dict[str, Any]:
    data = asdict(record)
    data["payload"] = record.data
    return data


def _json_body(body: bytes, shape: str) -> Any:
    """The request body's JSON, or a 400 that says what is wrong with it and what is expected."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(400, f"the body nests too deeply to be read; send {shape}") from None
    except ValueError as exc:
        if is_digit_limit(exc):
            raise ApiError(400, "the body holds an integer of more than 4,300 digits; send it as text") from None
        raise ApiError(400, f"the body must be JSON: {shape}") from None


def parse_event(body: bytes) -> Any:
    """The payload of an event from a request body ``{"payload": ...}`` (absent: null); a name in it is ignored.

    >>> parse_event(b'{"payload": {"passed": true}, "by": "mallory"}')
    {'passed': True}
    """
    data = _json_body(body or b"{}", '{"payload": ...}')
    if not isinstance(data, dict):
        raise ApiError(400, 'the body must be a JSON object: {"payload": ...}')
    return data.get("payload")


def send_event(
    engine: Engine, workflow_id: str, event: str, payload: Any, *, user: str, authenticated_by: str | None
) -> dict[str, Any]:
    """Send ``event`` to a workflow as ``user`` (the identity the server authenticated, never a name
    from the request); returns the recorded event and the workflow's status."""
    try:
        full_id = engine.resolve_id(workflow_id)
        record = engine.send(full_id, event, payload, by=user, authenticated_by=authenticated_by)
    except NotFoundError as exc:
        raise ApiError(404, _text(exc)) from None
    except EventError as exc:
        raise ApiError(409 if exc.conflict else 400, _text(exc)) from None
    except AirtError as exc:
        raise ApiError(400, _text(exc)) from None
    workflow = engine.store.workflow(full_id)
    return {"event": _event_json(record), "workflow_status": workflow.status if workflow else None}


def parse_decision(body: bytes) -> tuple[bool, str | None, dict[str, Any] | None]:
    """``(approve, reason, values)`` from a request body; a name in it (``by``...) is ignored.

    >>> parse_decision(b'{"decision": "approve", "reason": "ok", "by": "mallory"}')
    (True, 'ok', None)
    """
    data = _json_body(body or b"null", '{"decision": "approve" | "reject", "reason": "..."}')
    if not isinstance(data, dict):
        raise ApiError(400, 'the body must be a JSON object: {"decision": "approve" | "reject", "reason": "..."}')
    decision = data.get("decision")
    if decision not in ("approve", "reject"):
        raise ApiError(400, f'"decision" must be "approve" or "reject", not {decision!r}')
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, f'"reason" must be text, not {type(reason).__name__}')
    values = data.get("values")
    if values is not None and not isinstance(values, dict):
        raise ApiError(400, f'"values" must be an object of field names and values, not {type(values).__name__}')
    return decision == "approve", (reason.strip() or None) if reason else None, values or None


def _accepts_values(engine: Engine) -> bool:
    try:
        return "values" in inspect.signature(engine.approve).parameters
    except (TypeError, ValueError):
        return False


def decide(
    engine: Engine,
    approval_id: str,
    approve: bool,
    reason: str | None,
    values: dict[str, Any] | None,
    *,
    user: str,
    authenticated_by: str | None,
    owner: bool = False,
) -> dict[str, Any]:
    """Record ``user``'s decision on one approval; returns the decided approval and the workflow's status.

    ``user`` is who the server says the request is, never a name from the request:
    ``authenticated_by`` how it established that (``None``: only asserted, e.g. the
    owner of a server without authentication), ``owner`` whether the name is the
    server's owner rather than a person it logged in (see :func:`deciding_as`).
    """
    found = engine.store.approvals(approval_id=approval_id)
    if not found:
        raise ApiError(404, f"no approval {approval_id!r} in {engine.db}")
    approval = found[0]
    basis = "login" if not owner else "account" if authenticated_by else "named"
    who = deciding_as(engine, Identity(user, authenticated_by, _note(authenticated_by), basis))
    user, authenticated_by = who.name, who.auth
    kwargs: dict[str, Any] = {
        "approval_id": approval_id,
        "by": user,
        "reason": reason,
        "authenticated_by": authenticated_by,
    }
    if values:
        if not _accepts_values(engine):
            raise ApiError(400, f"approval {approval_id} (step {approval.step_name!r}) takes no values")
        kwargs["values"] = values
    act = engine.approve if approve else engine.reject
    try:
        decided = act(approval.workflow_id, **kwargs)
    except PolicyError as exc:
        raise ApiError(403, _text(exc)) from None
    except NotFoundError as exc:
        raise ApiError(404, _text(exc)) from None
    except (ApprovalError, WorkflowStateError) as exc:
        # Decided meanwhile, or the workflow stopped waiting: a conflict.  Still pending and
        # waiting: the request itself was wrong (a value the approval's fields refuse).
        latest = engine.store.approvals(approval_id=approval_id)
        conflict = not latest or latest[0].status != "PENDING" or isinstance(exc, WorkflowStateError)
        if not conflict:
            record = engine.store.workflow(approval.workflow_id)
            conflict = record is None or record.status not in ("PAUSED", "RUNNING")
        if not conflict and approve:  # one of several approvals, approved by this person already
            conflict = any(
                d.decided_by == user and d.decision == "APPROVED"
                for d in engine.store.decisions(approval_id=approval_id)
            )
        raise ApiError(409 if conflict else 400, _text(exc)) from None
    except AirtError as exc:
        raise ApiError(400, _text(exc)) from None
    workflow = engine.store.workflow(approval.workflow_id)
    return {
        "approval": approval_json(decided, workflow),
        "workflow_status": workflow.status if workflow else None,
    }


def _text(exc: Exception) -> str:
    return " ".join(str(exc).split())
