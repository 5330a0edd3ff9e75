"""Every run, step, approval and compensation as a pandas DataFrame.

Times are timezone-aware UTC datetimes, durations timedeltas, statuses
categoricals, counts integers, and JSON columns decoded.  Each column has the
same dtype whether the frame is empty or not (a column's kind follows from its
name: ``*_at`` is a time, ``attempt`` a count, ...), so code written against
an empty database works on a full one.  Frames read through their own
connection in WAL mode: they never block a running engine.

The frames are :class:`Frame` objects: plain DataFrames that *display* their
times as ``2025-05-01 18:05:03`` (UTC) and durations as ``4 min 05 s``; the
values keep their dtypes.  ``runs()`` lists the newest first, like
``%workflow list``, with the columns people read first and the internal ones
(``spec_hash``, ``owner``) last.

``db`` is a path (default ``$AIRT_DB`` or ``./airt.db``), an
:class:`~airt_nb.Engine`, or a store.  This is the only module that imports pandas.
"""

from __future__ import annotations

import contextlib
import json
import json.scanner
from collections.abc import Callable
from typing import Any, ClassVar, cast

import pandas as pd

from .errors import AirtError, StoreError
from .store import Store, opened, records
from .views.diff import FIELDS, diff_html, diff_text
from .views.text import fmt_duration
from .workflow_ids import resolve_workflow_id

__all__ = [
    "DiffFrame",
    "Frame",
    "approvals",
    "attempts",
    "audit",
    "compensations",
    "deliveries",
    "diff",
    "history",
    "runs",
    "steps",
]

WORKFLOW_STATUSES = list(records.WORKFLOW_STATUSES)
STEP_STATUSES = [
    "PENDING",
    "RUNNING",
    "RETRYING",
    "WAITING",
    "COMPLETED",
    "FAILED",
    "REJECTED",
    "COMPENSATED",
    "COMPENSATION_FAILED",
    "SKIPPED",
    "CANCELLED",
]
ATTEMPT_STATUSES = ["FAILED", "INTERRUPTED"]
APPROVAL_STATUSES = ["PENDING", "APPROVED", "REJECTED", "CANCELLED"]
COMPENSATION_STATUSES = ["PENDING", "DONE", "FAILED", "CARRIED"]
HISTORY_EVENTS = [
    "started",
    "paused",
    "approved",
    "rejected",
    "cancel_requested",
    "rollback_requested",
    "cancelled",
    "rolled_back",
    "completed",
    "failed",
    "engine_lost",
    "resumed",
    "timed_out",
    "skipped",
    "asked_again",
    "reminded",
    "escalated",
    "forked",
    "event_sent",
    "waiting_for_event",
    "event_received",
    "event_timed_out",
    "child_started",
    "child_completed",
    "child_failed",
]

_COUNTS = {"position", "attempt", "attempts", "steps_total", "steps_done", "compensation_id", "audit_id", "seq"}
_COUNTS |= {"webhook_attempts", "min_approvals", "approved_count", "reminders"}
_FLAGS = {"exclude_requester", "authenticated"}
_MAYBE_COUNTS = {"last_status", "http_status"}  # may be missing: pandas' nullable integer
_DURATIONS = {"duration", "waited"}
#: the default dtype of text in this pandas (object before pandas 3, str from 3 on)
TEXT = pd.Series(["x"]).dtype

RUNS_FIRST = [
    "workflow_id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "finished_at",
    "duration",
    "error",
    "started_by",
    "steps_done",
    "steps_total",
    "waiting_for",
    "warnings",
    "inputs",
    "forked_from",
    "parent_id",
]
RUNS_LAST = ["spec_hash", "owner"]


class Frame(pd.DataFrame):
    """A DataFrame that shows times and durations for people; the values keep their dtypes.

    >>> airt_nb.steps()["duration"].dtype      # doctest: +SKIP
    dtype('<m8[ns]')
    >>> airt_nb.steps()[["step_name", "duration"]]   # shows "0.51 s", "4 min 05 s"  # doctest: +SKIP
    """

    @property
    def _constructor(self) -> Callable[..., Frame]:
        return Frame

    def _formatters(self) -> dict[Any, Callable[[Any], str]]:
        found: dict[Any, Callable[[Any], str]] = {}
        for col, dtype in self.dtypes.items():
            if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
                found[col] = _show_time
            elif pd.api.types.is_timedelta64_dtype(dtype):
                found[col] = _show_duration
        return found

    def _display_rows(self) -> int | None:
        most, fewest = pd.get_option("display.max_rows"), pd.get_option("display.min_rows")
        if most is None or len(self) <= most:
            return most
        return fewest or most

    def _repr_html_(self) -> str | None:
        formatters = self._formatters()
        if not formatters or not pd.get_option("display.notebook_repr_html"):
            return super()._repr_html_()  # type: ignore[no-any-return]
        return self.to_html(
            formatters=formatters,
            max_rows=self._display_rows(),
            max_cols=pd.get_option("display.max_columns"),
            show_dimensions=pd.get_option("display.show_dimensions"),
            notebook=True,
        )

    def __repr__(self) -> str:
        formatters = self._formatters()
        if not formatters:
            return super().__repr__()
        return self.to_string(
            formatters=formatters,
            max_rows=self._display_rows(),
            max_cols=pd.get_option("display.max_columns"),
            show_dimensions=pd.get_option("display.show_dimensions"),
        )


def _show_time(value: Any) -> str:
    return "" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M:%S")


def _show_duration(value: Any) -> str:
    return "" if pd.isna(value) else fmt_duration(value.total_seconds())


def _store(db: Any) -> contextlib.AbstractContextManager[Store]:
    if db is None:  # the kernel's engine if one is open, else $AIRT_DB or ./airt.db
        from . import session

        db = session.current()
    return opened(db)


_STATUSES_OF = {
    "workflows": WORKFLOW_STATUSES,
    "workflow_steps": STEP_STATUSES,
    "approvals": APPROVAL_STATUSES,
    "compensation_log": COMPENSATION_STATUSES,
}


def _frame(
    store: Store,
    table: str,
    workflow_id: str | None = None,
    status: str | None = None,
    *,
    optional: tuple[str, ...] = (),
) -> pd.DataFrame:
    """One table's rows; a table the database does not have yet reads as no rows of ``optional`` columns."""
    if workflow_id is not None and not isinstance(workflow_id, str):
        raise AirtError(f"workflow_id= is a workflow's id (text), not {type(workflow_id).__name__}")
    if workflow_id is not None:
        workflow_id = resolve_workflow_id(store, workflow_id)  # a prefix, as everywhere an id is asked for
    allowed = _STATUSES_OF.get(table)
    if status is not None and allowed is not None and status not in allowed:
        raise AirtError(f"status={status!r} is not a status of {table}; use one of {', '.join(allowed)}")
    try:
        columns, rows = store.all_rows(table, workflow_id=workflow_id, status=status)
    except StoreError as exc:
        if not optional or f"no table {table!r}" not in str(exc):
            raise
        columns, rows = list(optional), []
    return pd.DataFrame.from_records(rows, columns=columns)


# The C scanner json.loads ends in: the stored JSON is ours (compact, one value), and for 100,000 rows
# the Python layers around the scanner cost more than the scanning.
_scan = json.scanner.make_scanner(cast(Any, json.JSONDecoder()))  # typeshed types the decoder as a scanner


def _loads(text: str) -> Any:
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)  # not JSON: json.loads raises the error that says where
    return value if end == len(text) else json.loads(text)


def _decode(df: pd.DataFrame, *cols: str) -> None:
    for col in cols:
        values = df[col].to_numpy(dtype=object)  # not the Series: pandas 3 iterates a str column in Python
        df[col] = pd.Series([_loads(v) if isinstance(v, str) else v for v in values], index=df.index, dtype=object)


def _category(df: pd.DataFrame, col: str, categories: list[str]) -> None:
    extra = [c for c in df[col].dropna().unique() if c not in categories]
    df[col] = pd.Categorical(df[col], categories=categories + extra)


def _time(values: pd.Series) -> pd.Series:
    # One resolution whatever the rows (pandas would pick seconds for an empty column): stored times
    # have microseconds.
    return pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[us, UTC]")


def _kind(col: str) -> str:
    if col.endswith("_at") or col in ("deadline", "at"):
        return "time"
    if col in _DURATIONS:
        return "duration"
    if col in _COUNTS:
        return "count"
    if col in _MAYBE_COUNTS:
        return "maybe-count"
    if col in _FLAGS:
        return "flag"
    return "text"


def _typed(df: pd.DataFrame, *, keep: tuple[str, ...] = ()) -> Frame:
    """Give every column the dtype its name calls for (``keep``: decoded JSON and categoricals, as they are)."""
    for col in df.columns:
        if col in keep or isinstance(df[col].dtype, pd.CategoricalDtype):
            continue
        kind = _kind(str(col))
        if kind == "time":
            df[col] = _time(df[col])
        elif kind == "duration":
            df[col] = pd.to_timedelta(df[col]).astype("timedelta64[us]")
        elif kind == "count":
            df[col] = df[col].fillna(0).astype("int64")
        elif kind == "maybe-count":
            df[col] = df[col].astype("Int64")
        elif kind == "flag":
            df[col] = df[col].fillna(0).astype(bool)
        elif df[col].dtype == object and pd.api.types.infer_dtype(df[col], skipna=True) in ("string", "empty"):
            df[col] = df[col].astype(TEXT)  # text or NULL only (SQLite gives no NaN), checked in C
    return Frame(df)


def runs(db: Any = None, *, status: str | None = None) -> Frame:
    """One row per workflow, newest first (as ``%workflow list``): ``workflow_id, name, status,
    created_at, updated_at, finished_at, duration, error, started_by``, progress (``steps_done``,
    ``steps_total``), ``waiting_for``, ``warnings``, ``inputs``, ``forked_from`` (the run it is a
    fork of), ``parent_id`` (the workflow whose step ``parent_step`` started it), and last the
    internal ``spec_hash`` and ``owner`` (the engine holding its lease).

    Examples
    --------
    >>> import airt_nb
    >>> with airt_nb.Engine("airt.db") as eng:
    ...     eng.start({"name": "hi", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]}).wait(10)
    'COMPLETED'
    >>> airt_nb.runs("airt.db")[["name", "status", "steps_done", "steps_total"]]
      name     status  steps_done  steps_total
    0   hi  COMPLETED           1            1
    >>> airt_nb.runs("airt.db").query("status == 'FAILED'").empty
    True
    """
    with _store(db) as store:
        df = _frame(store, "workflows", status=status)
    df = df.iloc[::-1].reset_index(drop=True)  # stored oldest first; people read the newest first
    df = df.rename(columns={"done_steps": "steps_done", "total_steps": "steps_total", "lease_owner": "owner"})
    for col in ("created_at", "updated_at", "finished_at"):
        df[col] = _time(df[col])
    df["duration"] = df["finished_at"] - df["created_at"]
    _category(df, "status", WORKFLOW_STATUSES)
    _decode(df, "inputs", "warnings")
    df["warnings"] = pd.Series([w if isinstance(w, list) else [] for w in df["warnings"]], index=df.index, dtype=object)
    middle = [c for c in df.columns if c not in RUNS_FIRST and c not in RUNS_LAST]
    df = df[[c for c in RUNS_FIRST if c in df.columns] + middle + [c for c in RUNS_LAST if c in df.columns]]
    return _typed(df, keep=("inputs", "warnings"))


def steps(db: Any = None, workflow_id: str | None = None, *, status: str | None = None) -> Frame:
    """One row per step: ``workflow_id, step_name, status, attempt, started_at, finished_at,
    duration, inputs, outputs, error`` (and ``traceback`` where recorded, ``type``, ``action``,
    ``position``, ``next_attempt_at``).

    Examples
    --------
    >>> import airt_nb
    >>> with airt_nb.Engine("airt.db") as eng:
    ...     run = eng.start({"name": "hi", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]})
    ...     run.wait(10)
    'COMPLETED'
    >>> airt_nb.steps("airt.db", workflow_id=run.id)[["step_name", "status", "attempt", "outputs"]]
      step_name     status  attempt         outputs
    0         a  COMPLETED        1  {'waited': 0.0}
    """
    with _store(db) as store:
        df = _frame(store, "workflow_steps", workflow_id=workflow_id, status=status)
    for col in ("started_at", "finished_at"):
        df[col] = _time(df[col])
    df["duration"] = df["finished_at"] - df["started_at"]
    _category(df, "status", STEP_STATUSES)
    _decode(df, "inputs", "outputs")
    order = [
        "workflow_id",
        "step_name",
        "status",
        "attempt",
        "started_at",
        "finished_at",
        "duration",
        "inputs",
        "outputs",
        "error",
    ]
    return _typed(df[order + [c for c in df.columns if c not in order]], keep=("inputs", "outputs"))


def attempts(db: Any = None, workflow_id: str | None = None) -> Frame:
    """Every earlier attempt of every step: failed and retried, or ``INTERRUPTED`` (its engine
    stopped); the attempt that counted is in :func:`steps`.

    Examples
    --------
    >>> airt_nb.attempts(workflow_id=run.id)[["step_name", "attempt", "status", "error"]]  # doctest: +SKIP
      step_name  attempt  status                                    error
    0     check        1  FAILED  ConnectionError: the spell checker ...
    """
    with _store(db) as store:
        df = _frame(store, "step_attempts", workflow_id=workflow_id)
    for col in ("started_at", "finished_at"):
        df[col] = _time(df[col])
    df["duration"] = df["finished_at"] - df["started_at"]
    _category(df, "status", ATTEMPT_STATUSES)
    return _typed(df)


def approvals(db: Any = None, status: str | None = None, *, workflow_id: str | None = None) -> Frame:
    """One row per approval request: ``approval_id, workflow_id, step_name, status, message,
    requested_at, deadline, decided_at, decided_by, reason`` plus ``approvers``, ``on_timeout``,
    ``context`` (``depends_on``: the outputs the approver needs; ``undo``: what a rejection
    rolls back; ``not_undone``: completed steps it cannot undo), ``undo`` (the steps a
    rejection rolls back, newest first), ``waited``, the request's webhook delivery
    (``webhook_status``, ``webhook_attempts``, ``webhook_error``; every attempt is in
    :func:`deliveries`), and what approvals worth trusting add: ``fields`` (the typed fields),
    ``values`` (what was approved), ``min_approvals`` and ``approved_count``, ``history``
    (every individual decision: ``decided_by, decision, decided_at, reason, values, auth``),
    ``preview`` (what the steps it gates will do), ``gate_step`` / ``reasked_from`` (a gated
    step asked again), ``reminders`` and ``escalated_at``.

    Examples
    --------
    >>> airt_nb.approvals(status="PENDING")[["workflow_id", "step_name", "message", "deadline"]]  # doctest: +SKIP
    >>> airt_nb.approvals()[["step_name", "decided_by", "reason", "values", "waited"]]  # doctest: +SKIP
    """
    with _store(db) as store:
        df = _frame(store, "approvals", workflow_id=workflow_id, status=status)
        deliveries_df = _frame(store, "webhook_deliveries", workflow_id=workflow_id)
        decided = _frame(store, "approval_decisions", workflow_id=workflow_id, optional=("approval_id", "decision_id"))
    for col in ("requested_at", "deadline", "decided_at"):
        df[col] = _time(df[col])
    _category(df, "status", APPROVAL_STATUSES)
    df = df.rename(columns={"field_values": "values"})
    _decode(df, "context", "approvers", "fields", "values", "preview", "escalate_to")
    df["undo"] = pd.Series(
        [[u["step"] for u in c.get("undo", [])] if isinstance(c, dict) else [] for c in df["context"]],
        index=df.index,
        dtype=object,
    )
    df["waited"] = df["decided_at"] - df["requested_at"]
    df["remind_every"] = pd.to_timedelta(df["remind_every"].astype("float64"), unit="s").astype("timedelta64[us]")
    history: dict[str, list[dict[str, Any]]] = {}
    for row in decided.to_dict("records"):
        values = row.get("field_values")
        history.setdefault(row["approval_id"], []).append(
            {
                "decided_by": row.get("decided_by"),
                "decision": row.get("decision"),
                "decided_at": row.get("decided_at"),
                "reason": row.get("reason"),
                "values": json.loads(values) if isinstance(values, str) else None,
                "auth": row.get("auth"),
            }
        )
    df["history"] = pd.Series([history.get(a, []) for a in df["approval_id"]], index=df.index, dtype=object)
    requested = deliveries_df[deliveries_df["event"] == "approval.requested"]
    summary = requested.groupby("approval_id").agg(
        webhook_status=("status", "last"), webhook_attempts=("attempts", "sum"), webhook_error=("last_error", "last")
    )
    df = df.merge(summary, how="left", left_on="approval_id", right_index=True)
    df["webhook_status"] = df["webhook_status"].astype(object)
    df["webhook_error"] = df["webhook_error"].astype(object)
    for col in ("fields", "values", "preview", "escalate_to"):  # no value: None, as the database says
        df[col] = pd.Series([v if isinstance(v, dict | list) else None for v in df[col]], index=df.index, dtype=object)
    keep = ("context", "approvers", "undo", "fields", "values", "preview", "escalate_to", "history", "remind_every")
    return _typed(df, keep=keep)


def compensations(db: Any = None, workflow_id: str | None = None, *, status: str | None = None) -> Frame:
    """One row per compensation intent: ``workflow_id, step_name, action, status, created_at,
    executed_at, error`` (and ``attempts``, ``inputs``, ``outputs``).

    Examples
    --------
    >>> airt_nb.compensations(workflow_id=run.id)[["step_name", "action", "status", "note"]]  # doctest: +SKIP
    """
    with _store(db) as store:
        df = _frame(store, "compensation_log", workflow_id=workflow_id, status=status)
    for col in ("created_at", "executed_at"):
        df[col] = _time(df[col])
    _category(df, "status", COMPENSATION_STATUSES)
    _decode(df, "inputs", "outputs")
    return _typed(df.drop(columns=["state"]), keep=("inputs", "outputs"))


def deliveries(db: Any = None, workflow_id: str | None = None) -> Frame:
    """Every webhook delivery (``event``, ``url``, ``status``: PENDING, RETRYING, DELIVERED or
    FAILED, ``attempts``, the last attempt's ``last_status`` / ``last_error``) and, in
    ``history``, the outcome of every attempt: ``{attempt, started_at, finished_at, outcome,
    http_status, error}``.

    Examples
    --------
    >>> airt_nb.deliveries().query("status == 'FAILED'")[["event", "url", "last_error"]]  # doctest: +SKIP
    """
    with _store(db) as store:
        df = _frame(store, "webhook_deliveries", workflow_id=workflow_id)
        _, attempt_rows = store.all_rows("webhook_attempts", workflow_id=workflow_id)
    history: dict[str, list[dict[str, Any]]] = {}
    for delivery_id, _a, _w, _e, attempt, started, finished, outcome, http_status, error in attempt_rows:
        history.setdefault(delivery_id, []).append(
            {
                "attempt": attempt,
                "started_at": started,
                "finished_at": finished,
                "outcome": outcome,
                "http_status": http_status,
                "error": error,
            }
        )
    _decode(df, "payload")
    df["history"] = pd.Series([history.get(d, []) for d in df["delivery_id"]], index=df.index, dtype=object)
    return _typed(df, keep=("payload", "history"))


def audit(db: Any = None, workflow_id: str | None = None) -> Frame:
    """Every policy decision that mattered: who, what, allowed or denied, by which rule.

    Examples
    --------
    >>> airt_nb.audit().query("decision == 'deny'")[["at", "user", "event", "rule"]]  # doctest: +SKIP
    """
    with _store(db) as store:
        df = _frame(store, "audit_log", workflow_id=workflow_id)
    _decode(df, "roles")
    return _typed(df, keep=("roles",))


def history(db: Any = None, workflow_id: str | None = None) -> Frame:
    """What happened to each run, in order: ``workflow_id, seq, at, event, by, detail``.

    Events: ``started``, ``paused``, ``approved``, ``rejected``, ``cancel_requested``,
    ``rollback_requested``, ``cancelled``, ``rolled_back``, ``completed``, ``failed``,
    ``engine_lost`` (``detail`` names the engine that stopped), ``resumed`` (by which
    engine), and those of branches, reminders, forks, events and children (``skipped``,
    ``reminded``, ``forked``, ``event_received``, ``child_failed``...: :data:`HISTORY_EVENTS`
    lists them all).  A database written before the history was recorded gives an empty frame.

    Examples
    --------
    >>> airt_nb.history(workflow_id=run.id)[["at", "event", "by"]]   # doctest: +SKIP
    """
    with _store(db) as store:
        df = _frame(
            store,
            "workflow_events",
            workflow_id=workflow_id,
            optional=("workflow_id", "seq", "at", "event", "by", "detail"),
        )
    _category(df, "event", HISTORY_EVENTS)
    return _typed(df)


# -- two runs side by side --------------------------------------------------------------------------


class DiffFrame(Frame):
    """:func:`diff`'s frame: shown as the two runs side by side (``run_a``, ``run_b``); a slice of
    it is a plain :class:`Frame`."""

    _metadata: ClassVar[list[str]] = ["run_a", "run_b", "relation", "compared"]
    run_a: str
    run_b: str
    relation: str | None
    compared: int

    @property
    def _constructor(self) -> Callable[..., Frame]:
        return Frame

    def _rows(self) -> list[dict[str, Any]]:
        return [{str(k): v for k, v in row.items()} for row in self.to_dict("records")]

    def _repr_html_(self) -> str | None:
        return diff_html(self.run_a, self.run_b, self._rows(), total=self.compared, relation=self.relation)

    def __repr__(self) -> str:
        return diff_text(self.run_a, self.run_b, self._rows(), total=self.compared, relation=self.relation)


def _run_id(run: Any, store: Store) -> str:
    ident = getattr(run, "id", run)
    if not isinstance(ident, str) or not ident:
        raise StoreError(f"diff() takes two runs or workflow ids, not {run!r}")
    return resolve_workflow_id(store, ident)


def diff(a: Any, b: Any, db: Any = None) -> DiffFrame:
    """The steps whose status, inputs or outputs differ between runs ``a`` and ``b``, values side by side.

    ``a`` and ``b`` are :class:`~airt_nb.Run` objects or workflow ids (a unique prefix is enough).
    Columns: ``step_name``, ``changed`` (which of status, inputs, outputs differ), then
    ``status_a``, ``status_b``, ``inputs_a``, ``inputs_b``, ``outputs_a``, ``outputs_b``, ``error_a``,
    ``error_b``.  A step one run has and the other not differs in every field.  In a notebook the
    frame shows as a table with the differing cells marked.

    Examples
    --------
    >>> fixed = eng.fork(run.id, from_step="train")   # doctest: +SKIP
    >>> airt_nb.diff(run, fixed)                      # doctest: +SKIP
    """
    if db is None:
        db = getattr(a, "engine", None) or getattr(b, "engine", None)
    with _store(db) as store:
        id_a, id_b = _run_id(a, store), _run_id(b, store)
        rec_a, rec_b = store.workflow(id_a), store.workflow(id_b)
        steps_a, steps_b = store.steps(id_a), store.steps(id_b)
    relation = None
    if rec_b is not None and rec_b.forked_from == id_a:
        relation = "b is a fork of a"
    elif rec_a is not None and rec_a.forked_from == id_b:
        relation = "a is a fork of b"
    by_a = {s.step_name: s for s in steps_a}
    by_b = {s.step_name: s for s in steps_b}
    names = [s.step_name for s in steps_a] + [s.step_name for s in steps_b if s.step_name not in by_a]
    rows: list[dict[str, Any]] = []
    for name in names:
        sa, sb = by_a.get(name), by_b.get(name)
        values: dict[str, Any] = {}
        for side, step in (("a", sa), ("b", sb)):
            values[f"status_{side}"] = step.status if step else None
            values[f"inputs_{side}"] = json.loads(step.inputs) if step and step.inputs else None
            values[f"outputs_{side}"] = json.loads(step.outputs) if step and step.outputs else None
            values[f"error_{side}"] = step.error if step else None
        changed = [f for f in FIELDS if values[f"{f}_a"] != values[f"{f}_b"]]
        if changed:
            rows.append({"step_name": name, "changed": changed, **values})
    columns = ["step_name", "changed"] + [f"{f}_{side}" for f in (*FIELDS, "error") for side in ("a", "b")]
    df = pd.DataFrame.from_records(rows, columns=columns)
    for col in ("changed", "inputs_a", "inputs_b", "outputs_a", "outputs_b"):
        df[col] = pd.Series(list(df[col]), index=df.index, dtype=object)
    typed = _typed(df, keep=("changed", "inputs_a", "inputs_b", "outputs_a", "outputs_b"))
    out = DiffFrame(typed)
    out.run_a, out.run_b, out.relation, out.compared = id_a, id_b, relation, len(names)
    return out
