"""The live panel of one run: also what a :class:`~airt_nb.Run` shows as in a notebook.

Name, id, status badge, a progress bar (done / total steps; undone / to undo
while rolling back), one row per step (status, attempt, duration, what
happened, and on demand its inputs, outputs, traceback and earlier
attempts), the approval card while paused, the run's history (decisions,
who cancelled or rolled back, an engine lost and who resumed), and
``Rollback`` / ``Cancel`` buttons where they apply, each asking for
confirmation.  A finished run offers **Fork from here** on each failed or
finished step: the fork's own panel opens below, with the command that
compares the two runs.  The child workflows of ``workflow`` steps show as
panels of their own, nested under the steps.  It renders from the database through the throttled path of
:mod:`.base`, so a run executed by another kernel, or before a restart,
shows and updates the same way.

Each step row is its own widget: a row someone opened stays open while the
others update.  The HTML of every piece comes from :mod:`airt_nb.views.run_html`,
which also draws the static snapshot kept next to the widget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import StoreError
from ..views.run import RunState, read_run, summary_text
from ..views.run_html import (
    counts_html,
    header_html,
    history_html,
    notice_html,
    snapshot_html,
    step_row_html,
    steps_head_html,
    steps_more_html,
)
from ..views.text import TERMINAL, esc
from .approval_card import ApprovalCard
from .base import LivePanel, button, html, set_html, show, style_widget

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["RunPanel", "run_mimebundle"]

_CANCELLABLE = ("RUNNING", "PAUSED", "PENDING")
_ROLLBACKABLE = ("RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED")
_SETTLED = ("PAUSED", *TERMINAL)
#: steps a finished run can be forked from: those that failed or finished
_FORKABLE = ("FAILED", "COMPLETED", "COMPENSATED", "COMPENSATION_FAILED", "REJECTED")


def run_mimebundle(run: Run) -> dict[str, Any]:
    """``Run._repr_mimebundle_``: a new live panel for the run."""
    return RunPanel(run)._repr_mimebundle_()


class RunPanel(LivePanel, widgets.VBox):
    """A live view of one workflow run, with its approval card and actions.

    >>> panel = RunPanel(eng.get(workflow_id))   # doctest: +SKIP
    >>> panel.rollback_button.click(); panel.confirm_yes.click()   # doctest: +SKIP
    """

    def __init__(self, run: Run):
        self.run = run
        self.workflow_id = run.id
        self.state: RunState | None = None
        self._limits: dict[str, int] | None = None
        self._kinds: dict[str, dict[str, str]] | None = None
        self.header_html = html("", "airt-header", flex="1 1 auto")
        # The text ("2 / 3 steps") is the bar's description: value and text change in one message.
        self.progress = widgets.IntProgress(
            value=0,
            min=0,
            max=1,
            description="",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="300px"),
            _dom_classes=("airt-progress", "airt-bar-run"),
        )
        self._bar = "airt-bar-run"  # the class that colours the bar (one of them at a time)
        self.notice_html = html("", "airt-run-notice", display="none")
        # A short workflow: one widget per step row (a row someone opened stays open while others
        # update).  A long one: a window of rows, with counts, in one widget (one message a render).
        self.head_html = html(steps_head_html(), "airt-steps-head-row")
        self.rows: list[widgets.HTML] = []
        self.fork_buttons: list[widgets.Button] = []  # "Fork from here", one beside each row
        self._row_boxes: list[widgets.HBox] = []
        self.window_html = html("", "airt-steps-window", display="none")
        self.steps_box = widgets.VBox([self.head_html, self.window_html], _dom_classes=("airt-steps",))
        self.children_box = widgets.VBox(_dom_classes=("airt-children",))  # child workflows' panels
        self.child_panels: dict[str, RunPanel] = {}
        self.forks_box = widgets.VBox(_dom_classes=("airt-forks",))  # forks made from this panel
        self.fork_panels: list[RunPanel] = []
        self.card = ApprovalCard(run.engine, on_decided=lambda _: self.mark_dirty(), lock=self.lock)
        self.history_html = html("", "airt-history", display="none")
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
        self.detached = False
        super().__init__(
            [
                style_widget(),
                widgets.HBox([self.header_html, self.progress]),
                self.notice_html,
                self.steps_box,
                self.children_box,
                self.card,
                self.history_html,
                self.actions,
                self.confirm_box,
                self.message_html,
                self.forks_box,
            ],
            _dom_classes=("airt-root", "airt-panel", "airt-run-panel", "airt-live"),
        )
        self._live_start(run.engine, run.id)

    # -- rendering --------------------------------------------------------------------------------------

    def _render(self) -> None:
        state = read_run(
            self.engine.store, self.workflow_id, owner_id=self.engine.owner_id, limits=self._limits, kinds=self._kinds
        )
        if state is None:
            self.header_html.value = f"no workflow <code>{esc(self.workflow_id)}</code> in {esc(self.engine.db)}"
            return
        self._limits, self._kinds = state.limits, state.kinds
        self.state = state
        record = state.record
        self.header_html.value = header_html(state)
        value, maximum, role, text = state.progress()
        with self.progress.hold_sync():  # one message for the traits that changed
            self.progress.max = maximum
            self.progress.value = value
            self.progress.description = text
            bar = f"airt-bar-{role}"
            if bar != self._bar:
                self.progress.remove_class(self._bar).add_class(bar)
                self._bar = bar
        set_html(self.notice_html, notice_html(state))
        self._render_rows(state)
        pending = state.pending
        if pending is not None:
            self.card.show(pending, record.name, state.compensations, state.decisions)
        show(self.card, pending is not None)
        set_html(self.history_html, history_html(state))
        self._render_actions(state)
        self._render_children(state)

    def _render_rows(self, state: RunState) -> None:
        if state.long:
            rows = "".join(step_row_html(state, step) for step in state.steps)
            set_html(self.window_html, counts_html(state) + steps_head_html() + rows + steps_more_html(state))
            show(self.head_html, False)
            for row in self.rows:
                show(row, False)
            return
        show(self.head_html, True)
        show(self.window_html, False)
        while len(self.rows) < len(state.steps):
            self._add_row()
        finished = state.record.status in TERMINAL and not self.detached
        for row, box, fork, step in zip(self.rows, self._row_boxes, self.fork_buttons, state.steps, strict=False):
            row.value = step_row_html(state, step)
            fork.tooltip = f"Run again from {step.step_name}: a new run keeps the steps before it"
            show(fork, finished and step.status in _FORKABLE)
            show(box, True)
        for box in self._row_boxes[len(state.steps) :]:
            show(box, False)
        children = (self.head_html, *self._row_boxes, self.window_html)
        if len(children) != len(self.steps_box.children):
            self.steps_box.children = children

    def _add_row(self) -> None:
        index = len(self.rows)
        row = html("", "airt-step-row", flex="1 1 auto")
        fork = button("Fork from here", "airt-fork", width="auto")
        fork.layout.display = "none"
        fork.on_click(lambda _: self.safely(self._fork_row, index))
        self.rows.append(row)
        self.fork_buttons.append(fork)
        self._row_boxes.append(widgets.HBox([row, fork], layout=widgets.Layout(align_items="flex-start")))

    def _render_children(self, state: RunState) -> None:
        """A nested live panel for each child workflow, opened the first time it is seen."""
        added = False
        for child in state.children:
            if child.workflow_id not in self.child_panels:
                self.child_panels[child.workflow_id] = RunPanel(self.engine.get(child.workflow_id))
                added = True
        if added:
            self.children_box.children = tuple(self.child_panels.values())

    # -- forks -----------------------------------------------------------------------------------------------

    def _fork_row(self, index: int) -> None:
        state = self.state
        if state is None or index >= len(state.steps):
            return
        self.fork(state.steps[index].step_name)

    def fork(self, step_name: str) -> RunPanel:
        """Fork this (finished) run from ``step_name`` and show the fork's live panel under this one."""
        self.message_html.value = ""
        run = self.engine.fork(self.workflow_id, step_name)
        panel = RunPanel(run)
        self.fork_panels.append(panel)
        note = html(
            f'<div class="airt-muted">forked from step <b>{esc(step_name)}</b> as <code>{esc(run.id)}</code>; '
            f"compare the runs: <code>airt_nb.diff({self.workflow_id!r}, {run.id!r})</code></div>",
            "airt-fork-note",
        )
        self.forks_box.children = (*self.forks_box.children, note, panel)
        return panel

    def _render_actions(self, state: RunState) -> None:
        record = state.record
        undoable = any(c.status in ("PENDING", "FAILED") for c in state.compensations)
        can_rollback = record.status in _ROLLBACKABLE and undoable and not self.detached
        can_cancel = record.status in _CANCELLABLE and not self.detached
        show(self.rollback_button, can_rollback)
        show(self.cancel_button, can_cancel)
        show(self.actions, (can_rollback or can_cancel) and self._asking is None)
        if (self._asking == "rollback" and not can_rollback) or (self._asking == "cancel" and not can_cancel):
            self._ask(None)

    def poll_due(self, changed: bool, now: float) -> bool:
        state = self.state
        if state is None:
            return changed
        status = state.record.status
        # once a second, re-render a running or paused run so its durations and deadline advance
        ticking = status in ("RUNNING", "PAUSED", "ROLLING_BACK") and now - self._last_tick >= 1.0
        if ticking:
            self._last_tick = now
        if self.engine.is_local(self.workflow_id) or not changed:
            return ticking  # a local run's changes arrive as events
        if status in TERMINAL:
            found = self.engine.store.workflow_status(self.workflow_id)
            return found is not None and found[0] != status
        return True

    def on_detached(self) -> None:
        """The engine this panel reads was closed: say so, and offer nothing that would fail."""
        self.detached = True
        self.card.disable("this panel's engine was closed")
        self.message_html.value = (
            '<div class="airt-notice">This panel no longer follows the run (its engine was closed): '
            f"<code>%workflow show {esc(self.workflow_id)}</code> shows it live again.</div>"
        )
        for fork in self.fork_buttons:
            show(fork, False)
        if self.state is not None:
            self._render_actions(self.state)

    # -- the snapshot -------------------------------------------------------------------------------------

    def _snapshot_state(self) -> tuple[Any, bool]:
        state = self.state
        if state is None:
            return None, True
        record = state.record
        token = (
            record.status,
            record.updated_at,
            record.done_steps,
            tuple((s.status, s.attempt) for s in state.steps),
            tuple((a.status, a.decided_at) for a in state.approvals),
            tuple(c.status for c in state.compensations),
            len(state.events),
        )
        return token, record.status in _SETTLED

    def _quick_token(self) -> Any:
        record = self.engine.store.workflow(self.workflow_id)
        return None if record is None else (record.status, record.updated_at, record.done_steps)

    def snapshot_html(self, *, stopped_at: str | None = None) -> str:
        """The run as static HTML, from what the panel last read (read now if it has read nothing)."""
        state = self.state or read_run(self.engine.store, self.workflow_id, owner_id=self.engine.owner_id)
        if state is None:
            return f"<div>no workflow <code>{esc(self.workflow_id)}</code></div>"
        return snapshot_html(state, stopped_at=stopped_at)

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
        try:
            state = self.state or read_run(self.engine.store, self.workflow_id, owner_id=self.engine.owner_id)
        except StoreError as exc:
            return f"<Run {self.workflow_id}: {exc}>"
        return summary_text(state) if state is not None else f"<no workflow {self.workflow_id}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = self.text()
        return data
