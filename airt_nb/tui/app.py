"""The dashboard application: the workflow list, a workflow's detail, and the actions on both.

The data comes from the engine's store (read methods only); the actions go
through the public engine calls (``approve``, ``reject``, ``rollback``,
``cancel``).  Live refresh polls ``store.last_change()`` and the number of
pending approvals twice a second: two cheap reads, and the tables are
rebuilt only when something changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, ProgressBar, Static

from ..errors import AirtError
from ..store.records import ApprovalRecord
from ..views import fmt_duration, fmt_time, seconds_between, short
from ..views.text import term_safe
from .dialogs import ConfirmDialog, ReasonDialog
from .rows import (
    approval_details,
    approval_row,
    approvals_text,
    cursor_key,
    plain,
    refill,
    split_values,
    status_text,
    workflow_row,
)

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["DashboardApp", "DetailScreen", "WorkflowsScreen"]

FILTERS = ("ALL", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "ROLLING_BACK", "ROLLED_BACK", "CANCELLED")
LIMIT = 500


class _Base(Screen[None]):
    """Keys shared by the list and the detail: they act on the workflow the screen points at."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "decide(True)", "Approve"),
        Binding("x", "decide(False)", "Reject"),
        Binding("b", "stop('rollback')", "Rollback"),
        Binding("c", "stop('cancel')", "Cancel"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]

    @property
    def dash(self) -> DashboardApp:
        return self.app  # type: ignore[return-value]

    def target(self) -> tuple[str | None, str | None]:
        """``(workflow_id, approval_id or None)`` the keys act on."""
        raise NotImplementedError

    def reload(self) -> None:
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        self.reload()

    def action_refresh(self) -> None:
        self.reload()
        self.notify("refreshed", timeout=1.5)

    def action_decide(self, approve: bool) -> None:
        workflow_id, approval_id = self.target()
        if workflow_id is None:
            self.notify("no workflow selected", severity="warning")
            return
        pending = self.dash.pending_of(workflow_id, approval_id)
        if pending is None:
            self.notify(f"workflow {workflow_id} waits for no approval", severity="warning")
            return
        verb = "Approve" if approve else "Reject"
        details = "".join(f"\n{term_safe(line)}" for line in approval_details(pending))
        question = (
            f"{verb} step {term_safe(pending.step_name)!r} of workflow {workflow_id} as {term_safe(self.dash.user)}?"
            f"\n{term_safe(pending.message or '')}{details}"
        )
        fields = pending.field_specs if approve else {}
        if fields:
            question += "\nType NAME=VALUE for a field before the reason, e.g. " + " ".join(
                f"{name}=..." for name in list(fields)[:2]
            )

        def answered(reason: str | None) -> None:
            if reason is None:
                return
            try:
                values, text = split_values(fields, reason)
            except ValueError as exc:
                self.notify(str(exc), severity="error", timeout=10)
                return
            self.dash.decide(pending, approve, text or None, values)
            self.reload()

        self.app.push_screen(ReasonDialog(plain(question)), answered)

    def action_stop(self, kind: str) -> None:
        workflow_id, _ = self.target()
        if workflow_id is None:
            self.notify("no workflow selected", severity="warning")
            return
        what = "Roll back (undo every completed step of)" if kind == "rollback" else "Cancel (stop, undo nothing of)"

        def answered(yes: bool | None) -> None:
            if yes:
                self.dash.stop(workflow_id, kind)
                self.reload()

        self.app.push_screen(ConfirmDialog(f"{what} workflow {workflow_id}?  y / n"), answered)


class WorkflowsScreen(_Base):
    """Every workflow, newest first, with a status filter; the pending approvals below."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "detail", "Detail", show=True, priority=False),
        Binding("d", "detail", "Detail", show=False),
        Binding("f", "next_filter", "Filter"),
    ]
    DEFAULT_CSS = """
    #filter { padding: 0 1; color: $text-muted; }
    #workflows { height: 2fr; }
    #approvals-title { padding: 0 1; margin-top: 1; text-style: bold; }
    #approvals { height: 1fr; min-height: 4; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.status_filter = "ALL"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="filter")
        table: DataTable[Any] = DataTable(id="workflows", cursor_type="row", zebra_stripes=True)
        table.add_columns("WORKFLOW", "NAME", "STATUS", "STEPS", "CREATED", "BY", "NOTE")
        yield table
        yield Label("Pending approvals", id="approvals-title")
        approvals: DataTable[Any] = DataTable(id="approvals", cursor_type="row")
        approvals.add_columns("APPROVAL", "WORKFLOW", "STEP", "MESSAGE", "APPROVERS", "REQUESTED")
        yield approvals
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#workflows", DataTable).focus()

    def reload(self) -> None:
        store = self.dash.engine.store
        status = None if self.status_filter == "ALL" else self.status_filter
        records = store.list_workflows(status=status, limit=LIMIT)
        total = store.count_workflows(status=status)
        pending = store.pending_approvals(limit=LIMIT)
        by_workflow = {a.workflow_id: a for a, _ in pending}
        table = self.query_one("#workflows", DataTable)
        refill(table, [(r.workflow_id, workflow_row(r, by_workflow.get(r.workflow_id))) for r in records])
        approvals = self.query_one("#approvals", DataTable)
        refill(approvals, [(a.approval_id, approval_row(a, name)) for a, name in pending])
        shown = f"{len(records)} of {total}" if total > len(records) else str(total)
        self.query_one("#filter", Static).update(
            plain(
                f"status: {self.status_filter}  ·  {shown} workflows  ·  {len(pending)} pending approvals"
                f"  ·  deciding as {self.dash.user}  ·  f: next filter"
            )
        )

    def target(self) -> tuple[str | None, str | None]:
        approvals = self.query_one("#approvals", DataTable)
        if approvals.has_focus and approvals.row_count:
            approval_id = cursor_key(approvals)
            found = self.dash.engine.store.approvals(approval_id=approval_id) if approval_id else []
            return (found[0].workflow_id, approval_id) if found else (None, None)
        return cursor_key(self.query_one("#workflows", DataTable)), None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_detail()

    def action_detail(self) -> None:
        workflow_id, _ = self.target()
        if workflow_id is not None:
            self.app.push_screen(DetailScreen(workflow_id))

    def action_next_filter(self) -> None:
        self.status_filter = FILTERS[(FILTERS.index(self.status_filter) + 1) % len(FILTERS)]
        self.reload()


class DetailScreen(_Base):
    """One workflow: its progress, steps, attempts, errors and approvals."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    #summary { padding: 0 1; }
    #progress { padding: 0 1; height: 1; }
    .title { padding: 0 1; margin-top: 1; text-style: bold; }
    #steps { height: auto; max-height: 60%; }
    #attempts { height: auto; max-height: 8; }
    #approvals-text { padding: 0 1; }
    """

    def __init__(self, workflow_id: str):
        super().__init__()
        self.workflow_id = workflow_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield ProgressBar(id="progress", show_eta=False)
        yield Label("Steps", classes="title")
        steps: DataTable[Any] = DataTable(id="steps", cursor_type="row", zebra_stripes=True)
        steps.add_columns("#", "STEP", "ACTION", "STATUS", "ATTEMPT", "DURATION", "ERROR")
        yield steps
        yield Label("Attempts", classes="title", id="attempts-title")
        attempts: DataTable[Any] = DataTable(id="attempts", cursor_type="none")
        attempts.add_columns("STEP", "ATTEMPT", "STATUS", "STARTED", "DURATION", "ERROR")
        yield attempts
        yield Label("Approvals", classes="title")
        yield Static(id="approvals-text")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#steps", DataTable).focus()

    def target(self) -> tuple[str | None, str | None]:
        return self.workflow_id, None

    def reload(self) -> None:
        store = self.dash.engine.store
        record = store.workflow(self.workflow_id)
        if record is None:
            self.query_one("#summary", Static).update(plain(f"no workflow {self.workflow_id}"))
            return
        summary = Text.assemble(
            (f"{term_safe(record.name)} ", "bold"),
            (record.workflow_id, "dim"),
            "  ",
            status_text(record.status),
            f"  {record.done_steps}/{record.total_steps} steps",
            f"\nstarted by {term_safe(record.started_by or '?')} at {fmt_time(record.created_at)}",
            f"  ·  updated {fmt_time(record.updated_at)}",
        )
        if record.waiting_for:
            summary.append(f"\nwaiting for {term_safe(record.waiting_for)}", style="yellow")
        if record.error:
            summary.append(f"\nerror: {term_safe(record.error, newlines=True)}", style="bold red")
        for warning in record.warning_list:
            summary.append(f"\nwarning: {term_safe(warning)}", style="yellow")
        self.query_one("#summary", Static).update(summary)
        self.query_one("#progress", ProgressBar).update(total=max(record.total_steps, 1), progress=record.done_steps)
        steps = store.steps(self.workflow_id)
        refill(
            self.query_one("#steps", DataTable),
            [
                (
                    s.step_name,
                    (
                        str(s.position + 1),
                        s.step_name,
                        {"human_approval": "approval", "wait_event": "event", "workflow": "workflow"}.get(
                            s.type, s.action or ""
                        ),
                        status_text(s.status),
                        str(s.attempt or ""),
                        fmt_duration(seconds_between(s.started_at, s.finished_at)) if s.started_at else "",
                        short((s.error or "").splitlines()[0] if s.error else "", 70),
                    ),
                )
                for s in steps
            ],
        )
        rows = store.attempts(self.workflow_id)
        refill(
            self.query_one("#attempts", DataTable),
            [
                (
                    f"{r[1]}/{r[2]}",
                    (
                        r[1],
                        str(r[2]),
                        status_text(r[3]),
                        fmt_time(r[4]),
                        fmt_duration(seconds_between(r[4], r[5])),
                        short(r[6] or "", 60),
                    ),
                )
                for r in rows
            ],
        )
        self.query_one("#attempts", DataTable).display = bool(rows)
        self.query_one("#attempts-title", Label).display = bool(rows)
        self.query_one("#approvals-text", Static).update(approvals_text(store.approvals(workflow_id=self.workflow_id)))


class DashboardApp(App[int]):
    """``airt dashboard`` on one engine (opened by the caller, closed by :func:`run_dashboard`)."""

    TITLE = "airt dashboard"

    def __init__(self, engine: Engine, *, as_user: str | None = None, poll_interval: float = 0.5):
        super().__init__()
        self.engine = engine
        self.user = as_user or engine.user
        self.poll_interval = poll_interval
        self.messages: list[str] = []  # every notification, newest last
        self._token: Any = None

    def on_mount(self) -> None:
        self.sub_title = str(self.engine.db)
        self._token = self._change_token()
        self.push_screen(WorkflowsScreen())
        self.set_interval(self.poll_interval, self.poll)

    def _change_token(self) -> Any:
        store = self.engine.store
        return store.last_change(), store.count_approvals()

    def poll(self) -> None:
        """Reload the screen when another process (or this one) changed the database."""
        try:
            token = self._change_token()
        except AirtError:
            return  # e.g. a locked database: the next tick tries again
        if token != self._token:
            self._token = token
            if isinstance(self.screen, _Base):
                self.screen.reload()

    def notify(self, message: str, **kwargs: Any) -> None:  # type: ignore[override]
        # Messages quote records (names, reasons, errors): shown escaped, never read as markup.
        message = term_safe(message, newlines=True)
        self.messages.append(message)
        super().notify(message, **{**kwargs, "markup": False})

    # -- actions -------------------------------------------------------------------------------------

    def pending_of(self, workflow_id: str, approval_id: str | None) -> ApprovalRecord | None:
        store = self.engine.store
        found = (
            store.approvals(approval_id=approval_id)
            if approval_id
            else store.approvals(workflow_id=workflow_id, status="PENDING")
        )
        return next((a for a in found if a.status == "PENDING"), None)

    def decide(
        self, approval: ApprovalRecord, approve: bool, reason: str | None, values: dict[str, Any] | None = None
    ) -> None:
        act = self.engine.approve if approve else self.engine.reject
        try:
            decided = act(
                approval.workflow_id, approval_id=approval.approval_id, by=self.user, reason=reason, values=values
            )
        except AirtError as exc:
            self.notify(" ".join(str(exc).split()), severity="error", timeout=10)
            return
        if decided.status == "PENDING":
            self.notify(
                f"approval of step {decided.step_name!r} recorded: {decided.approved_count} of "
                f"{decided.min_approvals}; it waits for the others"
            )
            return
        verb = "approved" if approve else "rejected"
        self.notify(f"{verb} step {decided.step_name!r} of workflow {decided.workflow_id} as {decided.decided_by}")

    def stop(self, workflow_id: str, kind: str) -> None:
        act = self.engine.rollback if kind == "rollback" else self.engine.cancel
        try:
            outcome = act(workflow_id, by=self.user)
        except AirtError as exc:
            self.notify(" ".join(str(exc).split()), severity="error", timeout=10)
            return
        if outcome == "requested":
            self.notify(
                f"asked the engine running workflow {workflow_id} to {kind.replace('rollback', 'roll back')} it"
            )
        else:
            self.notify(f"workflow {workflow_id} is {outcome}")
