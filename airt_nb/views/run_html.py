"""One run as HTML: the pieces of the live panel, and its static snapshot.

The live panel (:class:`airt_nb.widgets.RunPanel`) sets these pieces as the
values of its widgets, one widget per step row, so that a row a person has
opened (a step's inputs, outputs, traceback) stays open while other rows
update.  :func:`snapshot_html` puts the same pieces together as one static
block: the output a saved notebook, a restarted kernel or an HTML export
shows in place of the widget.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..timeutil import iso
from .approval_html import asked_again_html, count_text, fields_html, preview_html
from .text import TERMINAL, badge, esc, fmt_duration, fmt_time, seconds_between, short, stamp, where_running
from .theme import stylesheet

if TYPE_CHECKING:
    from ..store.records import ApprovalRecord, StepRecord
    from .run import RunState

__all__ = [
    "GRID",
    "counts_html",
    "decided_text",
    "header_html",
    "history_html",
    "notice_html",
    "pending_html",
    "progress_html",
    "snapshot_html",
    "step_row_html",
    "steps_head_html",
    "steps_more_html",
]

_KINDS = {"human_approval": "approval", "wait_event": "event", "workflow": "workflow"}

#: The columns of the steps "table": each row is its own block, so they share a grid template.
GRID = "display:grid;grid-template-columns:minmax(150px,1.4fr) 120px 64px 92px minmax(220px,3fr);column-gap:10px"
_ROW = f"{GRID};font-size:12px;padding:2px 0;border-bottom:1px solid var(--airt-rule)"


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=1, default=str, ensure_ascii=False)


def _verb(status: str) -> str:
    return {"APPROVED": "approved", "REJECTED": "rejected", "CANCELLED": "cancelled"}.get(status, status.lower())


def decided_text(approval: ApprovalRecord, now: float | None = None, *, live: bool = True) -> str:
    """``approved by ann (asserted) at 18:05:03 (3 min ago): looks good``: the name with how it was
    established (typed, or authenticated by JupyterHub, a Jupyter server or the database)."""
    reason = f": {approval.reason}" if approval.reason else ""
    at = stamp(approval.decided_at, now) if live else fmt_time(approval.decided_at)
    how = f" ({approval.auth})" if approval.auth and approval.auth != "system" else ""
    return f"{_verb(approval.status)} by {approval.decided_by}{how} at {at}{reason}"


def _when(state: RunState, text: str | None) -> str:
    """A time as a person reads it: with "3 min ago" beside it in a live view, the clock time alone in a saved one."""
    return stamp(text, state.now) if state.live else fmt_time(text)


# -- header ----------------------------------------------------------------------------------------------


def header_html(state: RunState) -> str:
    """Name, id, status, and one line of facts: when, who, where, how long."""
    record = state.record
    facts = [f"created {_when(state, record.created_at)}"]
    if record.forked_from:
        facts.append(f"fork of {record.forked_from}")
    if record.parent_id:
        facts.append(f"child of {record.parent_id} (step {record.parent_step})")
    if record.started_by:
        facts.append(f"started by {record.started_by}")
    where = where_running(record, state.owner_id)
    if where == "here":
        facts.append("running in this kernel" if state.live else "running in the kernel that showed it")
    elif where:
        facts.append(f"running in {where}")
    else:
        origin = getattr(record, "session", None) or getattr(record, "workdir", None)
        if origin:
            facts.append(f"from {origin}")
    if record.finished_at:
        facts.append(f"took {fmt_duration(seconds_between(record.created_at, record.finished_at))}")
    return (
        f"<b>{esc(record.name)}</b> <code>{esc(record.workflow_id)}</code> {badge(record.status)}"
        f'<div class="airt-muted airt-facts">{esc(" · ".join(facts))}</div>'
    )


def counts_html(state: RunState) -> str:
    """Steps by status, for a workflow too long to list: ``187 COMPLETED · 3 RUNNING · 10 PENDING``."""
    if not state.long:
        return ""
    order = ["FAILED", "RETRYING", "RUNNING", "WAITING", "COMPLETED", "COMPENSATED", "PENDING"]
    counts = state.counts()
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    return '<div style="font-size:12px;margin:2px 0">' + " ".join(f"{badge(k)} {counts[k]:,}" for k in keys) + "</div>"


def notice_html(state: RunState) -> str:
    record = state.record
    lines = []
    if record.waiting_for and record.status not in TERMINAL:
        lines.append(
            f'<div class="airt-notice">Waiting for {esc(record.waiting_for)} to be defined: run the cell '
            "that defines it and the run resumes by itself</div>"
        )
    for warning in record.warning_list:
        lines.append(f'<div class="airt-notice">Warning: {esc(warning)}</div>')
    if record.error:
        first, _, rest = record.error.partition("\n")
        if rest.strip():
            lines.append(
                f'<details><summary class="airt-error">{esc(first)}</summary><pre>{esc(rest.strip())}</pre></details>'
            )
        else:
            lines.append(f'<div class="airt-error">{esc(first)}</div>')
    return "".join(lines)


# -- steps -------------------------------------------------------------------------------------------------


def steps_head_html() -> str:
    cells = "".join(f"<div>{h}</div>" for h in ("step", "status", "attempt", "duration", ""))
    return (
        f'<div class="airt-steps-head airt-muted" style="{GRID};font-size:12px;font-weight:600;'
        f'border-bottom:1px solid var(--airt-border);padding:2px 0">{cells}</div>'
    )


def steps_more_html(state: RunState) -> str:
    if not state.hidden:
        return ""
    return (
        f'<div class="airt-muted" style="font-size:12px">{state.hidden:,} more steps not shown; all of them: '
        f"<code>airt_nb.steps(workflow_id={state.workflow_id!r})</code></div>"
    )


def _attempt_lines(state: RunState, step: StepRecord) -> list[str]:
    out = []
    for a in state.attempts_of(step.step_name):
        if a.get("attempt", 0) >= step.attempt and a.get("status") != "INTERRUPTED" and step.status != "RETRYING":
            continue
        when = f" at {fmt_time(a.get('finished_at') or a.get('started_at'))}" if a.get("started_at") else ""
        if a.get("status") == "INTERRUPTED":
            text = f"attempt {a.get('attempt')} interrupted{when} (its engine stopped); run again"
        else:
            text = f"attempt {a.get('attempt')} failed{when}: {a.get('error') or ''}"
        trace = a.get("traceback")
        if trace:
            out.append(f"<details><summary>{esc(text)}</summary><pre>{esc(trace)}</pre></details>")
        else:
            out.append(f"<div>{esc(text)}</div>")
    return out


def _details(state: RunState, step: StepRecord) -> str:
    """The last cell of a step's row: what happened, and on demand inputs, outputs, traceback, attempts."""
    inputs, outputs = _json(step.inputs), _json(step.outputs)
    trace = getattr(step, "traceback", None)
    earlier = _attempt_lines(state, step)
    parts: list[str] = []
    if step.status == "SKIPPED":
        why = state.skip_reason(step.step_name)
        return f'<span class="airt-muted">not taken: {esc(why)}</span>' if why else ""
    if step.status == "WAITING" and step.type == "action":
        return '<span class="airt-notice">did not run: what it would do changed since the approval; asked again</span>'
    if step.type == "human_approval":
        approval = state.approval_of(step.step_name)
        if step.status == "WAITING":
            count = count_text(approval, state.decisions) if approval is not None else ""
            return f'<span class="airt-notice">waiting for a decision{esc(f" ({count})" if count else "")}</span>'
        if approval is not None and approval.decided_at:
            css = "airt-error" if approval.status == "REJECTED" else "airt-muted"
            summary = f'<span class="{css}">{esc(decided_text(approval, state.now, live=state.live))}</span>'
        else:
            summary = ""
    elif step.type == "wait_event" and step.status == "WAITING":
        event = state.kinds.get(step.step_name, {}).get("event", "?")
        deadline = f" until {esc(_when(state, step.next_attempt_at))}" if step.next_attempt_at else ""
        return (
            f'<span class="airt-notice">waiting for event <b>{esc(event)}</b>{deadline}</span> '
            f'<span class="airt-muted">send it: <code>airt send {esc(state.workflow_id)} {esc(event)} --data '
            "'{...}'</code></span>"
        )
    elif step.type == "workflow" and (child := state.child_of(step.step_name)) is not None and not step.error:
        summary = (
            f'<span class="airt-muted">child <code>{esc(child.workflow_id)}</code></span> {badge(child.status)} '
            f'<span class="airt-muted">{child.done_steps} / {child.total_steps} steps</span>'
        )
    elif step.error:
        summary = f'<span class="airt-error">{esc(short(step.error.splitlines()[0], 110))}</span>'
        if trace or "\n" in step.error:
            parts.append(f"<pre>{esc(trace or step.error)}</pre>")
    elif step.status == "RETRYING":
        when = step.next_attempt_at
        summary = f'<span class="airt-notice">next attempt at {esc(_when(state, when))}</span>' if when else ""
    elif outputs is not None:
        summary = f'<code class="airt-muted">{esc(short(outputs, 70))}</code>'
    else:
        summary = ""
    if earlier:
        parts.append(f'<div class="airt-muted">earlier attempts</div>{"".join(earlier)}')
    if step.status == "FAILED" and state.record.status in TERMINAL:
        parts.append(
            f'<div class="airt-muted">run again from here, as a new run that keeps what completed before it '
            f"(steps the rollback undid run again too): "
            f"<code>%workflow fork {esc(state.workflow_id)} --from {esc(step.step_name)}</code></div>"
        )
    if inputs not in (None, {}):
        parts.append(f'<div class="airt-muted">inputs</div><pre>{esc(_pretty(inputs))}</pre>')
    if outputs is not None and step.type != "human_approval":
        parts.append(f'<div class="airt-muted">outputs</div><pre>{esc(_pretty(outputs))}</pre>')
    undo = state.compensation_of(step.step_name)
    undo_line = ""
    if undo is not None and undo.status == "FAILED":
        undo_line = f'<div class="airt-error">undo failed: {esc(short(undo.error or "", 140))}</div>'
    elif undo is not None and undo.status == "DONE" and undo.executed_at:
        undo_line = f'<div class="airt-undo">undone at {esc(_when(state, undo.executed_at))}</div>'
    if not parts:
        return summary + undo_line
    if step.status == "RETRYING" and earlier and not summary:
        summary = '<span class="airt-notice">retrying</span>'
    label = summary or '<span class="airt-muted">details</span>'
    return f"<details><summary>{label}</summary>{''.join(parts)}</details>{undo_line}"


def step_row_html(state: RunState, step: StepRecord) -> str:
    """One step: name and action, status, attempt, duration, and what happened (details on demand)."""
    limit = state.limits.get(step.step_name, 1)
    attempt = "" if step.attempt == 0 else f"{step.attempt}" + (f" of {limit}" if limit > 1 else "")
    if step.status in ("RUNNING", "WAITING") and not state.live:
        took = f"since {fmt_time(step.started_at)}"
    elif step.status in ("RUNNING", "WAITING"):
        took = f"{fmt_duration(seconds_between(step.started_at, None, state.now))}…"
    else:
        took = fmt_duration(seconds_between(step.started_at, step.finished_at)) if step.finished_at else ""
    what = _KINDS.get(step.type) or step.action or ""
    return (
        f'<div class="airt-step" data-step="{esc(step.step_name)}" style="{_ROW}">'
        f'<div><b>{esc(step.step_name)}</b> <span class="airt-muted">{esc(what)}</span></div>'
        f"<div>{badge(state.shown_status(step))}</div><div>{esc(attempt)}</div>"
        f'<div class="airt-nowrap">{esc(took)}</div><div style="min-width:0">{_details(state, step)}</div></div>'
    )


# -- history and decisions -----------------------------------------------------------------------------------

_EVENTS = {
    "cancel_requested": ("airt-muted", "■", "cancel requested by {by}"),
    "cancelled": ("airt-muted", "■", "cancelled by {by}"),
    "rollback_requested": ("airt-undo", "↺", "rollback requested by {by}"),
    "rolled_back": ("airt-undo", "↺", "rolled back"),
    "engine_lost": ("airt-notice", "⚠", "engine lost{detail}"),
    "resumed": ("airt-ok", "↻", "resumed by {who}"),
    "asked_again": ("airt-notice", "↻", "asked again: {raw}"),
    "reminded": ("airt-muted", "✉", "reminder sent: {raw}"),
    "escalated": ("airt-notice", "⇧", "escalated: {raw}"),
    "forked": ("airt-muted", "↱", "{raw} (by {by})"),
    "event_sent": ("airt-ok", "✉", "event {raw} sent by {by}"),
    "event_timed_out": ("airt-notice", "⚠", "no event {raw} before the deadline"),
    "child_failed": ("airt-error", "✘", "child workflow {raw} did not complete"),
}


def _event_line(event: dict[str, Any], state: RunState) -> tuple[str, str] | None:
    kind = event.get("event")
    found = _EVENTS.get(str(kind))
    if found is None:
        return None
    css, mark, text = found
    by = event.get("by") or "someone"
    detail = event.get("detail") or ""
    words = text.format(by=by, detail=f": {detail}" if detail else "", who=detail or by, raw=detail)
    if kind == "rolled_back" and event.get("by"):
        words += f" (asked by {event['by']})"
    at = event.get("at") or ""
    return at, (
        f'<div><span class="{css}">{mark}</span> {esc(words)} '
        f'<span class="airt-muted">at {esc(_when(state, at))}</span></div>'
    )


def _decision_lines(state: RunState) -> tuple[list[tuple[str, str]], set[str]]:
    """One line per person's decision (``2 of 2 approvals``); the approvals they cover."""
    lines: list[tuple[str, str]] = []
    covered: set[str] = set()
    needed = {a.approval_id: a.min_approvals for a in state.approvals}
    counts: dict[str, int] = {}
    for d in state.decisions:
        covered.add(d.approval_id)
        approved = d.decision == "APPROVED"
        css, mark = ("airt-ok", "✔") if approved else ("airt-error", "✘")
        if approved and d.decided_by != "system":
            counts[d.approval_id] = counts.get(d.approval_id, 0) + 1
        of = needed.get(d.approval_id, 1)
        count = f" ({counts.get(d.approval_id, 0)} of {of})" if approved and of > 1 and d.decided_by != "system" else ""
        at = _when(state, d.decided_at)
        why = f": {d.reason}" if d.reason else ""
        values = d.values
        shown = f" with {', '.join(f'{k}={json.dumps(v)}' for k, v in values.items())}" if values else ""
        words = f"{d.decision.lower()} by {d.decided_by}{count}{shown} at {at}{why}"
        lines.append(
            (d.decided_at, f'<div><span class="{css}">{mark}</span> <b>{esc(d.step_name)}</b> {esc(words)}</div>')
        )
    return lines, covered


def history_html(state: RunState) -> str:
    """Decisions and what happened to the run (who cancelled or rolled back, an engine lost), oldest first."""
    lines, covered = _decision_lines(state)
    for a in state.approvals:
        if a.status == "PENDING" or not a.decided_at or a.approval_id in covered:
            continue
        css, mark = {"APPROVED": ("airt-ok", "✔"), "REJECTED": ("airt-error", "✘")}.get(a.status, ("airt-muted", "–"))
        lines.append(
            (
                a.decided_at,
                f'<div><span class="{css}">{mark}</span> <b>{esc(a.step_name)}</b> {esc(decided_text(a, state.now, live=state.live))}</div>',
            )
        )
    for event in state.events:
        line = _event_line(event, state)
        if line is not None:
            lines.append(line)
    return "".join(html for _, html in sorted(lines, key=lambda item: item[0]))


def pending_html(state: RunState) -> str:
    """The pending approval as text, with the commands that decide it (the snapshot has no buttons)."""
    pending = state.pending
    if pending is None:
        return ""
    who = f"approvers: {', '.join(pending.approver_list)}" if pending.approver_list else "anyone may decide"
    wid = state.workflow_id
    message = esc(pending.message or "(no message)").replace("\n", "<br>")
    count = count_text(pending, state.decisions)
    count_line = f'<div class="airt-count">{esc(count)}</div>' if count else ""
    return (
        f'<div class="airt-card"><div class="airt-card-title">Approval needed: step {esc(pending.step_name)} '
        f'<span class="airt-muted">requested {esc(_when(state, pending.requested_at))}</span></div>'
        f'<div style="margin:2px 0 4px 0;font-size:13px">{message}</div>'
        f"{asked_again_html(pending)}{preview_html(pending)}{fields_html(pending)}{count_line}"
        f'<div class="airt-muted" style="font-size:12px">{esc(who)} · decide with '
        f"<code>%workflow approve {esc(wid)}</code> or <code>%workflow reject {esc(wid)}</code></div></div>"
    )


# -- the snapshot ----------------------------------------------------------------------------------------------


def progress_html(state: RunState) -> str:
    value, maximum, role, text = state.progress()
    width = 100 * value / maximum if maximum else 0
    return (
        f'<span class="airt-bar airt-bar-{role}"><span class="airt-bar-fill" style="display:block;'
        f'width:{width:.0f}%"></span></span> <span class="airt-muted airt-progress-text">{esc(text)}</span>'
    )


def snapshot_html(state: RunState, *, stopped_at: str | None = None) -> str:
    """The run as one static block, for when the live panel is gone.

    It says that it is not live, since when, and the command that shows the
    run live again; ``stopped_at`` adds when the kernel that showed it stopped.
    """
    state = replace(state, live=False)
    wid = state.workflow_id
    taken = iso(state.now)
    stopped = f" The kernel that showed it stopped at {esc(fmt_time(stopped_at))}." if stopped_at else ""
    stale = (
        f'<div class="airt-stale airt-notice">Saved view of {esc(fmt_time(taken))}, not live.{stopped} '
        f"<code>%workflow show {esc(wid)}</code> shows this run live.</div>"
    )
    rows = "".join(step_row_html(state, s) for s in state.steps)
    return (
        f'<div class="airt-root airt-panel airt-snapshot" data-workflow="{esc(wid)}" data-taken="{esc(taken)}">'
        f"{stylesheet()}{stale}"
        f'<div style="display:flex;justify-content:space-between;gap:10px;flex-wrap:wrap">'
        f'<div class="airt-header">{header_html(state)}</div><div>{progress_html(state)}</div></div>'
        f"{counts_html(state)}{notice_html(state)}"
        f'<div class="airt-steps">{steps_head_html()}{rows}{steps_more_html(state)}</div>'
        f"{pending_html(state)}"
        f'<div class="airt-history">{history_html(state)}</div></div>'
    )
