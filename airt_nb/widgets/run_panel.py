"""The live panel of one run: also what a :class:`~airt_nb.Run` shows as in a notebook.

Name, id, status badge, a progress bar (done / total steps), one row per
step (status, attempt, duration, error with details on demand), the
approval card while paused, past decisions (who, when, why), and
``Rollback`` / ``Cancel`` buttons where they apply, each asking for
confirmation.  It renders from the database through the throttled path of
:mod:`.base`, so a run executed by another kernel, or before a restart,
shows and updates the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import StoreError
from ..views import TERMINAL, badge, esc, fmt_duration, fmt_time, seconds_between, short, summary_text, where_running
from .approval_card import ApprovalCard, decided_text
from .base import LivePanel, button, html, show, style_widget

if TYPE_CHECKING:
    from ..run import Run
    from ..store.records import ApprovalRecord, CompensationRecord, StepRecord, WorkflowRecord

__all__ = ["RunPanel", "run_mimebundle"]

_BAR_STYLE = {"COMPLETED": "success", "FAILED": "danger", "PAUSED": "warning", "ROLLING_BACK": "", "ROLLED_BACK": ""}
_CANCELLABLE = ("RUNNING", "PAUSED", "PENDING")
_FULL_TABLE_STEPS = 60
_ROLLBACKABLE = ("RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED")


def run_mimebundle(run: Run) -> dict[str, Any]:
    """``Run._repr_mimebundle_``: a new live panel for the run."""
    return RunPanel(run)._repr_mimebundle_()


def _detail(step: StepRecord, attempts: list[tuple[Any, ...]], max_attempts: int | None) -> str:
    errors = [f"attempt {a[2]}: {a[6]}" for a in attempts if a[1] == step.step_name and a[6] and a[2] < step.attempt]
    if step.error:
        first = step.error.splitlines()[0]
        full = "\n".join([*errors, f"attempt {step.attempt}: {step.error}" if errors else step.error])
        return (
            f'<details><summary class="airt-error">{esc(short(first, 110))}</summary><pre>{esc(full)}</pre></details>'
        )
    if step.status == "RETRYING" and step.next_attempt_at:
        return f'<span class="airt-notice">retry at {esc(fmt_time(step.next_attempt_at))}</span>'
    if step.type == "human_approval" and step.status == "WAITING":
        return '<span class="airt-notice">waiting for a decision</span>'
    parts = []
    if errors:
        parts.append(
            f"<details><summary>{len(errors)} failed attempt(s)</summary><pre>{esc(chr(10).join(errors))}</pre></details>"
        )
    if step.outputs and step.type != "human_approval":
        outputs = json.loads(step.outputs)
        pretty = json.dumps(outputs, indent=1, default=str, ensure_ascii=False)
        parts.append(
            f'<details><summary class="airt-muted"><code>{esc(short(outputs, 70))}</code></summary>'
            f"<pre>{esc(pretty)}</pre></details>"
        )
    return "".join(parts)


class RunPanel(LivePanel, widgets.VBox):
    """A live view of one workflow run, with its approval card and actions.

    >>> RunPanel(eng.get(workflow_id))   # doctest: +SKIP
    """

    def __init__(self, run: Run):
        self.run = run
        self.workflow_id = run.id
        self.record: WorkflowRecord | None = None
        self._max_attempts: dict[str, int] = {}
        self.header_html = html("", "airt-header", flex="1 1 auto")
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, layout=widgets.Layout(width="180px"), _dom_classes=("airt-progress",)
        )
        self.progress_html = html("", "airt-progress-text", width="90px")
        self.notice_html = html("", "airt-run-notice")
        self.steps_html = html("", "airt-steps")
        self.card = ApprovalCard(run.engine, on_decided=lambda _: self.mark_dirty(), lock=self.lock)
        self.decisions_html = html("", "airt-decisions")
        self.rollback_button = button("Rollback", "airt-rollback", tooltip="Undo every completed step")
        self.cancel_button = button("Cancel", "airt-cancel", tooltip="Stop, undo nothing")
        self.rollback_button.on_click(lambda _: self.safely(self._ask, "rollback"))
        self.cancel_button.on_click(lambda _: self.safely(self._ask, "cancel"))
        self.confirm_html = html("", "airt-confirm-text")
        self.confirm_yes = button("Yes", "airt-confirm-yes", style="danger")
        self.confirm_no = button("No", "airt-confirm-no")
        self.confirm_yes.on_click(lambda _: self.safely(self._confirmed))
        self.confirm_no.on_click(lambda _: self.safely(self._ask, None))
        self.confirm_box = widgets.HBox(
            [self.confirm_html, self.confirm_yes, self.confirm_no], layout=widgets.Layout(display="none")
        )
        self.actions = widgets.HBox([self.rollback_button, self.cancel_button])
        self.message_html = html("", "airt-message")
        self._asking: str | None = None
        self._last_tick = 0.0
        super().__init__(
            [
                style_widget(),
                widgets.HBox([self.header_html, self.progress, self.progress_html]),
                self.notice_html,
                self.steps_html,
                self.card,
                self.decisions_html,
                self.actions,
                self.confirm_box,
                self.message_html,
            ],
            _dom_classes=("airt-panel", "airt-run-panel"),
        )
        self._live_start(run.engine, run.id)

    # -- rendering --------------------------------------------------------------------------------------

    def _render(self) -> None:
        store = self.engine.store
        record = store.workflow(self.workflow_id)
        if record is None:
            self.header_html.value = f"no workflow <code>{esc(self.workflow_id)}</code> in {esc(self.engine.db)}"
            return
        self.record = record
        # A long workflow shows a window of its steps: rendering thousands of rows ten times a
        # second would slow the run itself and flood the browser.
        long = record.total_steps > _FULL_TABLE_STEPS
        steps = store.steps_window(self.workflow_id) if long else store.steps(self.workflow_id)
        approvals = store.approvals(workflow_id=self.workflow_id)
        compensations = store.compensations(self.workflow_id)
        retried = any(s.attempt > 1 for s in steps)
        attempts = store.attempts(self.workflow_id) if retried else []
        pending = next((a for a in approvals if a.status == "PENDING"), None)
        self._render_header(record)
        self._render_notice(record)
        table = self._steps_table(record, steps, attempts)
        if long:
            hidden = record.total_steps - len(steps)
            table += (
                f'<div class="airt-muted">{hidden:,} more steps not shown; all of them: '
                f"<code>airt_nb.steps(workflow_id={record.workflow_id!r})</code></div>"
            )
        self.steps_html.value = table
        if pending is not None:
            self.card.show(pending, record.name, compensations)
        show(self.card, pending is not None)
        self._render_decisions(approvals)
        self._render_actions(record, compensations)

    def _render_header(self, record: WorkflowRecord) -> None:
        where = where_running(record, self.engine.owner_id)
        facts = [f"created {fmt_time(record.created_at)}"]
        if record.started_by:
            facts.append(f"started by {record.started_by}")
        if where:
            facts.append("running here" if where == "here" else f"running in {where}")
        if record.finished_at:
            facts.append(f"took {fmt_duration(seconds_between(record.created_at, record.finished_at))}")
        self.header_html.value = (
            f"<b>{esc(record.name)}</b> <code>{esc(record.workflow_id)}</code> {badge(record.status)}"
            f'<div class="airt-muted" style="font-size:11px">{esc(" · ".join(facts))}</div>'
        )
        total = max(record.total_steps, 1)
        with self.progress.hold_sync():  # one message for the three traits
            self.progress.max = total
            self.progress.value = min(record.done_steps, total)
            self.progress.bar_style = _BAR_STYLE.get(record.status, "info")
        self.progress_html.value = f'<span class="airt-muted">{record.done_steps} / {record.total_steps} steps</span>'

    def _render_notice(self, record: WorkflowRecord) -> None:
        lines = []
        if record.waiting_for and record.status not in TERMINAL:
            lines.append(
                f'<div class="airt-notice">Waiting for {esc(record.waiting_for)} to be defined: run the cell '
                "that defines it and the run resumes by itself</div>"
            )
        for warning in record.warning_list:
            lines.append(f'<div class="airt-notice">Warning: {esc(warning)}</div>')
        if record.error:
            lines.append(f'<div class="airt-error">{esc(record.error)}</div>')
        self.notice_html.value = "".join(lines)

    def _retry_limits(self, record: WorkflowRecord) -> dict[str, int]:
        if not self._max_attempts:
            spec = json.loads(record.spec)
            self._max_attempts = {
                s["name"]: (s.get("retry") or {}).get("max_attempts", 1) for s in spec.get("steps", [])
            }
        return self._max_attempts

    def _steps_table(self, record: WorkflowRecord, steps: list[StepRecord], attempts: list[tuple[Any, ...]]) -> str:
        limits = self._retry_limits(record)
        rows = []
        for s in steps:
            limit = limits.get(s.step_name, 1)
            attempt = "" if s.attempt == 0 else f"{s.attempt}" + (f" of {limit}" if limit > 1 else "")
            if s.status in ("RUNNING", "WAITING"):
                took = f"{fmt_duration(seconds_between(s.started_at, None))}…"
            else:
                took = fmt_duration(seconds_between(s.started_at, s.finished_at)) if s.finished_at else ""
            what = "approval" if s.type == "human_approval" else s.action or ""
            rows.append(
                f'<tr class="airt-step" data-step="{esc(s.step_name)}"><td><b>{esc(s.step_name)}</b> '
                f'<span class="airt-muted">{esc(what)}</span></td><td>{badge(s.status)}</td>'
                f"<td>{esc(attempt)}</td><td>{esc(took)}</td><td>{_detail(s, attempts, limit)}</td></tr>"
            )
        head = "<tr><th>step</th><th>status</th><th>attempt</th><th>duration</th><th></th></tr>"
        return f"<table>{head}{''.join(rows)}</table>"

    def _render_decisions(self, approvals: list[ApprovalRecord]) -> None:
        decided = [a for a in approvals if a.status != "PENDING"]
        marks = {"APPROVED": "✔", "REJECTED": "✘"}
        self.decisions_html.value = "".join(
            f'<div><span class="{"airt-ok" if a.status == "APPROVED" else "airt-error"}">{marks.get(a.status, "–")}'
            f"</span> <b>{esc(a.step_name)}</b> {esc(decided_text(a))}</div>"
            for a in decided
        )

    def _render_actions(self, record: WorkflowRecord, compensations: list[CompensationRecord]) -> None:
        undoable = any(c.status in ("PENDING", "FAILED") for c in compensations)
        can_rollback = record.status in _ROLLBACKABLE and undoable
        can_cancel = record.status in _CANCELLABLE
        show(self.rollback_button, can_rollback)
        show(self.cancel_button, can_cancel)
        show(self.actions, (can_rollback or can_cancel) and self._asking is None)
        if (self._asking == "rollback" and not can_rollback) or (self._asking == "cancel" and not can_cancel):
            self._ask(None)

    def _poll(self, changed: bool, now: float) -> bool:
        record = self.record
        if record is None:
            return changed
        # once a second, re-render a running or paused run so its durations and deadline advance
        ticking = record.status in ("RUNNING", "PAUSED") and now - self._last_tick >= 1.0
        if ticking:
            self._last_tick = now
        if self.engine.is_local(self.workflow_id) or not changed:
            return ticking  # a local run's changes arrive as events
        if record.status in TERMINAL:
            found = self.engine.store.workflow_status(self.workflow_id)
            return found is not None and found[0] != record.status
        return True

    # -- actions ---------------------------------------------------------------------------------------------

    def _ask(self, kind: str | None) -> None:
        self._asking = kind
        if kind == "rollback":
            self.confirm_html.value = "Undo every completed step of this run, newest first?"
            self.confirm_yes.description = "Yes, roll back"
        elif kind == "cancel":
            self.confirm_html.value = "Stop this run? Nothing is undone."
            self.confirm_yes.description = "Yes, cancel the run"
        show(self.confirm_box, kind is not None)
        show(self.actions, kind is None)

    def _confirmed(self) -> None:
        kind, self._asking = self._asking, None
        self._ask(None)
        if kind is None:
            return
        self.message_html.value = ""
        stop = self.engine.rollback if kind == "rollback" else self.engine.cancel
        outcome = stop(self.workflow_id)
        if outcome == "requested":
            self.message_html.value = (
                f'<div class="airt-muted">{kind} requested: the kernel running this workflow carries it out</div>'
            )
        self.mark_dirty()

    def _show_error(self, text: str) -> None:
        self.message_html.value = f'<div class="airt-error">{esc(text)}</div>'

    # -- display ------------------------------------------------------------------------------------------------

    def text(self) -> str:
        """The run as plain text (what a terminal or a saved notebook without widgets shows)."""
        store = self.engine.store
        try:
            record = store.workflow(self.workflow_id)
            if record is None:
                return f"<no workflow {self.workflow_id}>"
            pending = store.approvals(workflow_id=self.workflow_id, status="PENDING")
            return summary_text(record, store.steps(self.workflow_id), pending[0] if pending else None)
        except StoreError as exc:
            return f"<Run {self.workflow_id}: {exc}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = self.text()
        return data
