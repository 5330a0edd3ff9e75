"""``%%workflow --dry-run`` (the plan) and ``%workflow list`` (the newest workflows), as static views.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .text import badge, esc, fmt_duration, fmt_time, seconds_between, short, where_running
from .theme import stylesheet

if TYPE_CHECKING:
    from ..plan import Plan
    from ..store.records import WorkflowRecord

__all__ = ["PlanView", "WorkflowList"]


class PlanView:
    """What ``%%workflow --dry-run`` shows: the steps in stages, what runs in parallel, what approvals gate
    (and ask for: fields, how many people), and the branches: which steps run only when a ``when:`` holds."""

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
            rules = []
            if step.min_approvals > 1:
                rules.append(f"{step.min_approvals} people")
            if step.exclude_requester:
                rules.append("not the requester")
            if step.authenticated:
                rules.append("authenticated only")
            if step.fields:
                rules.append(f"fields {', '.join(step.fields)}")
            gated = ", ".join(self.gates[name]) or "nothing (last step)"
            extra = f" ({'; '.join(rules)})" if rules else ""
            text = f"approval{who}{extra}, gates {gated}"
        elif step.is_event:
            within = f" within {step.timeout:g} s" if step.timeout else ""
            text = f"waits for event {step.event}{within}"
        elif step.is_child:
            text = f"runs workflow {step.uses}"
        else:
            retry = f", up to {step.retry.max_attempts} attempts" if step.retry else ""
            text = f"{step.action}{retry}"
        return text + self._branch(name)

    def _branch(self, name: str) -> str:
        """When a step is taken: its ``when``, and the skippable steps whose outputs it uses."""
        step = self.plan.by_name[name]
        if not step.conditional:
            return ""
        parts = []
        if step.condition is not None:
            parts.append(f"only when {step.condition.describe()}")
        skippable = [u for u in step.looks_up if self.plan.by_name[u].conditional]
        if skippable:
            parts.append(f"skipped if {' or '.join(skippable)} is skipped")
        return " · " + "; ".join(parts)

    def _headline(self) -> str:
        spec = self.plan.spec
        branches = sum(1 for s in self.plan.steps if s.condition is not None)
        branching = f", {branches} of them taken only when their when: holds" if branches else ""
        return (
            f"Dry run of {spec.name}: {len(self.plan.steps)} steps in {len(self.stages)} stages "
            f"(max_parallel {spec.max_parallel}){branching}; nothing was run or recorded"
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
                    f'<td rowspan="{len(stage)}">{i}'
                    f"{'<br><small class=airt-muted>in parallel</small>' if len(stage) > 1 else ''}</td>"
                    if j == 0
                    else ""
                )
                rows.append(
                    f"<tr>{cell}<td><b>{esc(name)}</b></td><td>{esc(self._what(name))}</td>"
                    f"<td>{esc(', '.join(step.deps)) or '—'}</td></tr>"
                )
        head = "".join(f"<th>{h}</th>" for h in ("stage", "step", "what", "after"))
        return (
            f'<div class="airt-root airt-plan">{stylesheet()}<div style="font-weight:600">{esc(self._headline())}</div>'
            f'<table class="airt-table" style="width:auto"><tr>{head}</tr>{"".join(rows)}</table></div>'
        )


class WorkflowList:
    """``%workflow list``: the newest workflows of the database (all kernels)."""

    _HEAD = ("workflow_id", "name", "status", "steps", "created", "took", "started_by", "running", "error")

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
                fmt_duration(seconds_between(r.created_at, r.finished_at)) if r.finished_at else "",
                r.started_by or "",
                where_running(r, self.own_owner) or (f"needs {r.waiting_for}" if r.waiting_for else ""),
                short(r.error.splitlines()[0], 60) if r.error else "",
            )
            for r in self.records
        ]

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
        def cell(i: int, value: str) -> str:
            if i == 0:
                return f"<td><code>{esc(value)}</code></td>"
            if i == 2:
                return f"<td>{badge(value)}</td>"
            if i == 8:
                return f'<td class="airt-error">{esc(value)}</td>'
            return f'<td class="airt-nowrap">{esc(value)}</td>' if i in (3, 4, 5) else f"<td>{esc(value)}</td>"

        body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in self._rows())
        head = "".join(f"<th>{h}</th>" for h in self._HEAD)
        table = f'<table class="airt-table"><tr>{head}</tr>{body}</table>' if self.records else ""
        return (
            f'<div class="airt-root airt-list">{stylesheet()}{table}'
            f'<div class="airt-muted" style="font-size:12px">{esc(self._footer())}</div></div>'
        )
