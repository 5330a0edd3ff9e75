"""What the dashboard's tables and texts show: one row per workflow, approval or step, in colour.

Imports no engine: plain functions of the store's records.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from ..store.records import ApprovalRecord, WorkflowRecord
from ..views import ROLE, fmt_time, short

__all__ = ["approval_row", "approvals_text", "cursor_key", "refill", "status_text", "workflow_row"]


# The notebook's status roles (views.theme.ROLE) in the terminal's own colours, readable on dark and light.
_TERMINAL = {"ok": "green", "error": "red", "warn": "yellow", "run": "dodger_blue2", "undo": "magenta"}


def status_text(status: str) -> Text:
    return Text(status, style=f"bold {_TERMINAL.get(ROLE.get(status, ''), 'grey50')}")


def cursor_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    return str(key) if key is not None else None


def refill(table: DataTable[Any], rows: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Replace the rows, keeping the cursor on the same key (a refresh must not move it)."""
    keep = cursor_key(table)
    table.clear()
    for key, row in rows:
        table.add_row(*row, key=key)
    keys = [key for key, _ in rows]
    if keep in keys:
        table.move_cursor(row=keys.index(keep), animate=False)


def workflow_row(r: WorkflowRecord, pending: ApprovalRecord | None) -> tuple[Any, ...]:
    if pending is not None:
        note = f"approval {pending.step_name!r}: {pending.message or ''}"
    elif r.waiting_for:
        note = f"waiting for {r.waiting_for}"
    else:
        note = r.error or ""
    return (
        r.workflow_id,
        r.name,
        status_text(r.status),
        f"{r.done_steps}/{r.total_steps}",
        fmt_time(r.created_at),
        r.started_by or "",
        short(note, 60),
    )


def approval_row(a: ApprovalRecord, workflow_name: str) -> tuple[Any, ...]:
    return (
        a.approval_id,
        f"{workflow_name} {a.workflow_id[:8]}",
        a.step_name,
        short(a.message or "", 50),
        ", ".join(a.approver_list) or "anyone",
        fmt_time(a.requested_at),
    )


def approvals_text(approvals: list[ApprovalRecord]) -> Text:
    if not approvals:
        return Text("none", style="dim")
    text = Text()
    for a in approvals:
        if text:
            text.append("\n")
        text.append_text(status_text(a.status))
        text.append(f" {a.step_name}  {a.message or ''}")
        if a.status == "PENDING":
            text.append(f"\n  approvers: {', '.join(a.approver_list) or 'anyone'}", style="dim")
            text.append("   a: approve   x: reject", style="bold")
        else:
            reason = f": {a.reason}" if a.reason else ""
            text.append(f"\n  by {a.decided_by} at {fmt_time(a.decided_at)}{reason}", style="dim")
    return text
