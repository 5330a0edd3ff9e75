"""What ``%load_ext airt_nb`` reports: the database, and what recovery found, this notebook first.

A notebook is known by Jupyter's ``JPY_SESSION_NAME`` (the notebook's path),
else by the kernel's working directory; a workflow records the notebook
(``session``) and folder (``workdir``) it was started from.  This notebook's
runs are listed by name and its paused runs get their approval cards under
the banner; other notebooks' runs are one compact line that points to the
inbox.  A workflow without that record (started by an older version) counts
as this notebook's.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .run import spec_facts
from .text import esc
from .theme import stylesheet

if TYPE_CHECKING:
    from ..engine import RecoverySummary
    from ..store.records import WorkflowRecord

__all__ = ["Banner", "belongs_here", "this_notebook"]


def this_notebook() -> tuple[str | None, str]:
    """``(session, workdir)`` of this kernel: ``JPY_SESSION_NAME`` (or ``None``) and the working directory."""
    return os.environ.get("JPY_SESSION_NAME") or None, os.getcwd()


def belongs_here(record: WorkflowRecord, session: str | None, workdir: str) -> bool:
    """Whether ``record`` was started from this notebook (by session name, else by folder)."""
    started_in = getattr(record, "session", None)
    if session and started_in:
        return bool(started_in == session)
    folder = getattr(record, "workdir", None)
    if folder:
        return os.path.abspath(folder) == os.path.abspath(workdir)
    return started_in is None  # no record of where it started: treat it as ours


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Banner:
    """The extension's banner; ``paused`` holds the runs (``Run``) whose cards go under it."""

    shown = 3

    def __init__(
        self,
        db: str,
        user: str,
        summary: RecoverySummary | None,
        records: Mapping[str, WorkflowRecord],
        version: str,
        *,
        paused: Sequence[Any] = (),
        session: str | None = None,
        workdir: str | None = None,
    ):
        self.db = db if "://" in db else os.path.abspath(db)  # a URL is shown as the engine gives it
        self.user = user
        self.summary = summary
        self.records = dict(records)
        self.version = version
        self.paused = list(paused)
        self.session = session
        self.workdir = workdir or os.getcwd()

    def mine(self, workflow_id: str) -> bool:
        record = self.records.get(workflow_id)
        return record is None or belongs_here(record, self.session, self.workdir)

    def _label(self, workflow_id: str) -> str:
        record = self.records.get(workflow_id)
        return f"{record.name if record else '?'} ({workflow_id})"

    def _some(self, ids: Sequence[str]) -> str:
        text = ", ".join(self._label(i) for i in ids[: self.shown])
        return text + (f" and {len(ids) - self.shown} more" if len(ids) > self.shown else "")

    def lines(self) -> list[tuple[str, str]]:
        """``(label, text)`` pairs: this notebook's runs, then one line for the others."""
        s = self.summary
        if s is None:
            return [("recovery", "off (AIRT_RECOVER=0)")]
        out: list[tuple[str, str]] = []
        resumed = [w for w in s.resumed if self.mine(w)]
        restored = [w for w in s.restored if self.mine(w)]
        waiting = [(w, a) for w, a in s.waiting_for_action.items() if self.mine(w)]
        if resumed:
            out.append(("resumed", f"{len(resumed)}: {self._some(resumed)}"))
        if restored:
            where = ("card below" if len(restored) == 1 else "cards below") if len(restored) <= self.shown else ""
            more = f" ({where})" if where else "; all of them: %workflow approvals"
            out.append(("waiting for approval", f"{len(restored)}: {self._some(restored)}{more}"))
        events = [(w, step) for w, step in s.waiting_for_event.items() if self.mine(w)]
        if events:
            out.append(("waiting for an event", self._events(events)))
        if waiting:
            text = ", ".join(f"{self._label(w)} needs action {a!r}" for w, a in waiting[: self.shown])
            if len(waiting) > self.shown:
                text += f" and {len(waiting) - self.shown} more"
            out.append(("waiting for an action", f"{text}; run the cell that defines it and it resumes by itself"))
        others = self._others()
        if others:
            out.append(("other notebooks", others))
        return out or [("recovery", "nothing to resume")]

    def _events(self, events: Sequence[tuple[str, str]]) -> str:
        """``name (id) waits for event 'ci.done'``, each, and how to send one."""
        named = []
        for workflow_id, step in events[: self.shown]:
            record = self.records.get(workflow_id)
            event = spec_facts(record)[1].get(step, {}).get("event") if record is not None else None
            named.append(f"{self._label(workflow_id)} waits for " + (f"event {event!r}" if event else f"step {step!r}"))
        more = f" and {len(events) - self.shown} more" if len(events) > self.shown else ""
        return ", ".join(named) + more + "; send one with %workflow send ID EVENT --data ..."

    def _others(self) -> str:
        s = self.summary
        assert s is not None
        parts = []
        restored = sum(not self.mine(w) for w in s.restored)
        resumed = sum(not self.mine(w) for w in s.resumed)
        waiting = sum(not self.mine(w) for w in s.waiting_for_action)
        events = sum(not self.mine(w) for w in s.waiting_for_event)
        if restored:
            parts.append(f"{_plural(restored, 'approval')} waiting")
        if events:
            parts.append(f"{events} waiting for an event")
        if resumed:
            parts.append(f"{resumed} resumed here")
        if waiting:
            parts.append(f"{waiting} waiting for an action")
        if s.skipped:
            parts.append(f"{len(s.skipped)} running in other kernels")
        if not parts:
            return ""
        return ", ".join(parts) + " · the inbox: %workflow approvals"

    def _head(self) -> str:
        return f"airt_nb {self.version} · {self.db} · acting as {self.user}"

    def __repr__(self) -> str:
        return "\n".join([self._head(), *(f"  {label}: {text}" for label, text in self.lines())])

    def _repr_html_(self) -> str:
        items = []
        for label, text in self.lines():
            body = esc(text).replace("%workflow approvals", "<code>%workflow approvals</code>")
            items.append(f'<div><span class="airt-muted">{esc(label)}:</span> {body}</div>')
        return (
            f'<div class="airt-root airt-banner" style="border-left:4px solid var(--airt-c-run);padding:2px 10px;'
            f'font-size:12px">{stylesheet()}'
            f"<div><b>airt_nb {esc(self.version)}</b> · <code>{esc(self.db)}</code> · acting as "
            f"<b>{esc(self.user)}</b></div>{''.join(items)}</div>"
        )
