"""Static HTML / text views for the notebook: spec errors, plans, lists, the banner.

Each view is a small object with ``_repr_html_`` and a plain-text ``__repr__``,
so it reads well in JupyterLab, in a terminal IPython and in a saved
notebook.  HTML uses inline styles (no stylesheet, no script): outputs stay
readable when a notebook is opened elsewhere.  The formatting helpers here
(badges, durations, countdowns) are shared with the live panels.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .timeutil import to_epoch

if TYPE_CHECKING:
    from .engine import RecoverySummary
    from .plan import Plan
    from .store.records import ApprovalRecord, StepRecord, WorkflowRecord

__all__ = ["Banner", "PlanView", "SpecErrorView", "WorkflowList", "summary_text"]

COLORS = {
    "PENDING": "#8a8f98",
    "RUNNING": "#1f6feb",
    "RETRYING": "#e36209",
    "WAITING": "#bf8700",
    "PAUSED": "#bf8700",
    "COMPLETED": "#1a7f37",
    "APPROVED": "#1a7f37",
    "DONE": "#1a7f37",
    "FAILED": "#cf222e",
    "REJECTED": "#cf222e",
    "COMPENSATION_FAILED": "#cf222e",
    "ROLLING_BACK": "#8250df",
    "ROLLED_BACK": "#8250df",
    "COMPENSATED": "#8250df",
    "CANCELLED": "#6e7781",
    "SKIPPED": "#afb8c1",
}
TERMINAL = ("COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED")
_MONO = "font-family: var(--jp-code-font-family, monospace)"
_CELL = "padding:2px 14px 2px 0;text-align:left;vertical-align:top"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def badge(status: str) -> str:
    """A coloured status label (inline style, works outside widgets too)."""
    color = COLORS.get(status, "#6e7781")
    return (
        f'<span class="airt-badge airt-status-{esc(status)}" style="background:{color};color:#fff;'
        f'border-radius:9px;padding:1px 8px;font-size:11px;font-weight:600;white-space:nowrap">{esc(status)}</span>'
    )


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    stop = to_epoch(end) if end else datetime.now(UTC).timestamp()
    return max(0.0, stop - to_epoch(start))


def fmt_duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def fmt_time(text: str | None) -> str:
    """A stored UTC time as local ``HH:MM:SS`` (with the date when it is not today)."""
    if not text:
        return ""
    moment = datetime.fromisoformat(text).astimezone()
    if moment.date() == datetime.now().astimezone().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def countdown(deadline: str | None) -> str:
    """``in 1 h 59 min`` / ``overdue`` / ``no deadline``."""
    if not deadline:
        return "no deadline"
    left = to_epoch(deadline) - datetime.now(UTC).timestamp()
    if left <= 0:
        return "overdue (deciding now)"
    if left < 60:
        return f"in {int(left)} s"
    if left < 3600:
        return f"in {int(left // 60)} min {int(left % 60):02d} s"
    if left < 86400:
        return f"in {int(left // 3600)} h {int(left % 3600 // 60):02d} min"
    return f"in {int(left // 86400)} d {int(left % 86400 // 3600)} h"


def short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def where_running(record: WorkflowRecord, own_owner: str | None) -> str:
    """``here``, ``pid 4711 on host`` or ``""`` (nobody holds the lease)."""
    owner = record.lease_owner
    if not owner:
        return ""
    if owner == own_owner:
        return "here"
    parts = owner.split("|")
    return f"pid {parts[1]} on {parts[0]}" if len(parts) > 1 else owner


# -- one run as text ---------------------------------------------------------------------------------


def summary_text(record: WorkflowRecord, steps: Sequence[StepRecord], pending: ApprovalRecord | None = None) -> str:
    """A run in a few lines of text: the ``text/plain`` of its panel."""
    lines = [
        f"{record.name} {record.workflow_id}  {record.status}  {record.done_steps}/{record.total_steps} steps done"
    ]
    width = max((len(s.step_name) for s in steps), default=4)
    for s in steps:
        extra = ""
        if s.error:
            extra = "  " + short(s.error.splitlines()[0], 90)
        elif s.status == "WAITING" and pending is not None and pending.step_name == s.step_name:
            extra = f"  waiting for approval: {short(pending.message or '', 80)}"
        took = fmt_duration(seconds_between(s.started_at, s.finished_at)) if s.finished_at else ""
        attempt = f"attempt {s.attempt}" if s.attempt > 1 else ""
        lines.append(f"  {s.step_name:<{width}}  {s.status:<12} {attempt:<10} {took:>9}{extra}".rstrip())
    if record.waiting_for:
        lines.append(f"  waiting for {record.waiting_for} to be defined: run the cell that defines it")
    if record.error:
        lines.append(f"  {record.error}")
    return "\n".join(lines)


# -- spec errors ---------------------------------------------------------------------------------------


class SpecErrorView:
    """A :class:`~airt_nb.SpecError` next to the YAML, the faulty lines highlighted."""

    context_lines = 3

    def __init__(self, error: SpecError, source: str):
        self.error = error
        self.lines = source.splitlines()
        self.by_line: dict[int, list[str]] = {}
        for line, field, message in error.problems:
            if line is not None:
                self.by_line.setdefault(line, []).append(f"{field}: {message}" if field else message)

    def _shown(self) -> list[int]:
        """Line numbers to show: everything when short, else windows around the problems."""
        if len(self.lines) <= 30 or not self.by_line:
            return list(range(1, len(self.lines) + 1))
        keep: set[int] = set()
        for line in self.by_line:
            keep.update(range(max(1, line - self.context_lines), min(len(self.lines), line + self.context_lines) + 1))
        return sorted(keep)

    def _title(self) -> str:
        name = f" in workflow {self.error.workflow!r}" if self.error.workflow else ""
        count = len(self.error.problems)
        return f"Spec error{name}: {count} problem{'s' if count != 1 else ''}, nothing was run"

    def __repr__(self) -> str:
        out = [self._title()]
        previous = 0
        for number in self._shown():
            if number != previous + 1:
                out.append("   ...")
            mark = ">" if number in self.by_line else " "
            out.append(f"{mark}{number:>3} | {self.lines[number - 1]}")
            for note in self.by_line.get(number, []):
                out.append(f"      ^ {note}")
            previous = number
        out += [f"  {field or 'spec'}: {message}" for line, field, message in self.error.problems if line is None]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        rows = []
        previous = 0
        for number in self._shown():
            if number != previous + 1:
                rows.append('<tr><td></td><td style="color:#8a8f98">⋮</td></tr>')
            bad = number in self.by_line
            style = "background:rgba(207,34,46,.15);" if bad else ""
            rows.append(
                f'<tr style="{style}"><td style="color:#8a8f98;text-align:right;padding-right:8px;user-select:none">'
                f'{number}</td><td style="white-space:pre">{esc(self.lines[number - 1]) or " "}</td></tr>'
            )
            for note in self.by_line.get(number, []):
                rows.append(
                    '<tr><td></td><td style="color:#cf222e;white-space:pre-wrap;padding-bottom:2px">'
                    f"↑ {esc(note)}</td></tr>"
                )
            previous = number
        general = "".join(
            f"<li><code>{esc(field or 'spec')}</code>: {esc(message)}</li>"
            for line, field, message in self.error.problems
            if line is None
        )
        return (
            '<div class="airt-spec-error" style="border-left:4px solid #cf222e;padding:4px 10px">'
            f'<div style="font-weight:600;color:#cf222e">{esc(self._title())}</div>'
            f'<table style="{_MONO};font-size:12px;border-collapse:collapse;margin-top:4px">{"".join(rows)}</table>'
            f"{f'<ul>{general}</ul>' if general else ''}</div>"
        )


# -- dry run ---------------------------------------------------------------------------------------------


class PlanView:
    """What ``%%workflow --dry-run`` shows: the steps in stages, what runs in parallel, what approvals gate."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.stages = plan.levels()
        self.gates = {s.name: self._downstream(s.name) for s in plan.steps if s.is_approval}

    def _downstream(self, name: str) -> list[str]:
        seen: list[str] = []
        todo = list(self.plan.by_name[name].dependents)
        while todo:
            n = todo.pop(0)
            if n not in seen:
                seen.append(n)
                todo.extend(self.plan.by_name[n].dependents)
        return [s.name for s in self.plan.steps if s.name in seen]

    def _what(self, name: str) -> str:
        step = self.plan.by_name[name]
        if step.is_approval:
            who = f" by {', '.join(step.approvers)}" if step.approvers else ""
            gated = ", ".join(self.gates[name]) or "nothing (last step)"
            return f"approval{who}, gates {gated}"
        retry = f", up to {step.retry.max_attempts} attempts" if step.retry else ""
        return f"{step.action}{retry}"

    def _headline(self) -> str:
        spec = self.plan.spec
        return (
            f"Dry run of {spec.name}: {len(self.plan.steps)} steps in {len(self.stages)} stages "
            f"(max_parallel {spec.max_parallel}); nothing was run or recorded"
        )

    def __repr__(self) -> str:
        out = [self._headline()]
        for i, stage in enumerate(self.stages, 1):
            together = " (in parallel)" if len(stage) > 1 else ""
            out.append(f"  stage {i}{together}:")
            for name in stage:
                deps = self.plan.by_name[name].deps
                after = f"  [after {', '.join(deps)}]" if deps else ""
                out.append(f"    {name}: {self._what(name)}{after}")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        rows = []
        for i, stage in enumerate(self.stages, 1):
            for j, name in enumerate(stage):
                step = self.plan.by_name[name]
                cell = (
                    f'<td rowspan="{len(stage)}" style="{_CELL}">{i}'
                    f"{'<br><small>in parallel</small>' if len(stage) > 1 else ''}</td>"
                    if j == 0
                    else ""
                )
                rows.append(
                    f'<tr>{cell}<td style="{_CELL}"><b>{esc(name)}</b></td><td style="{_CELL}">'
                    f'{esc(self._what(name))}</td><td style="{_CELL}">{esc(", ".join(step.deps)) or "—"}</td></tr>'
                )
        head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("stage", "step", "what", "after"))
        return (
            f'<div class="airt-plan"><div style="font-weight:600">{esc(self._headline())}</div>'
            f'<table style="border-collapse:collapse;font-size:12px"><tr>{head}</tr>{"".join(rows)}</table></div>'
        )


# -- lists ---------------------------------------------------------------------------------------------


class WorkflowList:
    """``%workflow list``: the newest workflows of the database (all kernels)."""

    def __init__(self, records: Iterable[WorkflowRecord], total: int, own_owner: str | None = None):
        self.records = list(records)
        self.total = total
        self.own_owner = own_owner

    def _rows(self) -> list[tuple[str, ...]]:
        return [
            (
                r.workflow_id,
                r.name,
                r.status,
                f"{r.done_steps}/{r.total_steps}",
                fmt_time(r.created_at),
                r.started_by or "",
                where_running(r, self.own_owner) or (f"needs {r.waiting_for}" if r.waiting_for else ""),
            )
            for r in self.records
        ]

    _HEAD = ("workflow_id", "name", "status", "steps", "created", "started_by", "running")

    def _footer(self) -> str:
        if not self.records:
            return "no workflows yet: start one with %%workflow"
        more = f" (newest first, {self.total - len(self.records)} more: %workflow list --limit N)"
        return f"{len(self.records)} of {self.total} workflows" + (more if self.total > len(self.records) else "")

    def __repr__(self) -> str:
        rows = [self._HEAD, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEAD))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join([*lines, self._footer()]) if self.records else self._footer()

    def _repr_html_(self) -> str:
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='{_CELL}'>{badge(c) if i == 2 else f'<code>{esc(c)}</code>' if i == 0 else esc(c)}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
            for row in self._rows()
        )
        head = "".join(f'<th style="{_CELL}">{h}</th>' for h in self._HEAD)
        table = f'<table style="font-size:12px"><tr>{head}</tr>{body}</table>' if self.records else ""
        return f'<div class="airt-list">{table}<div style="color:#8a8f98">{esc(self._footer())}</div></div>'


# -- the extension's banner -------------------------------------------------------------------------------


class Banner:
    """What ``%load_ext airt_nb`` reports: the database and what recovery found."""

    shown = 3

    def __init__(
        self,
        db: str,
        user: str,
        summary: RecoverySummary | None,
        names: dict[str, str],
        version: str,
        *,
        paused: Sequence[Any] = (),
    ):
        #: the paused runs (``Run``) whose approval cards go under the banner
        self.paused = list(paused)
        self.db = os.path.abspath(db)
        self.user = user
        self.summary = summary
        self.names = names
        self.version = version

    def _label(self, workflow_id: str) -> str:
        return f"{self.names.get(workflow_id, '?')} ({workflow_id})"

    def _some(self, ids: Sequence[str]) -> str:
        text = ", ".join(self._label(i) for i in ids[: self.shown])
        return text + (f" and {len(ids) - self.shown} more" if len(ids) > self.shown else "")

    def lines(self) -> list[tuple[str, str]]:
        """``(label, text)`` pairs; only what is not empty."""
        s = self.summary
        out: list[tuple[str, str]] = []
        if s is None:
            return [("recovery", "off (AIRT_RECOVER=0)")]
        if s.resumed:
            out.append(("resumed", f"{len(s.resumed)}: {self._some(s.resumed)}"))
        if s.restored:
            more = " (cards below)" if len(s.restored) <= self.shown else "; all of them: %workflow approvals"
            out.append(("waiting for approval", f"{len(s.restored)}: {self._some(s.restored)}{more}"))
        if s.waiting_for_action:
            items = list(s.waiting_for_action.items())
            text = ", ".join(f"{self._label(w)} needs action {a!r}" for w, a in items[: self.shown])
            if len(items) > self.shown:
                text += f" and {len(items) - self.shown} more"
            out.append(("waiting for an action", f"{text}; run the cell that defines it and it resumes by itself"))
        if s.skipped:
            out.append(("run elsewhere", f"{len(s.skipped)} by other live kernels or processes"))
        return out or [("recovery", "nothing to resume")]

    def __repr__(self) -> str:
        head = f"airt_nb {self.version} · {self.db} · acting as {self.user}"
        return "\n".join([head, *(f"  {label}: {text}" for label, text in self.lines())])

    def _repr_html_(self) -> str:
        items = "".join(
            f'<div><span style="color:#8a8f98">{esc(label)}:</span> {esc(text)}</div>' for label, text in self.lines()
        )
        return (
            '<div class="airt-banner" style="border-left:4px solid #1f6feb;padding:2px 10px;font-size:12px">'
            f"<div><b>airt_nb {esc(self.version)}</b> · <code>{esc(self.db)}</code> · acting as "
            f"<b>{esc(self.user)}</b></div>{items}</div>"
        )
