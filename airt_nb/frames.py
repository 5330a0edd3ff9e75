"""Every run, step, approval and compensation as a pandas DataFrame.

Times are timezone-aware UTC datetimes, ``duration`` a timedelta, statuses
categoricals, and JSON columns decoded.  Frames read through their own
connection in WAL mode: they never block a running engine.

``db`` is a path (default ``$AIRT_DB`` or ``./airt.db``), an
:class:`~airt_nb.Engine`, or a store.  This is the only module that imports pandas.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pandas as pd

from .store import Store, opened

__all__ = ["approvals", "attempts", "audit", "compensations", "deliveries", "runs", "steps"]

WORKFLOW_STATUSES = ["PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "ROLLING_BACK", "ROLLED_BACK", "CANCELLED"]
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
APPROVAL_STATUSES = ["PENDING", "APPROVED", "REJECTED", "CANCELLED"]
COMPENSATION_STATUSES = ["PENDING", "DONE", "FAILED"]


def _store(db: Any) -> contextlib.AbstractContextManager[Store]:
    return opened(db)


def _times(df: pd.DataFrame, *cols: str) -> None:
    for col in cols:
        df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")


def _decode(df: pd.DataFrame, *cols: str) -> None:
    for col in cols:
        df[col] = [json.loads(v) if isinstance(v, str) else v for v in df[col]]


def _category(df: pd.DataFrame, col: str, categories: list[str]) -> None:
    extra = [c for c in df[col].dropna().unique() if c not in categories]
    df[col] = pd.Categorical(df[col], categories=categories + extra)


def _frame(store: Store, table: str, workflow_id: str | None = None, status: str | None = None) -> pd.DataFrame:
    columns, rows = store.all_rows(table, workflow_id=workflow_id, status=status)
    return pd.DataFrame.from_records(rows, columns=columns)


def runs(db: Any = None, *, status: str | None = None) -> pd.DataFrame:
    """One row per workflow: ``workflow_id, name, status, created_at, updated_at, finished_at,
    error, started_by`` and more (``duration``, progress, ``waiting_for``, ``warnings``).

    >>> airt_nb.runs("airt.db").query("status == 'FAILED'")  # doctest: +SKIP
    """
    with _store(db) as store:
        df = _frame(store, "workflows", status=status)
    _times(df, "created_at", "updated_at", "finished_at")
    df["duration"] = df["finished_at"] - df["created_at"]
    _category(df, "status", WORKFLOW_STATUSES)
    _decode(df, "inputs", "warnings")
    df["warnings"] = [w if isinstance(w, list) else [] for w in df["warnings"]]
    df = df.rename(columns={"done_steps": "steps_done", "total_steps": "steps_total", "lease_owner": "owner"})
    return df


def steps(db: Any = None, workflow_id: str | None = None, *, status: str | None = None) -> pd.DataFrame:
    """One row per step: ``workflow_id, step_name, status, attempt, started_at, finished_at,
    duration, inputs, outputs, error`` (and ``type``, ``action``, ``position``)."""
    with _store(db) as store:
        df = _frame(store, "workflow_steps", workflow_id=workflow_id, status=status)
    _times(df, "started_at", "finished_at", "next_attempt_at")
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
    return df[order + [c for c in df.columns if c not in order]]


def attempts(db: Any = None, workflow_id: str | None = None) -> pd.DataFrame:
    """Every failed attempt of every step (the final attempt is in :func:`steps`)."""
    with _store(db) as store:
        df = _frame(store, "step_attempts", workflow_id=workflow_id)
    _times(df, "started_at", "finished_at")
    df["duration"] = df["finished_at"] - df["started_at"]
    return df


def approvals(db: Any = None, status: str | None = None, *, workflow_id: str | None = None) -> pd.DataFrame:
    """One row per approval request: ``approval_id, workflow_id, step_name, status, message,
    requested_at, deadline, decided_at, decided_by, reason`` plus ``approvers``, ``on_timeout``,
    ``context`` (``depends_on``: the outputs the approver needs; ``undo``: what a rejection
    rolls back; ``not_undone``: completed steps it cannot undo), ``undo`` (the steps a
    rejection rolls back, newest first), ``waited``, and the request's webhook delivery:
    ``webhook_status``, ``webhook_attempts``, ``webhook_error`` (every attempt is in
    :func:`deliveries`)."""
    with _store(db) as store:
        df = _frame(store, "approvals", workflow_id=workflow_id, status=status)
        deliveries_df = _frame(store, "webhook_deliveries", workflow_id=workflow_id)
    _times(df, "requested_at", "deadline", "decided_at")
    _category(df, "status", APPROVAL_STATUSES)
    _decode(df, "context", "approvers")
    df["undo"] = [[u["step"] for u in c.get("undo", [])] if isinstance(c, dict) else [] for c in df["context"]]
    df["waited"] = df["decided_at"] - df["requested_at"]
    requested = deliveries_df[deliveries_df["event"] == "approval.requested"]
    summary = requested.groupby("approval_id").agg(
        webhook_status=("status", "last"), webhook_attempts=("attempts", "sum"), webhook_error=("last_error", "last")
    )
    df = df.merge(summary, how="left", left_on="approval_id", right_index=True)
    df["webhook_attempts"] = df["webhook_attempts"].fillna(0).astype("int64")
    df["webhook_status"] = df["webhook_status"].astype(object)
    df["webhook_error"] = df["webhook_error"].astype(object)
    return df


def compensations(db: Any = None, workflow_id: str | None = None, *, status: str | None = None) -> pd.DataFrame:
    """One row per compensation intent: ``workflow_id, step_name, action, status, created_at,
    executed_at, error`` (and ``attempts``, ``inputs``, ``outputs``)."""
    with _store(db) as store:
        df = _frame(store, "compensation_log", workflow_id=workflow_id, status=status)
    _times(df, "created_at", "executed_at")
    _category(df, "status", COMPENSATION_STATUSES)
    _decode(df, "inputs", "outputs")
    return df.drop(columns=["state"])


def deliveries(db: Any = None, workflow_id: str | None = None) -> pd.DataFrame:
    """Every webhook delivery (``event``, ``url``, ``status``: PENDING, RETRYING, DELIVERED or
    FAILED, ``attempts``, the last attempt's ``last_status`` / ``last_error``) and, in
    ``history``, the outcome of every attempt: ``{attempt, started_at, finished_at, outcome,
    http_status, error}``."""
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
    _times(df, "created_at", "next_attempt_at", "last_attempt_at", "delivered_at")
    _decode(df, "payload")
    df["history"] = [history.get(d, []) for d in df["delivery_id"]]
    return df


def audit(db: Any = None, workflow_id: str | None = None) -> pd.DataFrame:
    """Every policy decision that mattered: who, what, allowed or denied, by which rule."""
    with _store(db) as store:
        df = _frame(store, "audit_log", workflow_id=workflow_id)
    _times(df, "at")
    _decode(df, "roles")
    return df
