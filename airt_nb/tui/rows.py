"""What the dashboard's tables and texts show: one row per workflow, approval or step, in colour.

Imports no engine: plain functions of the store's records.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from ..fields import describe_field, parse_values
from ..store.records import ApprovalRecord, WorkflowRecord
from ..views import ROLE, fmt_time, short, workflow_note
from ..views.text import one_line, term_safe

__all__ = [
    "approval_details",
    "approval_row",
    "approvals_text",
    "cursor_key",
    "plain",
    "refill",
    "split_values",
    "status_text",
    "workflow_row",
]


# The notebook's status roles (views.theme.ROLE) in the terminal's own colours, readable on dark and light.
_TERMINAL = {"ok": "green", "error": "red", "warn": "yellow", "run": "dodger_blue2", "undo": "magenta"}


def plain(value: object, style: str = "") -> Text:
    """Text from a record as the terminal must show it: no markup read into it, control and invisible
    characters escaped (:func:`~airt_nb.views.text.term_safe`), so that a spec cannot hide what it asks."""
    return Text(term_safe(value, newlines=True), style=style)


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
        table.add_row(*(Text(one_line(c)) if isinstance(c, str) else c for c in row), key=key)
    keys = [key for key, _ in rows]
    if keep in keys:
        table.move_cursor(row=keys.index(keep), animate=False)


def workflow_row(r: WorkflowRecord, pending: ApprovalRecord | None) -> tuple[Any, ...]:
    note = workflow_note(r, pending)
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


def split_values(fields: dict[str, Any], answer: str) -> tuple[dict[str, Any] | None, str]:
    """``(values, reason)`` from what was typed at the prompt: leading ``NAME=VALUE`` words naming
    fields are values (typed by their field), the rest is the reason.

    >>> split_values({"replicas": {"type": "integer"}}, "replicas=3 looks good")
    ({'replicas': 3}, 'looks good')
    """
    words = answer.split()
    given: list[str] = []
    while words and "=" in words[0] and words[0].split("=", 1)[0] in fields:
        given.append(words.pop(0))
    return parse_values(fields, given), " ".join(words)


def approval_details(a: ApprovalRecord) -> list[str]:
    """What the prompt and the detail view say about an approval besides its message."""
    lines = []
    if a.gate_step:
        lines.append(f"asked again: step {a.step_name} did not run (what it would do changed since {a.gate_step})")
    if a.min_approvals > 1:
        lines.append(f"{a.approved_count} of {a.min_approvals} approvals")
    fields = a.field_specs
    if fields:
        values = a.values
        listed = [
            f"{n}={json.dumps(values.get(n))}" if values is not None else f"{n} ({describe_field(s)})"
            for n, s in fields.items()
        ]
        lines.append(("approved values: " if values is not None else "fields: ") + "; ".join(listed))
    for entry in a.preview_data.get("steps") or ():
        preview = entry.get("preview") or {}
        where = preview.get("path") or preview.get("dst") or preview.get("url") or ""
        lines.append(f"then {entry.get('step')} ({entry.get('action')}) {where}".rstrip())
    return lines


def approvals_text(approvals: list[ApprovalRecord]) -> Text:
    if not approvals:
        return Text("none", style="dim")
    text = Text()
    for a in approvals:
        if text:
            text.append("\n")
        text.append_text(status_text(a.status))
        text.append(term_safe(f" {a.step_name}  {a.message or ''}"))
        if a.status == "PENDING":
            for line in approval_details(a):
                text.append(term_safe(f"\n  {line}", newlines=True), style="dim")
            text.append(
                term_safe(f"\n  approvers: {', '.join(a.approver_list) or 'anyone'}", newlines=True), style="dim"
            )
            text.append("   a: approve   x: reject", style="bold")
        else:
            reason = f": {term_safe(a.reason)}" if a.reason else ""
            how = f" ({term_safe(a.auth)})" if a.auth and a.auth != "system" else ""
            text.append(f"\n  by {term_safe(a.decided_by)}{how} at {fmt_time(a.decided_at)}{reason}", style="dim")
    return text
