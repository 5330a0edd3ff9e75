"""What an approver reads besides the message: fields, approvals so far, and what the gated steps will do.

Shared by the approval card (:mod:`airt_nb.widgets.approval_card`), the
static snapshot of a run and the inbox: each function takes an
:class:`~airt_nb.store.records.ApprovalRecord` (and its individual
decisions) and returns HTML, everything escaped.  A preview's diff is shown
with its added and removed lines coloured by the theme's roles.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..fields import describe_field
from .text import esc, short

if TYPE_CHECKING:
    from ..store.records import ApprovalRecord, DecisionRecord

__all__ = ["asked_again_html", "count_text", "diff_html", "fields_html", "preview_html", "preview_text"]

_SHOWN_KEYS = ("path", "src", "dst", "method", "url", "exists", "bytes", "bytes_now", "bytes_after", "src_bytes",
               "dst_exists", "headers", "json", "body", "undo", "note")  # fmt: skip


def count_text(approval: ApprovalRecord, decisions: Iterable[DecisionRecord] = ()) -> str:
    """``1 of 2 approvals (ann)``; empty for an approval one person decides."""
    if approval.min_approvals <= 1:
        return ""
    who = [d.decided_by for d in decisions if d.decision == "APPROVED" and d.approval_id == approval.approval_id]
    names = f" ({', '.join(who)})" if who else ""
    return f"{approval.approved_count} of {approval.min_approvals} approvals{names}"


def fields_html(approval: ApprovalRecord) -> str:
    """The typed fields and, once someone approved, the values the others confirm."""
    fields = approval.field_specs
    if not fields:
        return ""
    values = approval.values
    rows = []
    for name, spec in fields.items():
        value = f"<b>{esc(json.dumps(values.get(name)))}</b>" if values is not None else ""
        about = esc(describe_field(spec)) + (f" · {esc(spec['description'])}" if spec.get("description") else "")
        rows.append(f'<tr><td><code>{esc(name)}</code></td><td>{value}</td><td class="airt-muted">{about}</td></tr>')
    head = "Values approved so far (later approvals confirm them):" if values is not None else "Fields to fill in:"
    return f'<div class="airt-muted">{head}</div><table class="airt-fields-table">{"".join(rows)}</table>'


def asked_again_html(approval: ApprovalRecord) -> str:
    """Why a gated step is asked for again (its approval is in the message too)."""
    if not approval.gate_step:
        return ""
    return (
        f'<div class="airt-notice">Asked again: step <b>{esc(approval.step_name)}</b> did not run because what '
        f"it would do changed after step <b>{esc(approval.gate_step)}</b> was approved. The preview below is "
        "what it will do now.</div>"
    )


def diff_html(diff: str) -> str:
    """A unified diff in a ``<pre>``, added lines and removed lines coloured."""
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            css = ""  # the file names: plain text (muted grey is too faint on the code background)
        elif line.startswith("+"):
            css = "airt-ok"
        elif line.startswith("-"):
            css = "airt-error"
        elif line.startswith("@@"):
            css = "airt-hunk"
        else:
            css = ""
        lines.append(f'<span class="{css}">{esc(line)}</span>' if css else esc(line))
    return f'<pre class="airt-diff">{chr(10).join(lines)}</pre>'


def _value(value: Any) -> str:
    if isinstance(value, str):
        return esc(value)
    return f"<code>{esc(json.dumps(value, default=str, ensure_ascii=False))}</code>"


def _entry_html(entry: Mapping[str, Any]) -> str:
    head = f"<b>{esc(entry.get('step'))}</b> <code>{esc(entry.get('action'))}</code>"
    if entry.get("when"):
        head += f' <span class="airt-muted">only when {esc(entry["when"])}</span>'
    parts = [f"<div>{head}</div>"]
    shown = entry.get("preview") or {}
    cells = [(k, shown[k]) for k in _SHOWN_KEYS if k in shown and k != "note"]
    if cells:
        rows = "".join(f'<tr><td class="airt-muted">{esc(k)}</td><td>{_value(v)}</td></tr>' for k, v in cells)
        parts.append(f"<table>{rows}</table>")
    if shown.get("note"):
        parts.append(f'<div class="airt-notice">{esc(shown["note"])}</div>')
    if shown.get("diff"):
        parts.append(diff_html(str(shown["diff"])))
    if shown.get("removes"):
        parts.append(f'<div class="airt-muted">would remove:</div><pre>{esc(shown["removes"])}</pre>')
    if not shown:
        inputs = json.dumps(entry.get("inputs") or {}, indent=1, default=str, ensure_ascii=False)
        parts.append(f"<pre>{esc(inputs)}</pre>")
    if entry.get("unknown"):
        parts.append(
            '<div class="airt-muted">known only when it runs: '
            + ", ".join(f"<code>{esc(u)}</code>" for u in entry["unknown"])
            + "</div>"
        )
    return f'<div class="airt-preview-step">{"".join(parts)}</div>'


def preview_html(approval: ApprovalRecord) -> str:
    """What each step the approval gates will do (a diff for ``file.write``...)."""
    preview = approval.preview_data
    entries: Sequence[Mapping[str, Any]] = preview.get("steps") or ()
    if not entries:
        return ""
    more = int(preview.get("more") or 0)
    tail = f'<div class="airt-muted">and {more} more steps after them (not previewed)</div>' if more else ""
    title = "What it lets run, as it would run now:" if not approval.gate_step else "What it will do now:"
    return (
        f'<div class="airt-preview"><div class="airt-muted">{title}</div>'
        f"{''.join(_entry_html(e) for e in entries)}{tail}</div>"
    )


def preview_text(approval: ApprovalRecord, *, indent: str = "    ") -> list[str]:
    """The preview as lines of text (``airt show``)."""
    preview = approval.preview_data
    lines: list[str] = []
    for entry in preview.get("steps") or ():
        when = f" (only when {entry['when']})" if entry.get("when") else ""
        lines.append(f"{indent}{entry.get('step')} ({entry.get('action')}){when}")
        shown = entry.get("preview") or {}
        for key in _SHOWN_KEYS:
            if key in shown:
                value = shown[key] if isinstance(shown[key], str) else json.dumps(shown[key], default=str)
                lines.append(f"{indent}  {key}: {short(value, 200)}")
        if not shown:
            lines.append(f"{indent}  inputs: {short(json.dumps(entry.get('inputs'), default=str), 200)}")
        for text in (shown.get("diff"), shown.get("removes")):
            if text:
                lines += [f"{indent}  | {line}" for line in str(text).splitlines()]
        if entry.get("unknown"):
            lines.append(f"{indent}  known only when it runs: {', '.join(entry['unknown'])}")
    if preview.get("more"):
        lines.append(f"{indent}and {preview['more']} more steps after them (not previewed)")
    return lines
